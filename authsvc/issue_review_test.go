package authsvc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Two replicas on one store, the second one's clock lagging by the skew (the
// clock difference every time check allows for): once the first has pruned the
// used assertion ids it no longer accepts, the second must still refuse a
// replay of an assertion it would accept by its own clock.
func TestAssertionReplayRefusedByALaggingReplica(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	lag := newFakeClock()
	lag.t = e.clock.Now().Add(-e.cfg.Skew)
	replica, err := New(ctx, e.store, testKEK, e.cfg, WithClock(lag.Now))
	if err != nil {
		t.Fatal(err)
	}
	a := e.assertion("orders") // exp = now + 30 s
	if _, err := e.auth.IssueToken(ctx, issueReq(a, "billing")); err != nil {
		t.Fatal(err)
	}
	// The first replica stops accepting the assertion at exp + skew, and prunes.
	e.clock.Advance(30*time.Second + e.cfg.Skew)
	lag.Advance(30*time.Second + e.cfg.Skew)
	if err := e.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	// By the lagging clock the assertion is still within exp + skew.
	_, err = replica.issueToken(ctx, issueReq(a, "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
}
