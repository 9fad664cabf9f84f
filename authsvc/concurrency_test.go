package authsvc

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestConcurrentIssueToken issues tokens from many goroutines with both
// credential kinds on both stores, while the lifecycle rotates keys and an
// operator changes grants; it also replays one assertion from every goroutine
// at once: exactly one of them gets a token. Run with -race.
func TestConcurrentIssueToken(t *testing.T) {
	for name, open := range storeFactories() {
		t.Run(name, func(t *testing.T) {
			e := newEnvWith(t, open(t), newFakeClock(), newTestKeys(t), nil)
			e.closed = true // the factory closes the store
			ctx := context.Background()
			secret := e.rotateSecret("orders", false)
			const workers, perWorker = 8, 25
			ids := sync.Map{}
			var wg sync.WaitGroup
			var failures atomic.Int32
			for w := range workers {
				wg.Go(func() {
					for i := range perWorker {
						req := secretReq("orders", secret, "billing")
						if (w+i)%2 == 0 {
							req = issueReq(e.assertion("orders"), "billing")
						}
						resp, err := e.auth.IssueToken(ctx, req)
						if err != nil {
							failures.Add(1)
							t.Error(err)
							return
						}
						if _, dup := ids.LoadOrStore(resp.GetTokenId(), true); dup {
							t.Error("duplicate jti")
						}
					}
				})
			}
			wg.Go(func() {
				for range 5 {
					if err := e.svc.RotateNow(ctx); err != nil {
						t.Error(err)
					}
					if err := e.svc.Tick(ctx); err != nil {
						t.Error(err)
					}
				}
			})
			wg.Wait()
			if failures.Load() > 0 {
				t.Fatalf("%d failures", failures.Load())
			}

			replayed := e.assertion("orders")
			var wins, refused atomic.Int32
			for range workers {
				wg.Go(func() {
					_, err := e.auth.IssueToken(ctx, issueReq(replayed, "billing"))
					switch status.Code(err) {
					case codes.OK:
						wins.Add(1)
					case codes.Unauthenticated:
						refused.Add(1)
					default:
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if wins.Load() != 1 || refused.Load() != workers-1 {
				t.Fatalf("replayed assertion: %d accepted, %d refused", wins.Load(), refused.Load())
			}
		})
	}
}
