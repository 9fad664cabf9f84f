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
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// srvCase is one end-to-end case: metadata built for the environment, the
// reason expected (empty: allowed), per kind of RPC.
type srvCase struct {
	name string
	md   func(e *srvEnv) metadata.MD
	want string
	// perKind overrides want for some kinds.
	perKind map[rpcKind]string
	// caller is the verified caller expected in the audit record.
	caller string
	// hashed means the record must carry a token hash.
	hashed bool
}

// The methods every token-level case runs against: the same rule shape
// (test.read or test.write) on each kind of RPC; the bidi method also
// requires a user.
var srvKindMethods = map[rpcKind]string{
	kindUnary:        "Scoped",
	kindServerStream: "ServerStream",
	kindClientStream: "ClientStream",
	kindBidi:         "BidiStream",
}

var srvRevokedJTI = func() string {
	id, err := token.NewID()
	if err != nil {
		panic(err)
	}
	return id
}()

func srvRevokingEnv(t *testing.T, cfg srvEnvConfig) *srvEnv {
	t.Helper()
	cfg.source = func(e *srvEnv) KeySource {
		src, err := NewStaticKeySource(e.keys.jwks, EdDSA, WithRevocation(Revocation{
			TokenIDs:         []string{srvRevokedJTI},
			DisabledAccounts: []string{"disabled-svc"},
			RevokedBefore:    map[string]time.Time{"old-svc": srvT0.Add(time.Second)},
		}))
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	return newSrvEnv(t, cfg)
}

func srvTokenCases() []srvCase {
	both := []string{"test.read", "test.write"}
	valid := func(e *srvEnv) metadata.MD {
		return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", both...)), MDUserToken, e.userToken("u1", "t1"))
	}
	withClaims := func(f func(c *token.Claims)) func(e *srvEnv) metadata.MD {
		return func(e *srvEnv) metadata.MD {
			c := srvSvcClaims(e.clock.Now(), "orders", both...)
			f(&c)
			return srvMD(MDAuthorization, srvBearer(e.keys.sign(e.t, c)), MDUserToken, e.userToken("u1", "t1"))
		}
	}
	withAuth := func(f func(e *srvEnv, tok string) []string) func(e *srvEnv) metadata.MD {
		return func(e *srvEnv) metadata.MD {
			md := srvMD(MDUserToken, e.userToken("u1", "t1"))
			md[MDAuthorization] = f(e, e.svcToken("orders", both...))
			return md
		}
	}
	withUser := func(f func(e *srvEnv) []string) func(e *srvEnv) metadata.MD {
		return func(e *srvEnv) metadata.MD {
			md := srvMD(MDAuthorization, srvBearer(e.svcToken("orders", both...)))
			md[MDUserToken] = f(e)
			return md
		}
	}
	return []srvCase{
		{name: "valid", md: valid, caller: "orders"},
		{name: "scheme lower case", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{"bearer " + tok} }), caller: "orders"},
		{name: "scheme upper case", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{"BEARER " + tok} }), caller: "orders"},
		{name: "missing", md: func(e *srvEnv) metadata.MD { return srvMD(MDUserToken, e.userToken("u1", "t1")) }, want: "TOKEN_MISSING"},
		{name: "two values", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{srvBearer(tok), srvBearer(tok)} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "empty value", md: withAuth(func(_ *srvEnv, _ string) []string { return []string{""} }), want: "TOKEN_MALFORMED"},
		{name: "scheme only", md: withAuth(func(_ *srvEnv, _ string) []string { return []string{"Bearer "} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "basic scheme", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{"Basic " + tok} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "no space", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{"Bearer" + tok} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "two spaces", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{"Bearer  " + tok} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "trailing space", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{srvBearer(tok) + " "} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "oversized", md: withAuth(func(_ *srvEnv, tok string) []string {
			return []string{srvBearer(tok + "." + strings.Repeat("A", token.MaxTokenSize))}
		}), want: "TOKEN_MALFORMED", hashed: true},
		{name: "not a JWS", md: withAuth(func(_ *srvEnv, _ string) []string { return []string{srvBearer("not-a-token")} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "four segments", md: withAuth(func(_ *srvEnv, tok string) []string { return []string{srvBearer(tok + ".AAAA")} }), want: "TOKEN_MALFORMED", hashed: true},
		{name: "bad signature", md: withAuth(func(e *srvEnv, tok string) []string {
			other := newSrvKeys(e.t, "k1")
			return []string{srvBearer(other.sign(e.t, srvSvcClaims(e.clock.Now(), "orders", both...)))}
		}), want: "SIGNATURE_INVALID", hashed: true},
		{name: "unknown kid", md: withAuth(func(e *srvEnv, _ string) []string {
			other := newSrvKeys(e.t, "k9")
			return []string{srvBearer(other.sign(e.t, srvSvcClaims(e.clock.Now(), "orders", both...)))}
		}), want: "KEY_UNKNOWN", hashed: true},
		{name: "expired", md: withClaims(func(c *token.Claims) {
			c.IssuedAt = c.IssuedAt.Add(-10 * time.Minute)
			c.Expiry = c.IssuedAt.Add(5 * time.Minute)
		}), want: "TOKEN_EXPIRED", hashed: true},
		{name: "expired within skew", md: withClaims(func(c *token.Claims) {
			c.IssuedAt = c.IssuedAt.Add(-5*time.Minute - 10*time.Second)
			c.Expiry = c.IssuedAt.Add(5 * time.Minute)
		}), caller: "orders"},
		{name: "not yet valid", md: withClaims(func(c *token.Claims) {
			c.IssuedAt = c.IssuedAt.Add(2 * time.Minute)
			c.Expiry = c.IssuedAt.Add(5 * time.Minute)
		}), want: "TOKEN_NOT_YET_VALID", hashed: true},
		{name: "lifetime too long", md: withClaims(func(c *token.Claims) { c.Expiry = c.IssuedAt.Add(time.Hour) }), want: "LIFETIME_TOO_LONG", hashed: true},
		{name: "wrong issuer", md: withClaims(func(c *token.Claims) { c.Issuer = "someone-else" }), want: "ISSUER_MISMATCH", hashed: true},
		{name: "wrong audience", md: withClaims(func(c *token.Claims) { c.Audience = "billing" }), want: "AUDIENCE_MISMATCH", hashed: true},
		{name: "user token as service token", md: withAuth(func(e *srvEnv, _ string) []string {
			return []string{srvBearer(e.userToken("u1", "t1"))}
		}), want: "TYPE_MISMATCH", hashed: true},
		{name: "revoked token id", md: withClaims(func(c *token.Claims) { c.ID = srvRevokedJTI }), want: "TOKEN_REVOKED", caller: "orders"},
		{name: "disabled account", md: withClaims(func(c *token.Claims) { c.Subject = "disabled-svc" }), want: "ACCOUNT_DISABLED", caller: "disabled-svc"},
		{name: "revoked before", md: withClaims(func(c *token.Claims) { c.Subject = "old-svc" }), want: "TOKEN_REVOKED", caller: "old-svc"},
		{name: "issued after account revocation", md: withClaims(func(c *token.Claims) {
			c.Subject = "old-svc"
			c.IssuedAt = c.IssuedAt.Add(2 * time.Second)
			c.Expiry = c.IssuedAt.Add(5 * time.Minute)
		}), caller: "old-svc"},
		{name: "scope missing", md: func(e *srvEnv) metadata.MD {
			return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "other.scope")), MDUserToken, e.userToken("u1", "t1"))
		}, want: "SCOPE_MISSING", caller: "orders"},
		{name: "no user token", md: func(e *srvEnv) metadata.MD {
			return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", both...)))
		}, perKind: map[rpcKind]string{kindBidi: "USER_TOKEN_MISSING"}, caller: "orders"},
		{name: "user token garbage", md: withUser(func(*srvEnv) []string { return []string{"garbage"} }), want: "USER_TOKEN_INVALID", caller: "orders", hashed: true},
		{name: "two user tokens", md: withUser(func(e *srvEnv) []string {
			return []string{e.userToken("u1", "t1"), e.userToken("u2", "t1")}
		}), want: "USER_TOKEN_INVALID", caller: "orders", hashed: true},
		{name: "service token as user token", md: withUser(func(e *srvEnv) []string {
			return []string{e.svcToken("orders", both...)}
		}), want: "USER_TOKEN_INVALID", caller: "orders", hashed: true},
		{name: "user token with bearer prefix", md: withUser(func(e *srvEnv) []string {
			return []string{srvBearer(e.userToken("u1", "t1"))}
		}), want: "USER_TOKEN_INVALID", caller: "orders", hashed: true},
		{name: "user token revoked", md: withUser(func(e *srvEnv) []string {
			c := srvUserClaims(e.clock.Now(), "u1", "t1")
			c.ID = srvRevokedJTI
			return []string{e.keys.sign(e.t, c)}
		}), want: "USER_TOKEN_INVALID", caller: "orders", hashed: true},
		{name: "user token for another audience", md: withUser(func(e *srvEnv) []string {
			c := srvUserClaims(e.clock.Now(), "u1", "t1")
			c.Audience = srvAudience
			return []string{e.keys.sign(e.t, c)}
		}), want: "USER_TOKEN_INVALID", caller: "orders", hashed: true},
		{name: "tenant mismatch", md: withClaims(func(c *token.Claims) { c.TenantID = "t2" }), want: "TENANT_MISMATCH", caller: "orders"},
		{name: "tenant agrees", md: withClaims(func(c *token.Claims) { c.TenantID = "t1" }), caller: "orders"},
	}
}

// runSrvCases runs every case against every kind of RPC, checking the code,
// the reason, whether the handler ran, and the one audit record.
func runSrvCases(t *testing.T, e *srvEnv, cases []srvCase, methods map[rpcKind]string) {
	t.Helper()
	for _, tc := range cases {
		for kind := kindUnary; kind <= kindBidi; kind++ {
			method, ok := methods[kind]
			if !ok {
				continue
			}
			t.Run(tc.name+"/"+kind.String(), func(t *testing.T) {
				want := tc.want
				if w, ok := tc.perKind[kind]; ok {
					want = w
				}
				e.audit.take()
				e.svc.seen()
				md := tc.md(e)
				runs := e.svc.runs.Load()
				payload, err := e.call(kind, method, md)
				ran := e.svc.runs.Load() - runs
				recs := e.audit.take()
				if len(recs) != 1 {
					t.Fatalf("%d audit records, want 1: %+v", len(recs), recs)
				}
				rec := recs[0]
				if rec.Method != srvTestSvc+method || rec.Audience != srvAudience || rec.Stream != (kind != kindUnary) {
					t.Errorf("record method %q audience %q stream %v", rec.Method, rec.Audience, rec.Stream)
				}
				if tc.caller != "" && rec.Caller != tc.caller {
					t.Errorf("record caller %q, want %q", rec.Caller, tc.caller)
				}
				srvNoSecrets(t, rec, md)
				if want == "" {
					if err != nil {
						t.Fatalf("call failed: %v", err)
					}
					if payload != "ping" || ran != 1 {
						t.Fatalf("payload %q, handler ran %d times", payload, ran)
					}
					if rec.Decision != DecisionAllow || rec.Reason != 0 || rec.Code != codes.OK {
						t.Errorf("record %+v, want an allow", rec)
					}
					return
				}
				code, reason := srvReason(t, err)
				if reason != want {
					t.Fatalf("reason %s (%v), want %s", reason, code, want)
				}
				if wantCode := codeOf(srvParseReason(want)); code != wantCode {
					t.Fatalf("code %v, want %v", code, wantCode)
				}
				if ran != 0 {
					t.Fatalf("handler ran %d times on a denied call", ran)
				}
				if rec.Decision != DecisionDeny || ReasonName(rec.Reason) != want || rec.Code != code {
					t.Errorf("record decision %v reason %v code %v", rec.Decision, rec.Reason, rec.Code)
				}
				if tc.hashed && len(rec.TokenHash) != 12 {
					t.Errorf("record token hash %q, want 12 hex digits", rec.TokenHash)
				}
			})
		}
	}
}

// srvNoSecrets fails when any string of rec holds a value sent in md (beyond
// the short ids that are meant to be there).
func srvNoSecrets(t *testing.T, rec AuditRecord, md metadata.MD) {
	t.Helper()
	v := reflect.ValueOf(rec)
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.String || f.String() == "" {
			continue
		}
		for _, k := range []string{MDAuthorization, MDUserToken} {
			for _, sent := range md[k] {
				if len(sent) >= 16 && strings.Contains(sent, f.String()) && len(f.String()) > 12 {
					t.Errorf("record field %s holds sent %s text", v.Type().Field(i).Name, k)
				}
				if len(f.String()) >= 16 && strings.Contains(f.String(), sent) && len(sent) >= 8 {
					t.Errorf("record field %s holds sent %s text", v.Type().Field(i).Name, k)
				}
			}
		}
	}
}

func TestServerTokenCases(t *testing.T) {
	e := srvRevokingEnv(t, srvEnvConfig{})
	runSrvCases(t, e, srvTokenCases(), srvKindMethods)
}

func TestServerRuleCases(t *testing.T) {
	e := srvRevokingEnv(t, srvEnvConfig{})
	auth := func(sub string, scopes ...string) func(e *srvEnv) metadata.MD {
		return func(e *srvEnv) metadata.MD { return srvMD(MDAuthorization, srvBearer(e.svcToken(sub, scopes...))) }
	}
	withUser := func(sub, tenant string, scopes ...string) func(e *srvEnv) metadata.MD {
		return func(e *srvEnv) metadata.MD {
			return srvMD(MDAuthorization, srvBearer(e.svcToken(sub, scopes...)), MDUserToken, e.userToken("u1", tenant))
		}
	}
	none := func(*srvEnv) metadata.MD { return metadata.MD{} }
	garbage := func(*srvEnv) metadata.MD { return srvMD(MDAuthorization, "Bearer x.y.z") }
	groups := []struct {
		methods map[rpcKind]string
		cases   []srvCase
	}{
		{map[rpcKind]string{kindUnary: "Public", kindServerStream: "PublicServerStream"}, []srvCase{
			{name: "public without token", md: none},
			{name: "public with valid token", md: auth("orders"), caller: "orders"},
			{name: "public with invalid token", md: garbage, want: "TOKEN_MALFORMED", hashed: true},
			{name: "public with invalid user token", md: func(*srvEnv) metadata.MD { return srvMD(MDUserToken, "x.y.z") }, want: "USER_TOKEN_INVALID", hashed: true},
			{name: "public with valid user token", md: func(e *srvEnv) metadata.MD { return srvMD(MDUserToken, e.userToken("u1", "t1")) }},
			{name: "public with expired token", md: func(e *srvEnv) metadata.MD {
				c := srvSvcClaims(e.clock.Now().Add(-time.Hour), "orders")
				return srvMD(MDAuthorization, srvBearer(e.keys.sign(e.t, c)))
			}, want: "TOKEN_EXPIRED", hashed: true},
		}},
		{map[rpcKind]string{kindUnary: "NoRule", kindBidi: "NoRuleBidiStream"}, []srvCase{
			{name: "no rule with valid token", md: auth("orders", "test.read", "test.write"), want: "NO_POLICY", caller: "orders"},
			{name: "no rule without token", md: none, want: "TOKEN_MISSING"},
		}},
		{map[rpcKind]string{kindUnary: "BrokenRule"}, []srvCase{
			{name: "broken rule with valid token", md: auth("orders", "test.read"), want: "POLICY_INVALID", caller: "orders"},
			{name: "broken rule without token", md: none, want: "TOKEN_MISSING"},
		}},
		{map[rpcKind]string{kindUnary: "MultiScoped"}, []srvCase{
			{name: "multi scoped with one", md: auth("orders", "test.read"), want: "SCOPE_MISSING"},
			{name: "multi scoped with both", md: auth("orders", "test.write", "test.read")},
		}},
		{map[rpcKind]string{kindUnary: "UserRequired", kindBidi: "BidiStream"}, []srvCase{
			{name: "user required without user", md: auth("orders", "test.read"), want: "USER_TOKEN_MISSING"},
			{name: "user required with user", md: withUser("orders", "t1", "test.read")},
		}},
		{map[rpcKind]string{kindUnary: "TenantRequired"}, []srvCase{
			{name: "tenant from user", md: withUser("orders", "t1", "test.read")},
			{name: "tenant without user", md: auth("orders", "test.read"), want: "USER_TOKEN_MISSING"},
			{name: "tenants differ", md: func(e *srvEnv) metadata.MD {
				c := srvSvcClaims(e.clock.Now(), "orders", "test.read")
				c.TenantID = "t2"
				return srvMD(MDAuthorization, srvBearer(e.keys.sign(e.t, c)), MDUserToken, e.userToken("u1", "t1"))
			}, want: "TENANT_MISMATCH"},
			{name: "tenant in plain metadata never counts", md: func(e *srvEnv) metadata.MD {
				return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")), "x-tenant-id", "t1", "tenant_id", "t1")
			}, want: "USER_TOKEN_MISSING"},
		}},
		{map[rpcKind]string{kindUnary: "CallersListed"}, []srvCase{
			{name: "listed caller", md: auth("orders", "test.write"), caller: "orders"},
			{name: "listed spiffe caller", md: auth("spiffe://example.org/ns/shop/sa/gateway", "test.write")},
			{name: "caller not listed", md: auth("billing", "test.write"), want: "CALLER_NOT_ALLOWED", caller: "billing"},
			{name: "listed caller without scope", md: auth("orders", "test.read"), want: "SCOPE_MISSING"},
		}},
		{map[rpcKind]string{kindUnary: "Idempotent"}, []srvCase{
			{name: "idempotency key present", md: func(e *srvEnv) metadata.MD {
				return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.write")), MDIdempotencyKey, "k-1")
			}},
			{name: "idempotency key missing", md: auth("orders", "test.write"), want: "IDEMPOTENCY_KEY_MISSING"},
			{name: "idempotency key twice", md: func(e *srvEnv) metadata.MD {
				return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.write")), MDIdempotencyKey, "k-1", MDIdempotencyKey, "k-2")
			}, want: "IDEMPOTENCY_KEY_MISSING"},
			{name: "idempotency key with spaces", md: func(e *srvEnv) metadata.MD {
				return srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.write")), MDIdempotencyKey, "k 1")
			}, want: "IDEMPOTENCY_KEY_MISSING"},
		}},
	}
	for _, g := range groups {
		runSrvCases(t, e, g.cases, g.methods)
	}
}

func TestServerDefaultScopes(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	ctx := func(md metadata.MD) string {
		_, err := srvInvoke(srvOutgoing(t, md), e.conn, kindUnary, "/callsign.test.v1.DefaultScopedService/Inherit")
		_, reason := srvReason(t, err)
		return reason
	}
	if r := ctx(srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.default")))); r != "" {
		t.Fatalf("inherited default scope: %s", r)
	}
	if r := ctx(srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")))); r != "SCOPE_MISSING" {
		t.Fatalf("without the default scope: %s", r)
	}
	_, err := srvInvoke(srvOutgoing(t, nil), e.conn, kindUnary, "/callsign.test.v1.DefaultScopedService/Override")
	if err != nil {
		t.Fatalf("a method rule replaces the defaults: %v", err)
	}
}

// TestServerIdentity checks what a handler sees.
func TestServerIdentity(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	c := srvSvcClaims(e.clock.Now(), "orders", "test.read")
	svc := e.keys.sign(t, c)
	md := srvMD(MDAuthorization, srvBearer(svc), MDUserToken, e.userToken("u1", "t1"),
		MDCorrelationID, "corr-1", MDRequestID, "req-1",
		MDTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := e.call(kindUnary, "TenantRequired", md); err != nil {
		t.Fatal(err)
	}
	seen := e.svc.seen()
	if len(seen) != 1 {
		t.Fatalf("%d handler runs", len(seen))
	}
	s := seen[0]
	if !s.hasCaller || s.caller.ServiceID != "orders" || s.caller.TokenID != c.ID || !s.caller.Expiry.Equal(c.Expiry) || !s.caller.HasScope("test.read") {
		t.Errorf("caller %+v", s.caller)
	}
	if !s.hasUser || s.user.ID != "u1" || s.user.TenantID != "t1" || s.user.AssertedBy != "edge" || len(s.user.Roles) != 1 {
		t.Errorf("user %+v", s.user)
	}
	if s.tenant != "t1" {
		t.Errorf("tenant %q", s.tenant)
	}
	if s.request != (RequestInfo{CorrelationID: "corr-1", RequestID: "req-1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}) {
		t.Errorf("request info %+v", s.request)
	}

	// Unsafe ids are dropped, never passed on.
	md = srvMD(MDAuthorization, srvBearer(svc), MDCorrelationID, "has space", MDRequestID, strings.Repeat("r", 200),
		MDTraceparent, "00-00000000000000000000000000000000-00f067aa0ba902b7-01")
	if _, err := e.call(kindUnary, "Scoped", md); err != nil {
		t.Fatal(err)
	}
	if s := e.svc.seen()[0]; s.request != (RequestInfo{}) || s.hasUser {
		t.Errorf("request info %+v, user %v", s.request, s.hasUser)
	}
}

// TestServerTLS runs the token cases over TLS.
func TestServerTLS(t *testing.T) {
	serverTLS, clientTLS := srvTLS(t)
	e := srvRevokingEnv(t, srvEnvConfig{serverTLS: serverTLS, clientTLS: clientTLS})
	var cases []srvCase
	for _, c := range srvTokenCases() {
		switch c.name {
		case "valid", "missing", "two values", "bad signature", "expired", "wrong audience", "revoked token id", "scope missing", "user token garbage":
			cases = append(cases, c)
		}
	}
	runSrvCases(t, e, cases, srvKindMethods)
}

func srvParseReason(name string) callsignv1.Reason {
	return callsignv1.Reason(callsignv1.Reason_value["REASON_"+name])
}

// srvOutgoing is a call context with md, cancelled at the end of the test.
func srvOutgoing(t *testing.T, md metadata.MD) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.NewOutgoingContext(ctx, md)
}

func srvTLS(t *testing.T) (credentials.TransportCredentials, credentials.TransportCredentials) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "bufnet"},
		DNSNames:     []string{"bufnet"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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
	server := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS13,
	})
	client := credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "bufnet", MinVersion: tls.VersionTLS13})
	return server, client
}

// TestServerTenantFromServiceToken: a rule that needs a tenant but no user is
// met by a tenant-scoped service token, and refused without one.
func TestServerTenantFromServiceToken(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{opts: []ServerOption{
		WithRule(srvTestSvc+"Scoped", Rule{Scopes: []string{"test.read"}, RequireTenant: true}),
	}})
	_, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(e.svcToken("jobs", "test.read"))))
	if c, r := srvReason(t, err); c != codes.PermissionDenied || r != "TENANT_MISSING" {
		t.Fatalf("without a tenant: %v %s", c, r)
	}
	cl := srvSvcClaims(e.clock.Now(), "jobs", "test.read")
	cl.TenantID = "t2"
	if _, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(e.keys.sign(t, cl)))); err != nil {
		t.Fatal(err)
	}
	if s := e.svc.seen(); len(s) != 1 || s[0].tenant != "t2" || s[0].caller.TenantID != "t2" || s[0].hasUser {
		t.Fatalf("handler saw %+v", s)
	}
}
