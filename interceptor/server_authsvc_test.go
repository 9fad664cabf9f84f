package interceptor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// srvAuthVerifier adapts the in-process AuthService to [Verifier].
type srvAuthVerifier struct{ s callsignv1.AuthServiceServer }

func (v srvAuthVerifier) Verify(ctx context.Context, in *callsignv1.VerifyRequest, _ ...grpc.CallOption) (*callsignv1.VerifyResponse, error) {
	return v.s.Verify(ctx, in)
}

// TestServerWithAuthService verifies tokens issued by the real AuthService, with
// a live key source fed by its GetKeys, and sees a revocation made through the
// AdminService once the key source has refreshed; and the same tokens through
// central verification.
func TestServerWithAuthService(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	cfg := authsvc.DefaultConfig()
	cfg.Issuer = srvIssuer
	cfg.Accounts = []authsvc.AccountConfig{{
		ID:         "orders",
		PublicKeys: []authsvc.PublicKeyConfig{{KID: "orders-1", JWK: jwk}},
		Grants:     []authsvc.GrantConfig{{Audience: srvAudience, Scopes: []string{"test.read", "test.write"}}},
	}}
	clock := newSrvClock()
	clock.now = time.Now().Truncate(time.Second)
	ctx := context.Background()
	svc, err := authsvc.New(ctx, authsvc.NewMemoryStore(), bytes.Repeat([]byte{7}, authsvc.KEKSize), cfg, authsvc.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	auth, admin := svc.AuthServer(), svc.AdminServer()
	issue := func() *callsignv1.IssueTokenResponse {
		t.Helper()
		assertion, err := token.SignAssertion(priv, "orders-1", "orders", srvIssuer, clock.Now(), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
			Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: assertion},
			Audience:   srvAudience,
			Scopes:     []string{"test.read"},
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	var live *LiveKeySource
	e := newSrvEnv(t, srvEnvConfig{source: func(e *srvEnv) KeySource {
		e.clock = clock
		live = newSrvLive(t, svc, clock)
		return live
	}})
	tok := issue()
	md := srvMD(MDAuthorization, srvBearer(tok.GetToken()))
	for kind := kindUnary; kind <= kindClientStream; kind++ {
		method := map[rpcKind]string{kindUnary: "Scoped", kindServerStream: "ServerStream", kindClientStream: "ClientStream"}[kind]
		_, err := e.call(kind, method, md)
		want := ""
		if kind == kindClientStream {
			want = "SCOPE_MISSING" // the token carries test.read only
		}
		if _, r := srvReason(t, err); r != want {
			t.Fatalf("%v: reason %q, want %q", kind, r, want)
		}
	}
	if s := e.svc.seen(); len(s) != 2 || s[0].caller.ServiceID != "orders" || s[0].caller.TokenID != tok.GetTokenId() {
		t.Fatalf("handlers saw %+v", s)
	}

	// Revoke the token: refused once the key source has the new state.
	if _, err := admin.RevokeToken(ctx, &callsignv1.RevokeTokenRequest{TokenId: tok.GetTokenId()}); err != nil {
		t.Fatal(err)
	}
	srvWaitUpdated(t, live, clock)
	if _, err := e.call(kindUnary, "Scoped", md); err == nil {
		t.Fatal("a revoked token was accepted")
	} else if _, r := srvReason(t, err); r != "TOKEN_REVOKED" {
		t.Fatalf("reason %s", r)
	}

	// Central verification against the same service.
	c := newSrvEnv(t, srvEnvConfig{
		source: func(e *srvEnv) KeySource { e.clock = clock; return nil },
		opts:   []ServerOption{WithCentralVerification(srvAuthVerifier{auth})},
	})
	fresh := issue()
	if _, err := c.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(fresh.GetToken()))); err != nil {
		t.Fatalf("central: %v", err)
	}
	if _, err := c.call(kindUnary, "Scoped", md); err == nil {
		t.Fatal("central: a revoked token was accepted")
	} else if _, r := srvReason(t, err); r != "TOKEN_REVOKED" {
		t.Fatalf("central: reason %s", r)
	}
}
