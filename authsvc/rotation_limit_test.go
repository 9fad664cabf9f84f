package authsvc

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestRotateNowKeepsThePublishedSetWithinLimits: rotations in quick
// succession retire keys that stay published for the retention; once one more
// key would not fit in a JWKS (token.MaxKeys), RotateSigningKeys is refused
// with FailedPrecondition instead of publishing a set that GetKeys, issuance
// and every verifier reject. Once retired keys are removed, rotation works
// again.
func TestRotateNowKeepsThePublishedSetWithinLimits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rotations := 0
	var err error
	for range token.MaxKeys + 2 {
		if _, err = e.admin.RotateSigningKeys(ctx, &callsignv1.RotateSigningKeysRequest{}); err != nil {
			break
		}
		rotations++
	}
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("after %d rotations: %v, want FailedPrecondition", rotations, err)
	}
	if got := e.keySet().Len(); got > token.MaxKeys || got < token.MaxKeys-1 {
		t.Fatalf("%d keys published after %d rotations", got, rotations)
	}
	fresh := e.issue("orders", "billing")
	if !e.publishedKIDs()[fresh.GetKeyId()] {
		t.Fatalf("signed by an unpublished key %s", fresh.GetKeyId())
	}
	// The retired keys are removed after the retention; rotation resumes.
	e.clock.Advance(e.svc.life.retention() + time.Second)
	if err := e.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.RotateSigningKeys(ctx, &callsignv1.RotateSigningKeysRequest{}); err != nil {
		t.Fatalf("rotation after the retired keys were removed: %v", err)
	}
	if got := e.keySet().Len(); got > 4 {
		t.Fatalf("%d keys published after the removals", got)
	}
}
