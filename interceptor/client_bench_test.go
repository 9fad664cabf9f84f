package interceptor

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// cliBenchSource returns a live token source on the system clock with a warm
// cache for "test".
func cliBenchSource(b *testing.B) (TokenSource, *cliFakeAuth) {
	b.Helper()
	fa := newCliFakeAuth(SystemClock)
	ts, err := NewTokenSource(cliStartAuth(b, fa), ClientSecret("orders", "cs_secret"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ts.Close() })
	if _, err := ts.Token(context.Background(), "test"); err != nil {
		b.Fatal(err)
	}
	return ts, fa
}

// cliReportCPU reports the process CPU time per operation since start, next
// to the wall time: on a busy machine the wall time includes waiting for a
// CPU, the CPU time does not.
func cliReportCPU(b *testing.B, start time.Duration) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(cliCPUTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

// cliRWMutexCache is the baseline: the usual token cache, a map under a
// read-write lock with an expiry check.
type cliRWMutexCache struct {
	mu sync.RWMutex
	m  map[string]cliRWEntry
}

type cliRWEntry struct {
	tok string
	exp time.Time
}

func (c *cliRWMutexCache) Token(_ context.Context, aud string) (string, error) {
	c.mu.RLock()
	e, ok := c.m[aud]
	c.mu.RUnlock()
	if !ok || !time.Now().Before(e.exp) {
		return "", errNoStaticToken
	}
	return e.tok, nil
}

// BenchmarkTokenSourceHotPath measures Token with a warm cache against the
// rwmutex-map baseline, serially and in parallel.
func BenchmarkTokenSourceHotPath(b *testing.B) {
	ts, fa := cliBenchSource(b)
	base := &cliRWMutexCache{m: map[string]cliRWEntry{"test": {tok: cliStaticTok, exp: time.Now().Add(time.Hour)}}}
	ctx := context.Background()
	for _, s := range []struct {
		name string
		get  func(context.Context, string) (string, error)
	}{
		{"baseline=rwmutex-map", base.Token},
		{"callsign", ts.Token},
	} {
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cliCPUTime()
			for b.Loop() {
				if _, err := s.get(ctx, "test"); err != nil {
					b.Fatal(err)
				}
			}
			cliReportCPU(b, cpu)
		})
		b.Run(s.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.get(ctx, "test"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	if n := fa.calls.Load(); n != 1 {
		b.Fatalf("%d IssueToken calls in steady state, want 1 (the warm-up)", n)
	}
}

// cliPassThrough is the baseline interceptor: it attaches metadata of the
// same shape (a bearer token and two ids) without any work.
func cliPassThrough(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx = metadata.AppendToOutgoingContext(ctx,
		MDAuthorization, "Bearer "+cliStaticTok, MDCorrelationID, "AAAAAAAAAAAAAAAAAAAAAA", MDRequestID, "AAAAAAAAAAAAAAAAAAAAAA")
	return invoker(ctx, method, req, reply, cc, opts...)
}

// cliPassThroughHandler is the baseline inside a handler: it also copies the
// four forwarded keys, without looking at the outgoing context.
func cliPassThroughHandler(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	kv := []string{MDAuthorization, "Bearer " + cliStaticTok, MDRequestID, "AAAAAAAAAAAAAAAAAAAAAA"}
	for _, k := range []string{MDUserToken, MDCorrelationID, MDTraceparent, MDTracestate} {
		for _, v := range metadata.ValueFromIncomingContext(ctx, k) {
			kv = append(kv, k, v)
		}
	}
	return invoker(metadata.AppendToOutgoingContext(ctx, kv...), method, req, reply, cc, opts...)
}

// BenchmarkClientInterceptor measures the unary client interceptor alone,
// called directly with an invoker that does nothing, against pass-through
// interceptors that attach the same metadata.
func BenchmarkClientInterceptor(b *testing.B) {
	ts, _ := cliBenchSource(b)
	ours := UnaryClientInterceptor(ts)
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	const method = "/callsign.test.v1.TestService/Scoped"
	edge := context.Background()
	handler := metadata.NewIncomingContext(edge, metadata.MD{
		MDAuthorization: {"Bearer upstream.token.value"},
		MDUserToken:     {"user.token.value"},
		MDCorrelationID: {"corr-1"},
		MDTraceparent:   {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		MDTracestate:    {"a=1"},
	})
	for _, c := range []struct {
		name string
		ctx  context.Context
		ic   grpc.UnaryClientInterceptor
	}{
		{"edge/baseline=passthrough", edge, cliPassThrough},
		{"edge/callsign", edge, ours},
		{"in-handler/baseline=passthrough", handler, cliPassThroughHandler},
		{"in-handler/callsign", handler, ours},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cliCPUTime()
			for b.Loop() {
				if err := c.ic(c.ctx, method, nil, nil, nil, invoker); err != nil {
					b.Fatal(err)
				}
			}
			cliReportCPU(b, cpu)
		})
	}
}

// BenchmarkClientRPC measures a whole unary RPC over bufconn: bare, through
// the pass-through baseline, and through the callsign client interceptor.
func BenchmarkClientRPC(b *testing.B) {
	ts, fa := cliBenchSource(b)
	for _, c := range []struct {
		name string
		dial []grpc.DialOption
	}{
		{"baseline=bare", nil},
		{"baseline=passthrough", []grpc.DialOption{grpc.WithUnaryInterceptor(cliPassThrough)}},
		{"callsign", []grpc.DialOption{grpc.WithUnaryInterceptor(UnaryClientInterceptor(ts))}},
	} {
		b.Run(c.name, func(b *testing.B) {
			_, client := cliStartTarget(b, c.dial...)
			ctx := context.Background()
			b.ReportAllocs()
			cpu := cliCPUTime()
			for b.Loop() {
				if _, err := client.Scoped(ctx, &testv1.ScopedRequest{Payload: "p"}); err != nil {
					b.Fatal(err)
				}
			}
			cliReportCPU(b, cpu)
		})
	}
	if n := fa.calls.Load(); n != 1 {
		b.Fatalf("%d IssueToken calls in steady state, want 1", n)
	}
}

// BenchmarkTokenSourceHerd opens a new token source per iteration and sends
// 1,000 concurrent first calls for one audience at it; it reports the
// IssueToken calls per herd (the target is exactly 1).
func BenchmarkTokenSourceHerd(b *testing.B) {
	const herd = 1000
	fa := newCliFakeAuth(SystemClock)
	client := cliStartAuth(b, fa)
	ctx := context.Background()
	for b.Loop() {
		ts, err := NewTokenSource(client, ClientSecret("orders", "cs_secret"))
		if err != nil {
			b.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range herd {
			wg.Go(func() {
				<-start
				if _, err := ts.Token(ctx, "test"); err != nil {
					b.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		_ = ts.Close()
	}
	b.ReportMetric(float64(fa.calls.Load())/float64(b.N), "issuetoken/herd")
	if fa.calls.Load() != int32(b.N) {
		b.Fatalf("%d IssueToken calls for %d herds", fa.calls.Load(), b.N)
	}
}
