package interceptor

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// cliTLS returns server and client TLS credentials for "bufnet", from a
// self-signed certificate made for the test.
func cliTLS(t *testing.T) (server, client credentials.TransportCredentials) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bufnet"},
		DNSNames:              []string{"bufnet"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS13,
	})
	client = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "bufnet", MinVersion: tls.VersionTLS13})
	return server, client
}

func TestPerRPCCredentialsOverTLS(t *testing.T) {
	srvCreds, cliCreds := cliTLS(t)
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok, "billing": "b.b.b"})
	for _, tc := range []struct {
		name     string
		audience string
		want     string
	}{
		{"audience from the service option", "", "Bearer " + cliStaticTok},
		{"audience given", "billing", "Bearer b.b.b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := &cliTarget{}
			srv := grpc.NewServer(grpc.Creds(srvCreds))
			testv1.RegisterTestServiceServer(srv, tgt)
			c := testv1.NewTestServiceClient(cliServe(t, srv, cliWithTransport(cliCreds),
				grpc.WithPerRPCCredentials(PerRPCCredentials(ts, tc.audience))))
			if _, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Public(cliCtx(t), &testv1.PublicRequest{}); err != nil {
				t.Fatal(err)
			}
			seen := tgt.calls()
			if got := cliOne(t, seen[0], MDAuthorization); got != tc.want {
				t.Fatalf("authorization = %q, want %q", got, tc.want)
			}
			if v := seen[1].Get(MDAuthorization); len(v) != 0 {
				t.Fatalf("public method got authorization %q", v)
			}
		})
	}
}

func TestPerRPCCredentialsRefuseInsecureTransport(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	creds := PerRPCCredentials(ts, "")
	if !creds.RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity = false by default")
	}
	// grpc refuses the combination when the connection is made.
	_, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(creds))
	if err == nil {
		t.Fatal("grpc.NewClient accepted the credentials on an insecure connection")
	}

	// As a call option on an insecure connection, the call fails and nothing
	// is sent.
	tgt, c := cliStartTarget(t)
	_, err = c.Scoped(cliCtx(t), &testv1.ScopedRequest{}, grpc.PerRPCCredentials(creds))
	if err == nil || len(tgt.calls()) != 0 {
		t.Fatalf("err = %v, %d calls; want a refusal before sending", err, len(tgt.calls()))
	}

	// Called directly, each security level below privacy and integrity is
	// refused, as is a missing request info.
	for _, level := range []credentials.SecurityLevel{credentials.NoSecurity, credentials.IntegrityOnly} {
		ctx := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
			Method:   "/callsign.test.v1.TestService/Scoped",
			AuthInfo: cliAuthInfo{credentials.CommonAuthInfo{SecurityLevel: level}},
		})
		md, err := creds.GetRequestMetadata(ctx)
		if status.Code(err) != codes.Unauthenticated || md != nil {
			t.Fatalf("level %v: %v, %v", level, md, err)
		}
	}
	if md, err := creds.GetRequestMetadata(context.Background()); status.Code(err) != codes.Unauthenticated || md != nil {
		t.Fatalf("no request info: %v, %v", md, err)
	}
	ctx := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
		Method:   "/callsign.test.v1.TestService/Scoped",
		AuthInfo: cliAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}},
	})
	if md, err := creds.GetRequestMetadata(ctx); err != nil || md[MDAuthorization] != "Bearer "+cliStaticTok {
		t.Fatalf("privacy and integrity: %v, %v", md, err)
	}
}

type cliAuthInfo struct{ credentials.CommonAuthInfo }

func (cliAuthInfo) AuthType() string { return "test" }

func TestPerRPCCredentialsAllowInsecure(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	creds := PerRPCCredentials(ts, "", AllowInsecure())
	if creds.RequireTransportSecurity() {
		t.Fatal("RequireTransportSecurity = true with AllowInsecure")
	}
	tgt, c := cliStartTarget(t, grpc.WithPerRPCCredentials(creds))
	if _, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := cliOne(t, tgt.calls()[0], MDAuthorization); got != "Bearer "+cliStaticTok {
		t.Fatalf("authorization = %q", got)
	}
}

func TestPerRPCCredentialsFailClosed(t *testing.T) {
	ok := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
		Method:   "/callsign.test.v1.TestService/Scoped",
		AuthInfo: cliAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}},
	})
	unknown := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{
		Method:   "/no.such.Service/M",
		AuthInfo: cliAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}},
	})
	if _, err := PerRPCCredentials(StaticTokenSource(nil), "").GetRequestMetadata(ok); status.Code(err) != codes.Unavailable {
		t.Fatalf("no token: %v", err)
	}
	if _, err := PerRPCCredentials(StaticTokenSource(nil), "").GetRequestMetadata(unknown); status.Code(err) != codes.Internal {
		t.Fatalf("no audience: %v", err)
	}
}

func TestPerRPCCredentialsRuntimeDescriptors(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"dyn": "d.d.d"})
	creds := PerRPCCredentials(ts, "", WithPerRPCClientOptions(WithClientDescriptors(cliDynamicFiles(t))))
	info := cliAuthInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}
	for method, want := range map[string]string{"/dyn.v1.Dyn/Get": "Bearer d.d.d", "/dyn.v1.Dyn/Open": ""} {
		ctx := credentials.NewContextWithRequestInfo(context.Background(), credentials.RequestInfo{Method: method, AuthInfo: info})
		md, err := creds.GetRequestMetadata(ctx)
		if err != nil || md[MDAuthorization] != want {
			t.Fatalf("%s: %v, %v; want authorization %q", method, md, err, want)
		}
	}
}
