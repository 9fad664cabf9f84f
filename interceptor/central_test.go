package interceptor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// srvCentral is a fake AuthService.Verify answering from a table.
type srvCentral struct {
	mu       sync.Mutex
	verdicts map[string]*callsignv1.VerifyResponse
	err      error
	reqs     []*callsignv1.VerifyRequest
}

func (c *srvCentral) Verify(_ context.Context, in *callsignv1.VerifyRequest, _ ...grpc.CallOption) (*callsignv1.VerifyResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, proto.Clone(in).(*callsignv1.VerifyRequest))
	if c.err != nil {
		return nil, c.err
	}
	if v, ok := c.verdicts[in.GetToken()]; ok {
		return v, nil
	}
	return &callsignv1.VerifyResponse{Reason: callsignv1.Reason_REASON_TOKEN_MALFORMED}, nil
}

func (c *srvCentral) calls() []*callsignv1.VerifyRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

func srvActive(typ callsignv1.TokenType, sub, aud string, exp time.Time, cacheFor time.Duration, scopes ...string) *callsignv1.VerifyResponse {
	return &callsignv1.VerifyResponse{
		Active: true,
		Claims: &callsignv1.Claims{
			TokenType:  typ,
			Issuer:     srvIssuer,
			Subject:    sub,
			Audience:   aud,
			ExpireTime: timestamppb.New(exp),
			IssueTime:  timestamppb.New(exp.Add(-5 * time.Minute)),
			TokenId:    "jti-" + sub,
			Scopes:     scopes,
			TenantId:   map[bool]string{true: "t1"}[typ == callsignv1.TokenType_TOKEN_TYPE_USER],
			Actor:      map[bool]string{true: "edge"}[typ == callsignv1.TokenType_TOKEN_TYPE_USER],
		},
		CacheFor: durationpb.New(cacheFor),
	}
}

func TestCentralVerification(t *testing.T) {
	central := &srvCentral{}
	e := newSrvEnv(t, srvEnvConfig{
		source: func(*srvEnv) KeySource { return nil },
		opts:   []ServerOption{WithCentralVerification(central)},
	})
	exp := e.clock.Now().Add(5 * time.Minute)
	svc := callsignv1.TokenType_TOKEN_TYPE_SERVICE
	central.verdicts = map[string]*callsignv1.VerifyResponse{
		"good":      srvActive(svc, "orders", srvAudience, exp, time.Minute, "test.read"),
		"nocache":   srvActive(svc, "orders", srvAudience, exp, 0, "test.read"),
		"otheraud":  srvActive(svc, "orders", "billing", exp, time.Minute, "test.read"),
		"usertype":  srvActive(callsignv1.TokenType_TOKEN_TYPE_USER, "orders", srvAudience, exp, time.Minute),
		"expired":   srvActive(svc, "orders", srvAudience, e.clock.Now().Add(-time.Hour), time.Minute, "test.read"),
		"revoked":   {Reason: callsignv1.Reason_REASON_TOKEN_REVOKED},
		"oddreason": {Reason: callsignv1.Reason_REASON_SCOPE_MISSING},
		"user":      srvActive(callsignv1.TokenType_TOKEN_TYPE_USER, "u1", srvIssuer, exp, time.Minute),
		"noscope":   srvActive(svc, "orders", srvAudience, exp, time.Minute),
		"otherissuer": func() *callsignv1.VerifyResponse {
			r := srvActive(svc, "orders", srvAudience, exp, time.Minute, "test.read")
			r.Claims.Issuer = "other"
			return r
		}(),
	}
	call := func(tok string, user ...string) (codes.Code, string) {
		md := srvMD(MDAuthorization, srvBearer(tok))
		for _, u := range user {
			md.Append(MDUserToken, u)
		}
		_, err := e.call(kindUnary, "Scoped", md)
		return srvReason(t, err)
	}
	for tok, want := range map[string]string{
		"good": "", "otheraud": "AUDIENCE_MISMATCH", "usertype": "TYPE_MISMATCH", "expired": "TOKEN_EXPIRED",
		"revoked": "TOKEN_REVOKED", "oddreason": "TOKEN_MALFORMED", "unknown": "TOKEN_MALFORMED",
		"noscope": "SCOPE_MISSING", "otherissuer": "ISSUER_MISMATCH",
	} {
		if _, r := call(tok); r != want {
			t.Errorf("%s: reason %q, want %q", tok, r, want)
		}
	}
	reqs := central.calls()
	for _, r := range reqs {
		if r.GetTokenType() != svc || r.GetAudience() != srvAudience {
			t.Fatalf("request %v", r)
		}
	}
	e.audit.take()
	call("good")
	if recs := e.audit.take(); len(recs) != 1 || !recs[0].Central || recs[0].Caller != "orders" {
		t.Errorf("record %+v, want a central allow for orders", recs)
	}
	central.calls()

	// Positive verdicts are reused for at most 10 s, never beyond cache_for.
	call("good")
	call("nocache")
	call("nocache")
	if n := len(central.calls()); n != 2 {
		t.Fatalf("%d Verify calls; good was cached, nocache not", n)
	}
	e.clock.Advance(DefaultCentralCacheFor)
	call("good")
	if n := len(central.calls()); n != 1 {
		t.Fatalf("%d Verify calls after the cache time", n)
	}

	// User tokens are verified centrally too, for the trust domain.
	if _, r := call("good", "user"); r != "" {
		t.Fatalf("with user: %s", r)
	}
	if reqs := central.calls(); len(reqs) != 1 || reqs[0].GetTokenType() != callsignv1.TokenType_TOKEN_TYPE_USER || reqs[0].GetAudience() != "" {
		t.Fatalf("user verify requests %v", reqs)
	}
	if _, r := call("good", "revoked"); r != "USER_TOKEN_INVALID" {
		t.Fatalf("revoked user: %s", r)
	}

	// Verify unreachable: fail closed.
	central.err = errors.New("down")
	if c, r := call("fresh"); c != codes.Unavailable || r != "KEYS_UNAVAILABLE" {
		t.Fatalf("central down: %v %s", c, r)
	}
}

func TestCentralVerificationPerMethod(t *testing.T) {
	central := &srvCentral{}
	e := newSrvEnv(t, srvEnvConfig{opts: []ServerOption{WithCentralVerification(central, srvTestSvc+"MultiScoped")}})
	exp := e.clock.Now().Add(5 * time.Minute)
	central.verdicts = map[string]*callsignv1.VerifyResponse{
		"opaque": srvActive(callsignv1.TokenType_TOKEN_TYPE_SERVICE, "orders", srvAudience, exp, time.Minute, "test.read", "test.write"),
	}
	local := e.svcToken("orders", "test.read", "test.write")
	if _, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(local))); err != nil {
		t.Fatalf("local method: %v", err)
	}
	if n := len(central.calls()); n != 0 {
		t.Fatalf("a local method called Verify %d times", n)
	}
	if _, err := e.call(kindUnary, "MultiScoped", srvMD(MDAuthorization, srvBearer("opaque"))); err != nil {
		t.Fatalf("central method: %v", err)
	}
	if _, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer("opaque"))); err == nil {
		t.Fatal("a centrally verified token passed a local method")
	}
	if n := len(central.calls()); n != 1 {
		t.Fatalf("%d Verify calls, want 1", n)
	}
}
