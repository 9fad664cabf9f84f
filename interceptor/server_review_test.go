package interceptor

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// A skew configured as zero is zero: the token core's default must not
// replace it.
func TestServerZeroSkewIsHonoured(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{opts: []ServerOption{
		WithSkew(0),
		WithRule(srvTestSvc+"Scoped", Rule{}),
	}})
	now := e.clock.Now()
	expired := srvSvcClaims(now.Add(-5*time.Minute), "orders")
	expired.Expiry = now.Add(-10 * time.Second)
	_, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(e.keys.sign(t, expired))))
	if code, reason := srvReason(t, err); reason != "TOKEN_EXPIRED" {
		t.Errorf("token expired 10 s ago with zero skew: %v %q, want TOKEN_EXPIRED", code, reason)
	}
	early := srvSvcClaims(now.Add(10*time.Second), "orders")
	_, err = e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(e.keys.sign(t, early))))
	if code, reason := srvReason(t, err); reason != "TOKEN_NOT_YET_VALID" {
		t.Errorf("token issued 10 s ahead with zero skew: %v %q, want TOKEN_NOT_YET_VALID", code, reason)
	}
}

// A cached token is only reused while the very key that verified it is
// published: another key published under the same kid does not vouch for it.
func TestServerCacheHitNeedsTheSameKey(t *testing.T) {
	keys := srvFixedKeys(t)
	svc, _ := srvFixedTokens(t, keys)
	src := &srvSwapSource{}
	snap, err := NewKeySnapshot(keys.jwks, EdDSA, Revocation{})
	if err != nil {
		t.Fatal(err)
	}
	src.set(snap)
	s, err := NewServer(src, WithIssuer(srvIssuer), WithAudience(srvAudience), WithClock(newSrvClock()), WithAuditSink(&srvAudit{}))
	if err != nil {
		t.Fatal(err)
	}
	unary := s.UnaryServerInterceptor()
	call := func() string {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{MDAuthorization: {"Bearer " + svc}})
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: srvTestSvc + "Scoped"}, func(context.Context, any) (any, error) { return nil, nil })
		_, r := srvReason(t, err)
		return r
	}
	if r := call(); r != "" {
		t.Fatalf("first call: %s", r)
	}
	replaced, err := NewKeySnapshot(newSrvKeys(t, "k1").jwks, EdDSA, Revocation{}) // same kid, other key
	if err != nil {
		t.Fatal(err)
	}
	src.set(replaced)
	if r := call(); r != "SIGNATURE_INVALID" {
		t.Fatalf("key replaced under the same kid after caching: %q, want SIGNATURE_INVALID", r)
	}
}
