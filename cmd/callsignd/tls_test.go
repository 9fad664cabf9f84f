package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	pool                  *x509.CertPool
	caFile                string
	serverCert, serverKey string
	client                tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "callsign test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)

	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
			IPAddresses:  ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sc, sk := issue(2, "callsignd", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	cc, ck := issue(3, "orders", x509.ExtKeyUsageClientAuth, nil)
	client, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{
		pool:       pool,
		caFile:     write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})),
		serverCert: write("server.pem", sc),
		serverKey:  write("server-key.pem", sk),
		client:     client,
	}
}

// TestTLSAndMTLS: with --tls-cert, --tls-key and --tls-client-ca, gRPC needs a
// client certificate from the CA, and the HTTP listener serves the JWKS over
// TLS without one.
func TestTLSAndMTLS(t *testing.T) {
	pki := newTestPKI(t)
	p := startDev(t, filepath.Join(t.TempDir(), "data"),
		"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.caFile)
	if !p.info.TLS {
		t.Error("ready file says TLS is off")
	}

	getKeys := func(cfg *tls.Config) error {
		cc, err := grpc.NewClient(p.info.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = callsignv1.NewAuthServiceClient(cc).GetKeys(ctx, &callsignv1.GetKeysRequest{})
		return err
	}
	if err := getKeys(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, MinVersion: tls.VersionTLS12}); err != nil {
		t.Errorf("GetKeys with a client certificate: %v", err)
	}
	if err := getKeys(&tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}); err == nil {
		t.Error("GetKeys without a client certificate succeeded under mTLS")
	}

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + p.info.HTTPAddr + "/.well-known/jwks.json")
	if err != nil {
		t.Fatalf("JWKS over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("JWKS over TLS = %d", resp.StatusCode)
	}
	// Plain HTTP on the TLS port is refused.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + p.info.HTTPAddr + "/healthz"); err == nil {
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served on the TLS listener")
		}
		resp.Body.Close()
	}
}

// TestTLSBadFiles: unreadable or mismatched TLS files stop the start with a
// message that names the flag.
func TestTLSBadFiles(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	for name, args := range map[string][]string{
		"missing cert":      {"--tls-cert", filepath.Join(t.TempDir(), "none.pem"), "--tls-key", pki.serverKey},
		"key of other cert": {"--tls-cert", pki.serverCert, "--tls-key", other.serverKey},
		"CA not PEM":        {"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey, "--tls-client-ca", pki.serverKey},
	} {
		t.Run(name, func(t *testing.T) {
			o, err := parseOptions(append([]string{"--dev"}, args...), env(nil), &discard{})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := tlsConfigs(o, slog.New(slog.DiscardHandler)); err == nil {
				t.Error("accepted")
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestCertReloader: a renewed certificate is served after the next check; a
// half-written renewal (new certificate, old key) keeps the previous one.
func TestCertReloader(t *testing.T) {
	first, second := newTestPKI(t), newTestPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	now := time.Unix(1_700_000_000, 0)
	mtime := now
	install := func(src, dst string) {
		t.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second) // a distinct modification time per write
		if err := os.Chtimes(dst, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	install(first.serverCert, certFile)
	install(first.serverKey, keyFile)

	var logs bytes.Buffer
	r, err := newCertReloader(certFile, keyFile, 10*time.Second, func() time.Time { return now }, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	leaf := func() string {
		t.Helper()
		c, err := r.getCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(c.Certificate[0]) // the leaf, DER
	}
	original := leaf()

	install(second.serverCert, certFile) // the key is still the old one
	now = now.Add(11 * time.Second)
	if leaf() != original {
		t.Error("a certificate whose key is not there yet was served")
	}
	if !strings.Contains(logs.String(), "does not load") {
		t.Errorf("the failed reload was not logged: %s", logs.String())
	}

	install(second.serverKey, keyFile)
	now = now.Add(5 * time.Second)
	if leaf() != original {
		t.Error("reloaded before the check interval")
	}
	now = now.Add(6 * time.Second)
	renewed := leaf()
	if renewed == original {
		t.Error("the renewed certificate was not picked up")
	}
	if !strings.Contains(logs.String(), "reloaded the TLS certificate") {
		t.Errorf("the reload was not logged: %s", logs.String())
	}
}
