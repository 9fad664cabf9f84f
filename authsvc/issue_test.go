package authsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

func TestIssueTokenPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp, err := e.auth.IssueToken(ctx, issueReq(e.assertion("orders"), "billing"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTokenType() != callsignv1.TokenType_TOKEN_TYPE_SERVICE {
		t.Errorf("token type = %v", resp.GetTokenType())
	}
	if got := strings.Join(resp.GetScopes(), " "); got != "billing.charge billing.refund" {
		t.Errorf("scopes = %q", got)
	}
	c, err := token.Verify(resp.GetToken(), token.EdDSA, e.keySet(), token.Expect{
		Issuer: "callsign", Audience: "billing", Type: token.TypeService, Now: e.clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().Truncate(time.Second)
	if c.Subject != "orders" || c.Issuer != "callsign" || c.Audience != "billing" {
		t.Errorf("claims = %+v", c)
	}
	if !c.IssuedAt.Equal(now) || !c.Expiry.Equal(now.Add(5*time.Minute)) || !c.NotBefore.Equal(now) {
		t.Errorf("times: iat %v nbf %v exp %v", c.IssuedAt, c.NotBefore, c.Expiry)
	}
	if !resp.GetExpireTime().AsTime().Equal(c.Expiry) || resp.GetTokenId() != c.ID || len(c.ID) != 22 {
		t.Errorf("response does not match claims: %v %v", resp.GetExpireTime().AsTime(), resp.GetTokenId())
	}
	if c.TenantID != "" {
		t.Errorf("tenant_id = %q on an ordinary service token", c.TenantID)
	}
	if !strings.Contains(e.logs.String(), "token issued") || strings.Contains(e.logs.String(), resp.GetToken()[:40]) {
		t.Error("issuance not logged, or token in logs")
	}
}

func TestIssueTokenClientSecret(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret := e.rotateSecret("orders", false)
	if !strings.HasPrefix(secret, "cs_") || len(secret) != 46 {
		t.Fatalf("secret has the wrong form (length %d)", len(secret))
	}
	resp, err := e.auth.IssueToken(ctx, secretReq("orders", secret, "billing"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := token.Verify(resp.GetToken(), token.EdDSA, e.keySet(), token.Expect{
		Issuer: "callsign", Audience: "billing", Type: token.TypeService, Now: e.clock.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	// A secret is reusable (unlike an assertion); a second secret works too,
	// and replace_existing revokes the first.
	if _, err := e.auth.IssueToken(ctx, secretReq("orders", secret, "billing")); err != nil {
		t.Fatal(err)
	}
	second := e.rotateSecret("orders", true)
	if _, err := e.auth.IssueToken(ctx, secretReq("orders", second, "billing")); err != nil {
		t.Fatal(err)
	}
	_, err = e.auth.IssueToken(ctx, secretReq("orders", secret, "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
	// Only the hash is stored.
	acct, err := e.store.GetAccount(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := encodeAccount(acct)
	if strings.Contains(string(doc), second) || strings.Contains(string(doc), second[3:]) {
		t.Error("the secret is stored in clear")
	}
	if strings.Contains(e.logs.String(), second[3:]) {
		t.Error("the secret is logged")
	}
}

func TestIssueTokenUserContext(t *testing.T) {
	e := newEnv(t)
	resp, err := e.auth.IssueToken(context.Background(), &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion("edge")},
		User:       &callsignv1.UserContext{UserId: "user-42", TenantId: "t2", Roles: []string{"admin", "buyer"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTokenType() != callsignv1.TokenType_TOKEN_TYPE_USER || len(resp.GetScopes()) != 0 {
		t.Errorf("type %v scopes %v", resp.GetTokenType(), resp.GetScopes())
	}
	c, err := token.Verify(resp.GetToken(), token.EdDSA, e.keySet(), token.Expect{
		Issuer: "callsign", Audience: "callsign", Type: token.TypeUser, Now: e.clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "user-42" || c.Actor != "edge" || c.TenantID != "t2" || strings.Join(c.Roles, ",") != "admin,buyer" {
		t.Errorf("claims = %+v", c)
	}
	// Never accepted as a service token.
	if _, err := token.Verify(resp.GetToken(), token.EdDSA, e.keySet(), token.Expect{
		Issuer: "callsign", Audience: "callsign", Type: token.TypeService, Now: e.clock.Now(),
	}); err == nil {
		t.Error("a user token verified as a service token")
	}
}

func TestIssueTokenTenantScopedServiceToken(t *testing.T) {
	e := newEnv(t)
	req := issueReq(e.assertion("orders"), "billing", "billing.charge")
	req.TenantId = "t1"
	req.Lifetime = durationpb.New(time.Minute)
	resp, err := e.auth.IssueToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	c, err := token.Verify(resp.GetToken(), token.EdDSA, e.keySet(), token.Expect{
		Issuer: "callsign", Audience: "billing", Type: token.TypeService, Now: e.clock.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.TenantID != "t1" || strings.Join(c.Scopes, " ") != "billing.charge" || c.Expiry.Sub(c.IssuedAt) != time.Minute {
		t.Errorf("claims = %+v", c)
	}
}

// TestIssueTokenRefusals covers each refusal over gRPC. The credential cases
// all get the same status, message and reason, and change nothing.
func TestIssueTokenRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	secret := e.rotateSecret("orders", false)
	offSecret := e.rotateSecret("off", false)
	other := newAccountKey(t, "orders-1") // same kid, another key
	expired := e.assertion("orders")
	e.clock.Advance(2 * time.Minute)
	replayed := e.assertion("orders")
	if _, err := e.auth.IssueToken(ctx, issueReq(replayed, "billing")); err != nil {
		t.Fatal(err)
	}
	orders := e.keys["orders"]

	cases := []struct {
		name   string
		req    func() *callsignv1.IssueTokenRequest
		code   codes.Code
		reason callsignv1.Reason
	}{
		{"unknown account (assertion)", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertionWith(orders.priv, "orders-1", "nobody", "callsign", 30*time.Second), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"unknown account (secret)", func() *callsignv1.IssueTokenRequest {
			return secretReq("nobody", secret, "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"wrong key", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertionWith(other.priv, "orders-1", "orders", "callsign", 30*time.Second), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"unknown kid", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertionWith(orders.priv, "orders-9", "orders", "callsign", 30*time.Second), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"another account's key", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertionWith(e.keys["edge"].priv, "edge-1", "orders", "callsign", 30*time.Second), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"wrong secret", func() *callsignv1.IssueTokenRequest {
			return secretReq("orders", "cs_"+strings.Repeat("A", 43), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"secret of another form", func() *callsignv1.IssueTokenRequest {
			return secretReq("orders", "hunter2", "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"replayed assertion", func() *callsignv1.IssueTokenRequest {
			return issueReq(replayed, "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"expired assertion", func() *callsignv1.IssueTokenRequest {
			return issueReq(expired, "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"far-future assertion", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertionWith(orders.priv, "orders-1", "orders", "callsign", 5*time.Minute), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"wrong assertion audience", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertionWith(orders.priv, "orders-1", "orders", "billing", 30*time.Second), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"disabled account (assertion)", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertion("off"), "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"disabled account (secret)", func() *callsignv1.IssueTokenRequest {
			return secretReq("off", offSecret, "billing")
		}, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID},
		{"audience not granted", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertion("orders"), "inventory")
		}, codes.PermissionDenied, callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED},
		{"no grants at all", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertion("nogrant"), "billing")
		}, codes.PermissionDenied, callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED},
		{"scope not granted", func() *callsignv1.IssueTokenRequest {
			return issueReq(e.assertion("orders"), "billing", "billing.charge", "billing.admin")
		}, codes.PermissionDenied, callsignv1.Reason_REASON_SCOPE_NOT_GRANTED},
		{"lifetime too long", func() *callsignv1.IssueTokenRequest {
			r := issueReq(e.assertion("orders"), "billing")
			r.Lifetime = durationpb.New(16 * time.Minute)
			return r
		}, codes.PermissionDenied, callsignv1.Reason_REASON_LIFETIME_TOO_LONG},
		{"user assertion by an account not allowed to", func() *callsignv1.IssueTokenRequest {
			return &callsignv1.IssueTokenRequest{
				Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion("orders")},
				User:       &callsignv1.UserContext{UserId: "u1", TenantId: "t1"},
			}
		}, codes.PermissionDenied, callsignv1.Reason_REASON_USER_ASSERTION_DENIED},
		{"user of a tenant not allowed", func() *callsignv1.IssueTokenRequest {
			return &callsignv1.IssueTokenRequest{
				Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion("edge")},
				User:       &callsignv1.UserContext{UserId: "u1", TenantId: "t3"},
			}
		}, codes.PermissionDenied, callsignv1.Reason_REASON_TENANT_NOT_ALLOWED},
		{"service token for a tenant not allowed", func() *callsignv1.IssueTokenRequest {
			r := issueReq(e.assertion("orders"), "billing")
			r.TenantId = "t2"
			return r
		}, codes.PermissionDenied, callsignv1.Reason_REASON_TENANT_NOT_ALLOWED},
	}
	var credentialMessage string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			before := e.snapshot()
			_, err := e.auth.IssueToken(ctx, req)
			wantStatus(t, err, tc.code, tc.reason)
			if tc.reason == callsignv1.Reason_REASON_CREDENTIAL_INVALID {
				if e.snapshot() != before {
					t.Error("a refused credential changed the store")
				}
				msg := status.Convert(err).Message()
				if credentialMessage == "" {
					credentialMessage = msg
				} else if msg != credentialMessage {
					t.Errorf("message %q differs from %q", msg, credentialMessage)
				}
			}
			if a := req.GetClientAssertion(); a != "" && strings.Contains(e.logs.String(), a[len(a)-30:]) {
				t.Error("assertion in logs")
			}
		})
	}
	if strings.Contains(e.logs.String(), "nobody") {
		t.Error("an unverified account id was logged")
	}
}

// TestIssueTokenInvalidRequests covers field validation: InvalidArgument,
// REQUEST_INVALID, a fixed message that echoes nothing, no change in storage.
func TestIssueTokenInvalidRequests(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	good := func() *callsignv1.IssueTokenRequest { return issueReq(e.assertion("orders"), "billing") }
	cases := map[string]func(r *callsignv1.IssueTokenRequest){
		"no credential":   func(r *callsignv1.IssueTokenRequest) { r.Credential = nil },
		"empty assertion": func(r *callsignv1.IssueTokenRequest) { r.Credential = &callsignv1.IssueTokenRequest_ClientAssertion{} },
		"assertion charset": func(r *callsignv1.IssueTokenRequest) {
			r.Credential = &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: "a.b.c d"}
		},
		"assertion three dots": func(r *callsignv1.IssueTokenRequest) {
			r.Credential = &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: "a.b.c.d"}
		},
		"assertion too long": func(r *callsignv1.IssueTokenRequest) {
			r.Credential = &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: "a.b." + strings.Repeat("c", 8190)}
		},
		"nil client secret": func(r *callsignv1.IssueTokenRequest) { r.Credential = &callsignv1.IssueTokenRequest_ClientSecret{} },
		"secret account invalid": func(r *callsignv1.IssueTokenRequest) {
			r.Credential = &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: "Orders", Secret: "cs_x"}}
		},
		"secret too long": func(r *callsignv1.IssueTokenRequest) {
			r.Credential = &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: "orders", Secret: strings.Repeat("x", 257)}}
		},
		"secret with space": func(r *callsignv1.IssueTokenRequest) {
			r.Credential = &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: "orders", Secret: "cs_ x"}}
		},
		"no audience":            func(r *callsignv1.IssueTokenRequest) { r.Audience = "" },
		"audience uppercase":     func(r *callsignv1.IssueTokenRequest) { r.Audience = "Billing" },
		"audience leading dot":   func(r *callsignv1.IssueTokenRequest) { r.Audience = ".billing" },
		"audience 64 characters": func(r *callsignv1.IssueTokenRequest) { r.Audience = strings.Repeat("a", 64) },
		"audience bad spiffe":    func(r *callsignv1.IssueTokenRequest) { r.Audience = "spiffe://example.org/a//b" },
		"audience spiffe dotdot": func(r *callsignv1.IssueTokenRequest) { r.Audience = "spiffe://example.org/../b" },
		"scope empty":            func(r *callsignv1.IssueTokenRequest) { r.Scopes = []string{""} },
		"scope charset":          func(r *callsignv1.IssueTokenRequest) { r.Scopes = []string{"a b"} },
		"scope too long":         func(r *callsignv1.IssueTokenRequest) { r.Scopes = []string{strings.Repeat("s", 129)} },
		"scope duplicate":        func(r *callsignv1.IssueTokenRequest) { r.Scopes = []string{"billing.charge", "billing.charge"} },
		"33 scopes": func(r *callsignv1.IssueTokenRequest) {
			for i := range 33 {
				r.Scopes = append(r.Scopes, "s"+strings.Repeat("x", i))
			}
		},
		"lifetime negative":   func(r *callsignv1.IssueTokenRequest) { r.Lifetime = durationpb.New(-time.Minute) },
		"lifetime too short":  func(r *callsignv1.IssueTokenRequest) { r.Lifetime = durationpb.New(9 * time.Second) },
		"lifetime fractional": func(r *callsignv1.IssueTokenRequest) { r.Lifetime = durationpb.New(time.Minute + time.Millisecond) },
		"lifetime invalid":    func(r *callsignv1.IssueTokenRequest) { r.Lifetime = &durationpb.Duration{Seconds: 60, Nanos: -1} },
		"tenant with space":   func(r *callsignv1.IssueTokenRequest) { r.TenantId = "t 1" },
		"tenant too long":     func(r *callsignv1.IssueTokenRequest) { r.TenantId = strings.Repeat("t", 257) },
		"user and audience": func(r *callsignv1.IssueTokenRequest) {
			r.User = &callsignv1.UserContext{UserId: "u", TenantId: "t1"}
		},
		"user with scopes": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.Scopes = []string{"a"}
			r.User = &callsignv1.UserContext{UserId: "u", TenantId: "t1"}
		},
		"user with service tenant": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.TenantId = "t1"
			r.User = &callsignv1.UserContext{UserId: "u", TenantId: "t1"}
		},
		"user without id": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.User = &callsignv1.UserContext{TenantId: "t1"}
		},
		"user without tenant": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.User = &callsignv1.UserContext{UserId: "u"}
		},
		"user id control character": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.User = &callsignv1.UserContext{UserId: "u\x01", TenantId: "t1"}
		},
		"user id non-ASCII": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.User = &callsignv1.UserContext{UserId: "ü", TenantId: "t1"}
		},
		"role charset": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.User = &callsignv1.UserContext{UserId: "u", TenantId: "t1", Roles: []string{"a,b"}}
		},
		"33 roles": func(r *callsignv1.IssueTokenRequest) {
			r.Audience = ""
			r.User = &callsignv1.UserContext{UserId: "u", TenantId: "t1"}
			for i := range 33 {
				r.User.Roles = append(r.User.Roles, "r"+strings.Repeat("x", i))
			}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			req := good()
			mutate(req)
			before := e.snapshot()
			_, err := e.auth.IssueToken(ctx, req)
			wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
			if msg := status.Convert(err).Message(); msg != "callsign: invalid request" {
				t.Errorf("message %q", msg)
			}
			if e.snapshot() != before {
				t.Error("an invalid request changed the store")
			}
		})
	}
	// The assertion of the good request was never spent by the refusals above.
	t.Run("valid request still works", func(t *testing.T) {
		if _, err := e.auth.IssueToken(ctx, good()); err != nil {
			t.Fatal(err)
		}
	})
}

// TestIssueTokenOversized: a request over 64 KiB is refused by the transport
// limit the server sets, and by the validator when called directly.
func TestIssueTokenOversized(t *testing.T) {
	e := newEnv(t)
	req := issueReq(e.assertion("orders"), "billing")
	req.User = &callsignv1.UserContext{UserId: strings.Repeat("u", 70<<10)}
	_, err := e.auth.IssueToken(context.Background(), req)
	if status.Code(err) != codes.ResourceExhausted && status.Code(err) != codes.InvalidArgument {
		t.Fatalf("oversized request: %v", err)
	}
	_, err = e.svc.AuthServer().IssueToken(context.Background(), req)
	wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
}

func TestIssueTokenExpiredCredentials(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	k := newAccountKey(t, "short-1")
	if _, err := e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{
		AccountId: "orders", Jwk: k.jwk, KeyId: k.kid, ExpireTime: timestampAt(now.Add(time.Hour)),
	}); err != nil {
		t.Fatal(err)
	}
	sec, err := e.admin.RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "orders", ExpireTime: timestampAt(now.Add(time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.IssueToken(ctx, issueReq(e.assertionWith(k.priv, k.kid, "orders", "callsign", 30*time.Second), "billing")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.IssueToken(ctx, secretReq("orders", sec.GetSecret(), "billing")); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	_, err = e.auth.IssueToken(ctx, issueReq(e.assertionWith(k.priv, k.kid, "orders", "callsign", 30*time.Second), "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
	_, err = e.auth.IssueToken(ctx, secretReq("orders", sec.GetSecret(), "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
}

// TestIssueTokenNoOracle: an unknown account and a known one with a wrong
// credential go through the same checks; the dummy comparison is there (the
// dummy key and hash exist and differ per service).
func TestIssueTokenNoOracle(t *testing.T) {
	e := newEnv(t)
	if len(e.svc.dummyKey) != ed25519.PublicKeySize || e.svc.dummyHash == [32]byte{} {
		t.Fatal("no dummy credential to compare against")
	}
	ctx := context.Background()
	_, errUnknown := e.auth.IssueToken(ctx, secretReq("nobody", "cs_"+strings.Repeat("A", 43), "billing"))
	_, errWrong := e.auth.IssueToken(ctx, secretReq("orders", "cs_"+strings.Repeat("A", 43), "billing"))
	if status.Convert(errUnknown).String() != status.Convert(errWrong).String() {
		t.Errorf("answers differ:\n%v\n%v", errUnknown, errWrong)
	}
}

// TestIssueTokenAssertionWindow: exp at most 60 s ahead, plus the skew for a
// client whose clock runs ahead; beyond that refused.
func TestIssueTokenAssertionWindow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k := e.keys["orders"]
	ok := e.assertionWith(k.priv, k.kid, "orders", "callsign", MaxAssertionAhead+e.cfg.Skew)
	if _, err := e.auth.IssueToken(ctx, issueReq(ok, "billing")); err != nil {
		t.Fatalf("assertion at the limit: %v", err)
	}
	far := e.assertionWith(k.priv, k.kid, "orders", "callsign", MaxAssertionAhead+e.cfg.Skew+time.Second)
	_, err := e.auth.IssueToken(ctx, issueReq(far, "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
	// Used at the last second of its validity, and not after.
	late := e.assertion("orders") // exp = now + 30 s
	e.clock.Advance(30*time.Second + e.cfg.Skew - time.Second)
	if _, err := e.auth.IssueToken(ctx, issueReq(late, "billing")); err != nil {
		t.Fatalf("assertion within exp + skew: %v", err)
	}
	expired := e.assertion("orders")
	e.clock.Advance(30*time.Second + e.cfg.Skew)
	_, err = e.auth.IssueToken(ctx, issueReq(expired, "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
}

// TestIssueTokenHostileAssertions: assertions built by an attacker (algorithm
// confusion, extra header members, duplicate claims, key ids that try to
// escape, claims for another account, an unsigned token) are all refused with
// the one credential answer.
func TestIssueTokenHostileAssertions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k := e.keys["orders"]
	now := e.clock.Now().Unix()
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	claims := func(sub string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":"callsign","exp":%d,"iat":%d,"jti":"hostile-jti-0000001"}`, sub, sub, now+30, now)
	}
	sign := func(header, payload string) string {
		in := b64(header) + "." + b64(payload)
		return in + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.priv, []byte(in)))
	}
	pubX := base64.RawURLEncoding.EncodeToString(k.priv.Public().(ed25519.PublicKey))
	hmacSig := func(header, payload string) string {
		in := b64(header) + "." + b64(payload)
		m := hmac.New(sha256.New, []byte(pubX))
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	cases := map[string]string{
		"alg none":            b64(`{"alg":"none","kid":"orders-1"}`) + "." + b64(claims("orders")) + ".",
		"alg none with sig":   b64(`{"alg":"none","kid":"orders-1"}`) + "." + b64(claims("orders")) + ".AAAA",
		"HS256 with the pub":  hmacSig(`{"alg":"HS256","kid":"orders-1"}`, claims("orders")),
		"extra header member": sign(`{"alg":"EdDSA","kid":"orders-1","jku":"https://evil"}`, claims("orders")),
		"embedded jwk":        sign(`{"alg":"EdDSA","kid":"orders-1","jwk":{"kty":"OKP"}}`, claims("orders")),
		"kid traversal":       sign(`{"alg":"EdDSA","kid":"../../orders-1"}`, claims("orders")),
		"duplicate sub":       sign(`{"alg":"EdDSA","kid":"orders-1"}`, strings.Replace(claims("orders"), `"aud"`, `"sub":"edge","aud"`, 1)),
		"iss differs":         sign(`{"alg":"EdDSA","kid":"orders-1"}`, strings.Replace(claims("orders"), `"iss":"orders"`, `"iss":"edge"`, 1)),
		"exp as string":       sign(`{"alg":"EdDSA","kid":"orders-1"}`, strings.Replace(claims("orders"), fmt.Sprintf(`"exp":%d`, now+30), fmt.Sprintf(`"exp":"%d"`, now+30), 1)),
		"typ svc+jwt":         sign(`{"alg":"EdDSA","kid":"orders-1","typ":"svc+jwt"}`, claims("orders")),
		"no kid":              sign(`{"alg":"EdDSA"}`, claims("orders")),
		"claims not object":   sign(`{"alg":"EdDSA","kid":"orders-1"}`, `["orders"]`),
		"short jti":           sign(`{"alg":"EdDSA","kid":"orders-1"}`, strings.Replace(claims("orders"), "hostile-jti-0000001", "x", 1)),
		"padded signature":    sign(`{"alg":"EdDSA","kid":"orders-1"}`, claims("orders")) + "==",
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			req := issueReq(a, "billing")
			_, err := e.auth.IssueToken(ctx, req)
			if status.Code(err) == codes.InvalidArgument {
				wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
				return
			}
			wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
		})
	}
	// The well-formed control case passes, so the cases above fail for their
	// defect and not for the way they were built.
	if _, err := e.auth.IssueToken(ctx, issueReq(sign(`{"alg":"EdDSA","kid":"orders-1","typ":"JWT"}`, claims("orders")), "billing")); err != nil {
		t.Fatalf("control assertion: %v", err)
	}
}

// TestIssueTokenTooLargeForAToken: each field within its limit, all at their
// limits together, would make a token verifiers refuse: InvalidArgument, not
// an internal error.
func TestIssueTokenTooLargeForAToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	long := "spiffe://example.org/" + strings.Repeat("a", 2000)
	k := newAccountKey(t, "long-1")
	for _, step := range []func() error{
		func() error {
			_, err := e.admin.CreateAccount(ctx, &callsignv1.CreateAccountRequest{AccountId: long})
			return err
		},
		func() error { _, err := e.admin.AddPublicKey(ctx, addKeyReq(long, k)); return err },
		func() error {
			_, err := e.admin.SetUserAssertion(ctx, &callsignv1.SetUserAssertionRequest{AccountId: long, UserAssertion: &callsignv1.UserAssertion{Allowed: true, Tenants: []string{"*"}}})
			return err
		},
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	e.keys[long] = k
	user := &callsignv1.UserContext{UserId: strings.Repeat("u", 256), TenantId: strings.Repeat("t", 256)}
	for i := range 32 {
		user.Roles = append(user.Roles, fmt.Sprintf("%03d", i)+strings.Repeat("r", 125))
	}
	_, err := e.auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion(long)},
		User:       user,
	})
	wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
	// Fewer roles fit.
	user.Roles = user.Roles[:8]
	resp, err := e.auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion(long)},
		User:       user,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.verify(resp.GetToken(), callsignv1.TokenType_TOKEN_TYPE_USER, ""); !r.GetActive() {
		t.Fatalf("large token: %v", r.GetReason())
	}
}

// TestTokenFitsNeverPassesAnOversizedToken: whatever tokenFits accepts signs
// within the size limit, for claims of random sizes around the limit.
func TestTokenFitsNeverPassesAnOversizedToken(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key := token.Key{ID: "k1", Algorithm: token.EdDSA, Public: priv.Public()}
	signer, err := token.NewSigner(key, priv)
	if err != nil {
		t.Fatal(err)
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	text := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "ab\"\\x"[rng.IntN(5)]
		}
		return string(b)
	}
	iat := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	accepted, refused := 0, 0
	for range 2000 {
		c := token.Claims{
			Type: token.TypeUser, Issuer: "callsign", Audience: "callsign", IssuedAt: iat, Expiry: iat.Add(time.Minute),
			ID: "abcdefghijklmnopqrstuv", Subject: text(1 + rng.IntN(256)), TenantID: text(1 + rng.IntN(256)),
			Actor: "spiffe://example.org/" + strings.Repeat("a", rng.IntN(2000)),
		}
		for range rng.IntN(33) {
			c.Roles = append(c.Roles, text(1+rng.IntN(128)))
		}
		if !tokenFits(&c, key.ID) {
			refused++
			continue
		}
		accepted++
		tok, err := signer.Sign(c)
		if err != nil || len(tok) > token.MaxTokenSize {
			t.Fatalf("tokenFits passed a token that does not sign within the limit: %v (%d bytes)", err, len(tok))
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("the sample did not straddle the limit: %d accepted, %d refused", accepted, refused)
	}
}

// TestLogsHoldNoCredentials runs every kind of call, accepted and refused, at
// Debug level and checks that no token, assertion or secret (nor a long
// piece of one) reached the log.
func TestLogsHoldNoCredentials(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var secrets []string
	secret := e.rotateSecret("orders", false)
	secrets = append(secrets, secret)
	a1 := e.assertion("orders")
	secrets = append(secrets, a1)
	r1, err := e.auth.IssueToken(ctx, issueReq(a1, "billing"))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, r1.GetToken())
	_, _ = e.auth.IssueToken(ctx, issueReq(a1, "billing")) // replay
	r2, err := e.auth.IssueToken(ctx, secretReq("orders", secret, "billing"))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, r2.GetToken())
	wrong := "cs_" + strings.Repeat("Z", 43)
	secrets = append(secrets, wrong)
	_, _ = e.auth.IssueToken(ctx, secretReq("orders", wrong, "billing"))
	u := e.issueUser("edge", "user-1", "t1")
	secrets = append(secrets, u.GetToken())
	e.verify(r1.GetToken(), 0, "billing")
	e.verify(r1.GetToken()+"x", 0, "billing")
	if _, err := e.admin.RevokeToken(ctx, &callsignv1.RevokeTokenRequest{TokenId: r1.GetTokenId()}); err != nil {
		t.Fatal(err)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "credential refused") || !strings.Contains(logs, "token issued") {
		t.Fatalf("expected log records missing:\n%s", logs)
	}
	for _, s := range secrets {
		for part := range strings.SplitSeq(s, ".") {
			if len(part) >= 16 && strings.Contains(logs, part[len(part)-16:]) {
				t.Fatalf("a credential reached the log:\n%s", logs)
			}
		}
	}
}
