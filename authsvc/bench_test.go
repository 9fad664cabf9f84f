package authsvc

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// The benchmarks measure IssueToken over loopback gRPC (127.0.0.1 TCP) on the
// default SQLite store with the real clock, next to the raw cost of one
// Ed25519 sign + verify measured in the same run:
//
//	go test -run '^$' -bench 'IssueToken|Ed25519' -benchtime 3s ./authsvc/
//
// BenchmarkIssueTokenLatency offers a fixed rate of 1,000 tokens/s (one
// request per millisecond, open loop, latency counted from the scheduled send
// time) for b.N requests and reports percentiles:
//
//	go test -run '^$' -bench IssueTokenLatency -benchtime 5000x ./authsvc/

// clientParallelism is the number of concurrent callers per GOMAXPROCS in the
// throughput benchmarks: enough requests in flight to keep the server busy
// over loopback.
const clientParallelism = 16

type benchServer struct {
	svc    *Service
	client callsignv1.AuthServiceClient
	keys   map[string]accountKey
	cfg    Config
	secret string
}

func newBenchServer(b *testing.B, memory bool, opts ...grpc.ServerOption) *benchServer {
	b.Helper()
	ctx := context.Background()
	var st Store
	if memory {
		st = NewMemoryStore()
	} else {
		var err error
		st, err = OpenSQLite(ctx, filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
	}
	keys := newTestKeys(b)
	cfg := testConfig(keys)
	svc, err := New(ctx, st, testKEK, cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer(append([]grpc.ServerOption{grpc.MaxRecvMsgSize(MaxRequestSize)}, opts...)...)
	callsignv1.RegisterAuthServiceServer(srv, svc.AuthServer())
	callsignv1.RegisterAdminServiceServer(srv, svc.AdminServer())
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		_ = st.Close()
	})
	sec, err := svc.AdminServer().RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "orders"})
	if err != nil {
		b.Fatal(err)
	}
	return &benchServer{svc: svc, client: callsignv1.NewAuthServiceClient(conn), keys: keys, cfg: cfg, secret: sec.GetSecret()}
}

// assertions signs n fresh assertions for orders (outside the timed region:
// in production the client signs them on its own machine).
func (bs *benchServer) assertions(b *testing.B, n int) []string {
	b.Helper()
	k := bs.keys["orders"]
	out := make([]string, n)
	now := time.Now()
	for i := range out {
		a, err := token.SignAssertion(k.priv, k.kid, "orders", bs.cfg.Issuer, now, time.Minute)
		if err != nil {
			b.Fatal(err)
		}
		out[i] = a
	}
	return out
}

func reportRate(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
}

func benchmarkIssueAssertion(b *testing.B, memory bool) {
	bs := newBenchServer(b, memory)
	as := bs.assertions(b, b.N)
	var next atomic.Int64
	ctx := context.Background()
	b.SetParallelism(clientParallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := bs.client.IssueToken(ctx, issueReq(as[i], "billing")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, start)
}

// BenchmarkIssueTokenPrivateKeyJWT: parallel IssueToken with private_key_jwt
// over loopback gRPC, SQLite store.
func BenchmarkIssueTokenPrivateKeyJWT(b *testing.B) { benchmarkIssueAssertion(b, false) }

// BenchmarkIssueTokenPrivateKeyJWTMemory: the same on the in-memory store, to
// show the share of SQLite.
func BenchmarkIssueTokenPrivateKeyJWTMemory(b *testing.B) { benchmarkIssueAssertion(b, true) }

// BenchmarkIssueTokenClientSecret: parallel IssueToken with a client secret
// over loopback gRPC, SQLite store.
func BenchmarkIssueTokenClientSecret(b *testing.B) {
	bs := newBenchServer(b, false)
	ctx := context.Background()
	req := secretReq("orders", bs.secret, "billing")
	b.SetParallelism(clientParallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := bs.client.IssueToken(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, start)
}

// BenchmarkEd25519SignVerify is the baseline: one raw Ed25519 signature and
// its verification over a message the size of a token's signing input.
func BenchmarkEd25519SignVerify(b *testing.B) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 300)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sig := ed25519.Sign(priv, msg)
			if !ed25519.Verify(pub, msg, sig) {
				b.Error("verify failed")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkIssueTokenLatency offers 1,000 private_key_jwt requests per second
// (open loop) on the SQLite store and reports latency percentiles in
// milliseconds.
func BenchmarkIssueTokenLatency(b *testing.B) { benchmarkLatency(b, false) }

// BenchmarkIssueTokenLatencyMemory is the same on the in-memory store.
func BenchmarkIssueTokenLatencyMemory(b *testing.B) { benchmarkLatency(b, true) }

func benchmarkLatency(b *testing.B, memory bool) {
	// The time spent in the handler, to tell the service's own latency from
	// the transport's and the scheduler's.
	var mu sync.Mutex
	var inHandler []time.Duration
	timing := grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		d := time.Since(start)
		mu.Lock()
		inHandler = append(inHandler, d)
		mu.Unlock()
		return resp, err
	})
	bs := newBenchServer(b, memory, timing)
	as := bs.assertions(b, b.N)
	ctx := context.Background()
	const interval = time.Millisecond // 1,000 requests/s
	lat := make([]time.Duration, b.N)
	var failed atomic.Int32
	var wg sync.WaitGroup
	mu.Lock()
	inHandler = inHandler[:0]
	mu.Unlock()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // pacing of the load generator, not a wait for the code under test
		}
		wg.Go(func() {
			if _, err := bs.client.IssueToken(ctx, issueReq(as[i], "billing")); err != nil {
				failed.Add(1)
			}
			lat[i] = time.Since(at)
		})
	}
	wg.Wait()
	b.StopTimer()
	if failed.Load() > 0 {
		b.Fatalf("%d requests failed", failed.Load())
	}
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))]) / float64(time.Millisecond)
	}
	slices.Sort(lat)
	b.ReportMetric(pct(lat, 0.50), "p50-ms")
	b.ReportMetric(pct(lat, 0.99), "p99-ms")
	b.ReportMetric(pct(lat, 1), "max-ms")
	mu.Lock()
	slices.Sort(inHandler)
	b.ReportMetric(pct(inHandler, 0.50), "handler-p50-ms")
	b.ReportMetric(pct(inHandler, 0.99), "handler-p99-ms")
	mu.Unlock()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tokens/s")
}

// BenchmarkIssueTokenVsEd25519 is the robust form of the throughput figures on
// a shared machine: each of its b.N rounds runs, back to back, a burst of
// IssueToken calls with private_key_jwt, a burst with a client secret (both
// over loopback gRPC on the SQLite store, clientParallelism callers per CPU),
// a burst with private_key_jwt on the in-memory store (the share of SQLite)
// and a burst of raw Ed25519 sign + verify (one goroutine per CPU), and it
// reports the median rate of each and the medians of the per-round ratios
// ("x-raw": tokens per raw sign + verify), so that both sides of a ratio see
// the same machine load.
//
//	go test -run '^$' -bench IssueTokenVsEd25519 -benchtime 15x ./authsvc/
func BenchmarkIssueTokenVsEd25519(b *testing.B) {
	const burst = 1000
	bs := newBenchServer(b, false)
	mem := newBenchServer(b, true)
	ctx := context.Background()
	as := bs.assertions(b, b.N*burst)
	memAs := mem.assertions(b, b.N*burst)
	secret := secretReq("orders", bs.secret, "billing")
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 300)
	procs := runtime.GOMAXPROCS(0)

	// run spreads n calls of fn over workers goroutines and returns calls/s
	// and the process CPU time per call (client, server and all).
	run := func(n, workers int, fn func(i int) error) (float64, float64) {
		var next atomic.Int64
		var wg sync.WaitGroup
		cpu0 := processCPU()
		start := time.Now()
		for range workers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					if err := fn(i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		rate := float64(n) / time.Since(start).Seconds()
		return rate, float64(processCPU()-cpu0) / float64(time.Microsecond) / float64(n)
	}
	var jwtRate, secretRate, rawRate, jwtRatio, secretRatio, jwtCPU, secretCPU, rawCPU, memCPU, memRatio []float64
	b.ResetTimer()
	for round := range b.N {
		base := round * burst
		j, jc := run(burst, procs*clientParallelism, func(i int) error {
			_, err := bs.client.IssueToken(ctx, issueReq(as[base+i], "billing"))
			return err
		})
		s, sc := run(burst, procs*clientParallelism, func(int) error {
			_, err := bs.client.IssueToken(ctx, secret)
			return err
		})
		m, mc := run(burst, procs*clientParallelism, func(i int) error {
			_, err := mem.client.IssueToken(ctx, issueReq(memAs[base+i], "billing"))
			return err
		})
		r, rc := run(burst, procs, func(int) error {
			if !ed25519.Verify(pub, msg, ed25519.Sign(priv, msg)) {
				return errBoom
			}
			return nil
		})
		jwtRate, secretRate, rawRate = append(jwtRate, j), append(secretRate, s), append(rawRate, r)
		jwtRatio, secretRatio = append(jwtRatio, j/r), append(secretRatio, s/r)
		jwtCPU, secretCPU, rawCPU = append(jwtCPU, jc), append(secretCPU, sc), append(rawCPU, rc)
		memCPU, memRatio = append(memCPU, mc), append(memRatio, m/r)
	}
	b.StopTimer()
	medianOf := func(v []float64) float64 {
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(medianOf(jwtRate), "jwt-tokens/s")
	b.ReportMetric(medianOf(secretRate), "secret-tokens/s")
	b.ReportMetric(medianOf(rawRate), "raw-sign+verify/s")
	b.ReportMetric(medianOf(jwtRatio), "jwt-x-raw")
	b.ReportMetric(medianOf(secretRatio), "secret-x-raw")
	// Process CPU per call, client included: what 2 idle cores can sustain is
	// about 2e6 / cpu-µs per second, whatever else the machine runs.
	b.ReportMetric(medianOf(jwtCPU), "jwt-cpu-µs/token")
	b.ReportMetric(medianOf(secretCPU), "secret-cpu-µs/token")
	b.ReportMetric(medianOf(rawCPU), "raw-cpu-µs/sign+verify")
	b.ReportMetric(medianOf(memRatio), "jwt-memory-x-raw")
	b.ReportMetric(medianOf(memCPU), "jwt-memory-cpu-µs/token")
}
