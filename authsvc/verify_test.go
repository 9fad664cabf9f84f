package authsvc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func (e *env) issue(account, audience string) *callsignv1.IssueTokenResponse {
	e.t.Helper()
	resp, err := e.auth.IssueToken(context.Background(), issueReq(e.assertion(account), audience))
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) issueUser(account, user, tenant string) *callsignv1.IssueTokenResponse {
	e.t.Helper()
	resp, err := e.auth.IssueToken(context.Background(), &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion(account)},
		User:       &callsignv1.UserContext{UserId: user, TenantId: tenant, Roles: []string{"viewer"}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) verify(tok string, typ callsignv1.TokenType, aud string) *callsignv1.VerifyResponse {
	e.t.Helper()
	resp, err := e.auth.Verify(context.Background(), &callsignv1.VerifyRequest{Token: tok, TokenType: typ, Audience: aud})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func TestVerify(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc := e.issue("orders", "billing")
	usr := e.issueUser("edge", "user-1", "t1")

	t.Run("service token active", func(t *testing.T) {
		r := e.verify(svc.GetToken(), callsignv1.TokenType_TOKEN_TYPE_UNSPECIFIED, "billing")
		if !r.GetActive() || r.GetReason() != callsignv1.Reason_REASON_UNSPECIFIED {
			t.Fatalf("verdict %v %v", r.GetActive(), r.GetReason())
		}
		c := r.GetClaims()
		if c.GetSubject() != "orders" || c.GetAudience() != "billing" || c.GetTokenId() != svc.GetTokenId() ||
			c.GetTokenType() != callsignv1.TokenType_TOKEN_TYPE_SERVICE || len(c.GetScopes()) != 2 || c.GetNotBefore() == nil {
			t.Errorf("claims %v", c)
		}
		if d := r.GetCacheFor().AsDuration(); d <= 0 || d > e.cfg.RefreshHint {
			t.Errorf("cache_for %v", d)
		}
	})
	t.Run("user token active", func(t *testing.T) {
		r := e.verify(usr.GetToken(), callsignv1.TokenType_TOKEN_TYPE_USER, "")
		if !r.GetActive() {
			t.Fatalf("verdict %v", r.GetReason())
		}
		if c := r.GetClaims(); c.GetActor() != "edge" || c.GetSubject() != "user-1" || c.GetTenantId() != "t1" || c.GetRoles()[0] != "viewer" {
			t.Errorf("claims %v", c)
		}
	})
	inactiveCases := []struct {
		name string
		tok  string
		typ  callsignv1.TokenType
		aud  string
		want callsignv1.Reason
	}{
		{"wrong audience", svc.GetToken(), callsignv1.TokenType_TOKEN_TYPE_SERVICE, "inventory", callsignv1.Reason_REASON_AUDIENCE_MISMATCH},
		{"user token as service token", usr.GetToken(), callsignv1.TokenType_TOKEN_TYPE_SERVICE, "callsign", callsignv1.Reason_REASON_TYPE_MISMATCH},
		{"service token as user token", svc.GetToken(), callsignv1.TokenType_TOKEN_TYPE_USER, "", callsignv1.Reason_REASON_TYPE_MISMATCH},
		{"garbage", "aaaa.bbbb.cccc", callsignv1.TokenType_TOKEN_TYPE_SERVICE, "billing", callsignv1.Reason_REASON_TOKEN_MALFORMED},
		{"bad signature", svc.GetToken()[:len(svc.GetToken())-4] + "AAAA", callsignv1.TokenType_TOKEN_TYPE_SERVICE, "billing", callsignv1.Reason_REASON_SIGNATURE_INVALID},
	}
	for _, tc := range inactiveCases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.verify(tc.tok, tc.typ, tc.aud)
			if r.GetActive() || r.GetReason() != tc.want || r.GetClaims() != nil {
				t.Fatalf("verdict %v %v, want inactive %v", r.GetActive(), r.GetReason(), tc.want)
			}
		})
	}
	t.Run("invalid requests", func(t *testing.T) {
		for name, req := range map[string]*callsignv1.VerifyRequest{
			"empty token":           {Audience: "billing"},
			"token charset":         {Token: "a.b.c!", Audience: "billing"},
			"no audience":           {Token: svc.GetToken()},
			"bad audience":          {Token: svc.GetToken(), Audience: "B"},
			"user with audience":    {Token: usr.GetToken(), TokenType: callsignv1.TokenType_TOKEN_TYPE_USER, Audience: "callsign"},
			"unknown token type":    {Token: svc.GetToken(), TokenType: 7, Audience: "billing"},
			"token longer than cap": {Token: "a.b." + string(make([]byte, 8200)), Audience: "billing"},
		} {
			_, err := e.auth.Verify(ctx, req)
			if err == nil {
				t.Fatalf("%s: no error", name)
			}
			wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
		}
	})
}

func TestVerifyRevocationAndAccountStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.issue("orders", "billing")
	b := e.issue("orders", "billing")
	u := e.issueUser("edge", "user-1", "t1")

	if _, err := e.admin.RevokeToken(ctx, &callsignv1.RevokeTokenRequest{TokenId: a.GetTokenId(), ExpireTime: a.GetExpireTime()}); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(a.GetToken(), 0, "billing"); r.GetActive() || r.GetReason() != callsignv1.Reason_REASON_TOKEN_REVOKED {
		t.Fatalf("revoked jti: %v %v", r.GetActive(), r.GetReason())
	}
	if r := e.verify(b.GetToken(), 0, "billing"); !r.GetActive() {
		t.Fatalf("other token: %v", r.GetReason())
	}

	// Disabling the account behind a user token (its actor) makes it inactive.
	if _, err := e.admin.DisableAccount(ctx, &callsignv1.DisableAccountRequest{AccountId: "edge"}); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(u.GetToken(), callsignv1.TokenType_TOKEN_TYPE_USER, ""); r.GetActive() || r.GetReason() != callsignv1.Reason_REASON_ACCOUNT_DISABLED {
		t.Fatalf("disabled actor: %v %v", r.GetActive(), r.GetReason())
	}
	if _, err := e.admin.EnableAccount(ctx, &callsignv1.EnableAccountRequest{AccountId: "edge"}); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(u.GetToken(), callsignv1.TokenType_TOKEN_TYPE_USER, ""); !r.GetActive() {
		t.Fatalf("re-enabled actor: %v", r.GetReason())
	}

	// Revoking the account's tokens issued before now: b is revoked, a token
	// issued a second later is not.
	e.clock.Advance(time.Second)
	if _, err := e.admin.RevokeAccountTokens(ctx, &callsignv1.RevokeAccountTokensRequest{AccountId: "orders"}); err != nil {
		t.Fatal(err)
	}
	if r := e.verify(b.GetToken(), 0, "billing"); r.GetActive() || r.GetReason() != callsignv1.Reason_REASON_TOKEN_REVOKED {
		t.Fatalf("account revoked: %v %v", r.GetActive(), r.GetReason())
	}
	e.clock.Advance(time.Second)
	c := e.issue("orders", "billing")
	if r := e.verify(c.GetToken(), 0, "billing"); !r.GetActive() {
		t.Fatalf("token after the revocation: %v", r.GetReason())
	}

	// GetKeys publishes all of it.
	keys, err := e.auth.GetKeys(ctx, &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.GetRevokedTokens()) != 1 || keys.GetRevokedTokens()[0].GetTokenId() != a.GetTokenId() ||
		len(keys.GetRevokedAccounts()) != 1 || keys.GetRevokedAccounts()[0].GetAccountId() != "orders" ||
		len(keys.GetDisabledAccounts()) != 1 || keys.GetDisabledAccounts()[0].GetAccountId() != "off" {
		t.Fatalf("published state: %v", keys)
	}

	// Expiry: the token is inactive once past exp plus skew, and the
	// revocation records are dropped by the lifecycle tick after that.
	e.clock.Advance(5*time.Minute + e.cfg.Skew)
	if r := e.verify(c.GetToken(), 0, "billing"); r.GetActive() || r.GetReason() != callsignv1.Reason_REASON_TOKEN_EXPIRED {
		t.Fatalf("expired: %v %v", r.GetActive(), r.GetReason())
	}
	v1 := keys.GetVersion()
	e.clock.Advance(e.cfg.MaxTokenLifetime)
	if err := e.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	keys, err = e.auth.GetKeys(ctx, &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys.GetRevokedTokens()) != 0 || len(keys.GetRevokedAccounts()) != 0 {
		t.Fatalf("revocation records not dropped: %v", keys)
	}
	if keys.GetVersion() <= v1 {
		t.Errorf("version %d did not increase past %d", keys.GetVersion(), v1)
	}
}

func TestGetKeysVersionIncreases(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	version := func() uint64 {
		r, err := e.svc.GetKeys(ctx, &callsignv1.GetKeysRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.GetRefreshInterval().AsDuration() != time.Minute {
			t.Fatalf("refresh interval %v", r.GetRefreshInterval().AsDuration())
		}
		return r.GetVersion()
	}
	v := version()
	steps := map[string]func(){
		"revoke token": func() {
			_, _ = e.admin.RevokeToken(ctx, &callsignv1.RevokeTokenRequest{TokenId: "abcdefghijklmnopqrstuv"})
		},
		"revoke account": func() {
			_, _ = e.admin.RevokeAccountTokens(ctx, &callsignv1.RevokeAccountTokensRequest{AccountId: "orders"})
		},
		"disable": func() { _, _ = e.admin.DisableAccount(ctx, &callsignv1.DisableAccountRequest{AccountId: "orders"}) },
		"enable":  func() { _, _ = e.admin.EnableAccount(ctx, &callsignv1.EnableAccountRequest{AccountId: "orders"}) },
		"rotate":  func() { _ = e.svc.RotateNow(ctx) },
	}
	for _, name := range []string{"revoke token", "revoke account", "disable", "enable", "rotate"} {
		steps[name]()
		nv := version()
		if nv <= v {
			t.Errorf("%s: version %d, was %d", name, nv, v)
		}
		v = nv
	}
	// Nothing changed: same version.
	if err := e.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if nv := version(); nv != v {
		t.Errorf("an idle tick changed the version: %d, was %d", nv, v)
	}
}
