//go:build !race

package faults

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/callsign-dev/callsign/interceptor"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestCacheMemoryBounded verifies 10^6 distinct valid tokens (4·10^4 outside
// make soak), and a re-encoded variant of every tenth, through one Server with
// the default verified-token cache (10,000 entries): the live heap once the
// cache is full must not grow with the number of tokens seen. Without the
// race detector only: it signs and verifies a million tokens.
func TestCacheMemoryBounded(t *testing.T) {
	total := 40_000
	if soakEnabled() {
		total = 1_000_000
	}
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	key := token.Key{ID: "k1", Algorithm: token.EdDSA, Public: priv.Public()}
	jwks, err := token.MarshalJWKS([]token.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	src, err := interceptor.NewStaticKeySource(jwks, interceptor.EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := interceptor.NewServer(src, interceptor.WithIssuer("callsign"), interceptor.WithAudience(verifierAudience),
		interceptor.WithLogger(quietLogger()),
		interceptor.WithRule(scopedMethod, interceptor.Rule{Scopes: []string{callerScope}}))
	if err != nil {
		t.Fatal(err)
	}
	signer := token.Signer{Key: key, Private: priv}
	unary := srv.UnaryServerInterceptor()
	info := &grpc.UnaryServerInfo{FullMethod: scopedMethod}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	now := time.Now()
	var seq, failed, variants atomic.Int64
	run := func(n int) {
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for {
					i := seq.Add(1)
					if i > int64(n) {
						return
					}
					tok, err := signer.Sign(token.Claims{
						Type: token.TypeService, Issuer: "callsign", Subject: "orders", Audience: verifierAudience,
						Expiry: now.Add(5 * time.Minute), IssuedAt: now, ID: fmt.Sprintf("mem-%016d", i), Scopes: []string{callerScope},
					})
					if err != nil {
						panic(err)
					}
					ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
					if _, err := unary(ctx, nil, info, handler); err != nil {
						failed.Add(1)
					}
					if i%10 == 0 {
						// Re-encoded: padding, or the standard alphabet.
						v := tok + "=="
						if i%20 == 0 {
							v = strings.NewReplacer("-", "+", "_", "/").Replace(tok) + "="
						}
						ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+v))
						if _, err := unary(ctx, nil, info, handler); err == nil {
							t.Error("a re-encoded token passed")
						}
						variants.Add(1)
					}
				}
			})
		}
		wg.Wait()
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	empty := heap()
	run(20_000) // twice the cache size: the cache is full
	full := heap()
	start := time.Now()
	run(total)
	after := heap()
	runtime.KeepAlive(srv) // the cache under measurement
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	growth := int64(after) - int64(full)
	t.Logf("%d tokens and %d re-encoded variants in %v; heap: %.1f MiB empty, %.1f MiB with a full cache, %.1f MiB after (growth %+.1f MiB)",
		total, variants.Load(), time.Since(start).Round(time.Millisecond), mib(empty), mib(full), mib(after), float64(growth)/(1<<20))
	if failed.Load() != 0 {
		t.Fatalf("%d valid tokens refused", failed.Load())
	}
	if full-empty > 64<<20 {
		t.Errorf("a full cache of %d entries holds %.1f MiB", interceptor.DefaultCacheSize, mib(full-empty))
	}
	if growth > 8<<20 {
		t.Errorf("the heap grew by %.1f MiB after the cache was full: it is not bounded", float64(growth)/(1<<20))
	}
}
