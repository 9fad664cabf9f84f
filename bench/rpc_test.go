package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	smoke = os.Getenv(smokeEnv) == "1"
	code := m.Run()
	closeFixtures()
	os.Exit(code)
}

// Unary: one unary RPC (32-byte payload each way) per op, client and server
// in this process.
func BenchmarkUnary(b *testing.B) {
	for _, tr := range []string{tTCP, tBufconn} {
		for _, v := range []string{vBare, vPass, vAuthz, vJWX, vJWT, vWarm, vCold, vCentral} {
			b.Run(tr+"/"+v, func(b *testing.B) {
				r := newRPC(b, tr, v)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if err := r.unary(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Stream: one server stream per op (open, one message, end): the token is
// verified once per stream.
func BenchmarkStream(b *testing.B) {
	for _, tr := range []string{tTCP, tBufconn} {
		for _, v := range []string{vBare, vPass, vAuthz, vJWX, vJWT, vWarm, vCold} {
			b.Run(tr+"/"+v, func(b *testing.B) {
				r := newRPC(b, tr, v)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if err := r.stream(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// Parallel: unary RPCs from 32×GOMAXPROCS goroutines on one TCP connection;
// ns/op is wall time per call, so throughput is its inverse (calls/s).
func BenchmarkParallel(b *testing.B) {
	for _, v := range []string{vBare, vPass, vAuthz, vJWX, vJWT, vWarm} {
		b.Run(v, func(b *testing.B) {
			r := newRPC(b, tTCP, v)
			b.SetParallelism(parallelClients)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := startCPU()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := r.unary(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
			cpu.report(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// loadRate is the offered load of BenchmarkLoad, in calls per second: well
// below what any variant sustains on 2 cores, so that latency, not queueing,
// is measured.
const loadRate = 2000

// Load: p50 and p99 latency of unary RPCs over TCP at a fixed offered load
// (open loop: calls start on schedule whether or not earlier ones finished).
// One op is the whole run.
func BenchmarkLoad(b *testing.B) {
	dur := sized(1500*time.Millisecond, 20*time.Millisecond)
	for _, v := range []string{vBare, vPass, vJWX, vWarm, vCold} {
		b.Run(fmt.Sprintf("%drps/%s", loadRate, v), func(b *testing.B) {
			r := newRPC(b, tTCP, v)
			res := openLoop(loadRate, dur, 256, r.unary)
			res.report(b, time.Microsecond, "us")
		})
	}
}

// loadResult is the outcome of one open-loop run.
type loadResult struct {
	lat     []time.Duration // per call, from its start to its end
	errs    int64
	elapsed time.Duration
}

// openLoop starts rate calls per second for dur, each in its own goroutine,
// at most maxInFlight at once (a start that finds the limit reached waits,
// and the wait is counted in its latency), and waits for all of them.
func openLoop(rate int, dur time.Duration, maxInFlight int, call func(context.Context) error) loadResult {
	n := max(1, int(float64(rate)*dur.Seconds()))
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var errs atomic.Int64
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		t0 := time.Now()
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := call(ctx); err != nil {
				errs.Add(1)
			}
			lat[i] = time.Since(t0)
		})
	}
	wg.Wait()
	return loadResult{lat: lat, errs: errs.Load(), elapsed: time.Since(start)}
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// report records p50, p99, the calls per second achieved and the errors.
func (r loadResult) report(b *testing.B, unit time.Duration, name string) {
	if r.errs > 0 {
		b.Errorf("%d of %d calls failed", r.errs, len(r.lat))
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	b.ReportMetric(float64(percentile(s, 50))/float64(unit), "p50-"+name)
	b.ReportMetric(float64(percentile(s, 99))/float64(unit), "p99-"+name)
	b.ReportMetric(float64(len(s))/r.elapsed.Seconds(), "calls/s")
	b.ReportMetric(0, "ns/op")
}
