package interceptor

import (
	"testing"
	"time"
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
