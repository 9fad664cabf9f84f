package interceptor

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"google.golang.org/grpc"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// cliEcho answers with the verified caller and user.
type cliEcho struct {
	testv1.UnimplementedTestServiceServer
}

func (cliEcho) Scoped(ctx context.Context, _ *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	c, _ := CallerFromContext(ctx)
	return &testv1.ScopedResponse{Payload: c.ServiceID}, nil
}

func (cliEcho) UserRequired(ctx context.Context, _ *testv1.UserRequiredRequest) (*testv1.UserRequiredResponse, error) {
	c, _ := CallerFromContext(ctx)
	u, _ := UserFromContext(ctx)
	return &testv1.UserRequiredResponse{Payload: c.ServiceID + " for " + u.ID + "@" + u.TenantID}, nil
}

// TestClientWithRealCallsignd runs the calling side against the real
// AuthService: a private_key_jwt credential, a service token for the
// target's audience, a user token from the edge helper, and a server that
// verifies both with keys fetched from the same AuthService.
func TestClientWithRealCallsignd(t *testing.T) {
	ctx := cliCtx(t)
	priv, jwk, err := authsvc.GenerateAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	var pub struct {
		KID string `json:"kid"`
	}
	if err := json.Unmarshal([]byte(jwk), &pub); err != nil || pub.KID == "" {
		t.Fatalf("account JWK without kid: %v", err)
	}
	cfg := authsvc.DefaultConfig()
	cfg.Accounts = []authsvc.AccountConfig{{
		ID:            "orders",
		PublicKeys:    []authsvc.PublicKeyConfig{{JWK: jwk}},
		Grants:        []authsvc.GrantConfig{{Audience: "test", Scopes: []string{"test.read"}}},
		UserAssertion: &authsvc.UserAssertionConfig{Allowed: true, Tenants: []string{"acme"}},
	}}
	svc, err := authsvc.New(ctx, authsvc.NewMemoryStore(), make([]byte, authsvc.KEKSize), cfg,
		authsvc.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	authSrv := grpc.NewServer()
	callsignv1.RegisterAuthServiceServer(authSrv, svc.AuthServer())
	auth := callsignv1.NewAuthServiceClient(cliServe(t, authSrv))

	// The verifying side.
	keys, err := NewLiveKeySource(ctx, auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keys.Close() })
	srv, err := NewServer(keys, WithIssuer(cfg.Issuer), WithAudience("test"),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	testv1.RegisterTestServiceServer(gs, cliEcho{})

	// The calling side.
	cred := PrivateKeyJWT("orders", priv, pub.KID, cfg.Issuer)
	ts, err := NewTokenSource(auth, cred, WithTokenSourceLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	users, err := NewUserTokenSource(auth, cred)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = users.Close() })
	client := testv1.NewTestServiceClient(cliServe(t, gs, cliClientDial(ts)...))

	for range 3 {
		resp, err := client.Scoped(ctx, &testv1.ScopedRequest{})
		if err != nil || resp.GetPayload() != "orders" {
			t.Fatalf("Scoped = %v, %v", resp, err)
		}
	}
	ut, err := users.UserToken(ctx, EdgeUser{ID: "alice", TenantID: "acme", Roles: []string{"buyer"}})
	if err != nil {
		t.Fatalf("UserToken: %v", err)
	}
	resp, err := client.UserRequired(WithUserToken(ctx, ut), &testv1.UserRequiredRequest{})
	if err != nil || resp.GetPayload() != "orders for alice@acme" {
		t.Fatalf("UserRequired = %v, %v", resp, err)
	}

	// A tenant the account may not assert users for: the edge helper fails
	// closed with the reason.
	_, err = users.UserToken(ctx, EdgeUser{ID: "bob", TenantID: "globex"})
	cliAssertUnavailable(t, err)
	if ie, ok := errors.AsType[*IssueError](err); !ok || ie.Reason != callsignv1.Reason_REASON_TENANT_NOT_ALLOWED {
		t.Fatalf("user of another tenant: %v", err)
	}
	// An audience the account has no grant for.
	_, err = ts.Token(ctx, "billing")
	cliAssertUnavailable(t, err)
	if ie, ok := errors.AsType[*IssueError](err); !ok || ie.Reason != callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED {
		t.Fatalf("audience not granted: %v", err)
	}
}
