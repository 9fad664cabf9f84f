package bench

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callsign-dev/callsign/internal/token"
)

// Paired benchmarks time two things alternately in every iteration (their
// order swapped each time) and report the ratio of the median times as
// "ratio": both sides see the same load on a shared machine, which separate
// benchmarks run seconds apart do not, and the medians ignore the iterations
// a preemption lands in.

// pairedRatio runs a and b alternately until the benchmark ends and reports
// median(a)/median(b).
func pairedRatio(bm *testing.B, a, b func() error) {
	var ta, tb []time.Duration
	i := 0
	bm.ReportAllocs()
	for bm.Loop() {
		first, second, tf, ts := a, b, &ta, &tb
		if i%2 == 1 {
			first, second, tf, ts = b, a, &tb, &ta
		}
		t0 := time.Now()
		if err := first(); err != nil {
			bm.Fatal(err)
		}
		t1 := time.Now()
		if err := second(); err != nil {
			bm.Fatal(err)
		}
		t2 := time.Now()
		*tf = append(*tf, t1.Sub(t0))
		*ts = append(*ts, t2.Sub(t1))
		i++
	}
	ma, mb := median(ta), median(tb)
	if mb > 0 {
		bm.ReportMetric(float64(ma)/float64(mb), "ratio")
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// Paired: callsign warm against the pass-through interceptor (unary and
// stream, TCP and bufconn) and against bare grpc-go, and the cold
// verification against one raw ed25519.Verify, each pair interleaved.
func BenchmarkPaired(b *testing.B) {
	ctx := context.Background()
	for _, tr := range []string{tTCP, tBufconn} {
		for _, kind := range []string{"unary", "stream"} {
			for _, base := range []string{vPass, vBare} {
				if base == vBare && kind == "stream" {
					continue
				}
				b.Run(kind+"-"+tr+"/"+vWarm+"-vs-"+base, func(b *testing.B) {
					warm, other := newRPC(b, tr, vWarm), newRPC(b, tr, base)
					call := func(r *rpc) func() error {
						if kind == "stream" {
							return func() error { return r.stream(ctx) }
						}
						return func() error { return r.unary(ctx) }
					}
					pairedRatio(b, call(warm), call(other))
				})
			}
		}
	}
	// What carrying callsign's metadata costs grpc-go, without any check:
	// the pass-through interceptor with all of it (authorization,
	// x-correlation-id, x-request-id) and with authorization alone, against
	// bare grpc-go.
	for _, tr := range []string{tTCP, tBufconn} {
		for _, v := range []string{vPass, vPassAuth} {
			b.Run("unary-"+tr+"/"+v+"-vs-"+vBare, func(b *testing.B) {
				with, bare := newRPC(b, tr, v), newRPC(b, tr, vBare)
				pairedRatio(b, func() error { return with.unary(ctx) }, func() error { return bare.unary(ctx) })
			})
		}
	}
	// What ending streams at token expiry costs per stream: callsign warm
	// with WithStreamExpiry(false) against the pass-through interceptor.
	for _, tr := range []string{tTCP, tBufconn} {
		b.Run("stream-"+tr+"/"+vNoExpiry+"-vs-"+vPass, func(b *testing.B) {
			warm, other := newRPC(b, tr, vNoExpiry), newRPC(b, tr, vPass)
			pairedRatio(b, func() error { return warm.stream(ctx) }, func() error { return other.stream(ctx) })
		})
	}
	b.Run("verify/callsign-vs-ed25519", func(b *testing.B) {
		f := getFixture(b)
		pool := f.coldTokens(b)
		msgs, sigs := make([][]byte, len(pool)), make([][]byte, len(pool))
		for i, t := range pool {
			msgs[i], sigs[i] = splitSigned(b, t)
		}
		i, j := 0, len(pool)/2
		pairedRatio(b, func() error {
			_, err := token.Verify(pool[i%len(pool)], token.EdDSA, f.keySet, token.Expect{
				Issuer: issuer, Audience: audience, Type: token.TypeService, Now: time.Now(),
			})
			i++
			return err
		}, func() error {
			if !ed25519Verify(f, msgs[j%len(msgs)], sigs[j%len(sigs)]) {
				return errInvalid
			}
			j++
			return nil
		})
	})
}

// pairedWindows is the number of time windows each side of a paired
// throughput benchmark gets, and windowLen their length.
const (
	pairedWindows = 10
	windowLen     = 70 * time.Millisecond
)

// parallelClients is the number of client goroutines per GOMAXPROCS of the
// throughput benchmarks: enough to keep the cores busy with every variant
// (with 4, callsign warm and bare left a third of the CPU idle, waiting on
// round trips, and the ratios measured latency instead of throughput).
const parallelClients = 32

// BenchmarkPairedParallel: throughput with 32×GOMAXPROCS goroutines on one TCP
// connection, callsign warm against bare grpc-go and against the naive jwx
// interceptor, in alternating windows of 70 ms (10 each); "ratio" is the
// median calls/s of callsign over that of the other, "cpu-ratio" the same
// from the process CPU time per call. One op is the whole run.
func BenchmarkPairedParallel(b *testing.B) {
	for _, base := range []string{vBare, vJWX, vPass} {
		b.Run("tcp/"+vWarm+"-vs-"+base, func(b *testing.B) {
			warm, other := newRPC(b, tTCP, vWarm), newRPC(b, tTCP, base)
			windows, wlen := sized(pairedWindows, 2), sized(windowLen, 5*time.Millisecond)
			var rate [2][]float64
			var cpu [2][]float64
			goroutines := parallelClients * runtime.GOMAXPROCS(0)
			for w := range 2 * windows {
				side := w % 2
				if (w/2)%2 == 1 {
					side = 1 - side // alternate which side goes first
				}
				r := warm
				if side == 1 {
					r = other
				}
				calls, spent, err := burst(r, goroutines, wlen)
				if err != nil {
					b.Fatal(err)
				}
				rate[side] = append(rate[side], float64(calls)/wlen.Seconds())
				cpu[side] = append(cpu[side], float64(spent)/float64(max(calls, 1)))
			}
			b.ReportMetric(medianF(rate[0])/medianF(rate[1]), "ratio")
			b.ReportMetric(medianF(cpu[1])/medianF(cpu[0]), "cpu-ratio")
			b.ReportMetric(medianF(rate[0]), "calls/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// burst makes unary calls from n goroutines for d and returns the calls
// completed and the process CPU time used.
func burst(r *rpc, n int, d time.Duration) (int64, time.Duration, error) {
	var calls atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(d)
	cpu0 := processCPU()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			ctx := context.Background()
			for time.Now().Before(deadline) {
				if err := r.unary(ctx); err != nil {
					failed.Store(err)
					return
				}
				calls.Add(1)
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return 0, 0, err
	}
	return calls.Load(), processCPU() - cpu0, nil
}

func medianF(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
