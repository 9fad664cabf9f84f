package interceptor

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// Benchmarks of the server side, with their baselines in the same run:
//
//	go test -run '^$' -bench 'Server|RPC|Ed25519' -benchmem ./interceptor/
//
// On a busy machine, the *Interleaved benchmarks are the ones to quote: they
// alternate the variants batch by batch and report median ratios.
//
// BenchmarkRPC/* and BenchmarkRPCParallel/* compare one unary RPC over
// bufconn, carrying the same metadata, through no interceptor (bare), a
// pass-through interceptor, callsign with a warm cache, and a naive
// interceptor that parses and verifies the JWT with jwx on every call.

// srvBench is the fixture of the benchmarks: a real clock, because the naive
// jwx baseline checks times against the system clock.
type srvBench struct {
	keys   srvKeys
	jwks   []byte
	svc    string
	server *Server
}

func newSrvBench(b *testing.B, opts ...ServerOption) *srvBench {
	b.Helper()
	keys := newSrvKeys(b, "k1")
	src, err := NewStaticKeySource(keys.jwks, EdDSA)
	if err != nil {
		b.Fatal(err)
	}
	opts = append([]ServerOption{WithIssuer(srvIssuer), WithAudience(srvAudience)}, opts...)
	s, err := NewServer(src, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return &srvBench{keys: keys, jwks: keys.jwks, svc: keys.sign(b, srvSvcClaims(time.Now(), "orders", "test.read", "test.write")), server: s}
}

// md is the metadata every benchmarked call carries: what a callsign client
// sends.
func (f *srvBench) md() metadata.MD {
	return metadata.Pairs(
		MDAuthorization, "Bearer "+f.svc,
		MDCorrelationID, "0f9d6c1e-5b1a-4a57-9c39-0c2d9d5f4e11",
		MDRequestID, "7c1b3a9e-2d4f-4e6a-8b5c-1f0e9d8c7b6a",
		MDTraceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	)
}

// BenchmarkServerInterceptorWarm is the server interceptor alone, called
// directly with a token already in the verified-token cache and the default
// audit sink. Target: ≤ 1 µs and ≤ 5 allocations.
func BenchmarkServerInterceptorWarm(b *testing.B) {
	f := newSrvBench(b)
	unary := f.server.UnaryServerInterceptor()
	ctx := metadata.NewIncomingContext(context.Background(), f.md())
	info := &grpc.UnaryServerInfo{FullMethod: srvTestSvc + "Scoped"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	if _, err := unary(ctx, nil, info, handler); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := unary(ctx, nil, info, handler); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerInterceptorCold verifies a different token on every call
// (cache off), next to one raw ed25519.Verify of the same token
// (BenchmarkEd25519Verify).
func BenchmarkServerInterceptorCold(b *testing.B) {
	f := newSrvBench(b, WithCacheSize(0))
	unary := f.server.UnaryServerInterceptor()
	const n = 1024
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		md := f.md()
		md.Set(MDAuthorization, "Bearer "+f.keys.sign(b, srvSvcClaims(time.Now(), "orders", "test.read", "test.write")))
		ctxs[i] = srvIncoming(md) //nolint:fatcontext // one independent context per prepared call, not a chain
	}
	info := &grpc.UnaryServerInfo{FullMethod: srvTestSvc + "Scoped"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := unary(ctxs[i%n], nil, info, handler); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// srvIncoming is a server-side call context carrying md.
func srvIncoming(md metadata.MD) context.Context {
	return metadata.NewIncomingContext(context.Background(), md)
}

// BenchmarkEd25519Verify is one raw signature check of a service token: the
// floor of the cold path.
func BenchmarkEd25519Verify(b *testing.B) {
	f := newSrvBench(b)
	dot := strings.LastIndexByte(f.svc, '.')
	sig := make([]byte, ed25519.SignatureSize)
	if _, err := base64.RawURLEncoding.Decode(sig, []byte(f.svc[dot+1:])); err != nil {
		b.Fatal(err)
	}
	pub := f.keys.signer.Key.Public.(ed25519.PublicKey)
	msg := []byte(f.svc[:dot])
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}

// srvBenchConn serves the test service over bufconn with the given server
// options and returns a client connection.
func srvBenchConn(b *testing.B, opts ...grpc.ServerOption) *grpc.ClientConn {
	b.Helper()
	gs := grpc.NewServer(opts...)
	testv1.RegisterTestServiceServer(gs, &srvBenchService{})
	lis := bufconn.Listen(1 << 20)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
	})
	return conn
}

// srvBenchService answers Scoped with nothing else to do.
type srvBenchService struct {
	testv1.UnimplementedTestServiceServer
}

func (*srvBenchService) Scoped(_ context.Context, r *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	return &testv1.ScopedResponse{Payload: r.GetPayload()}, nil
}

func passThrough(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(ctx, req)
}

// naiveJWX is the interceptor most articles show: parse and verify the JWT
// with jwx on every call, then check the scope.
func naiveJWX(b *testing.B, jwks []byte) grpc.UnaryServerInterceptor {
	set, err := jwk.Parse(jwks)
	if err != nil {
		b.Fatal(err)
	}
	denied := status.Error(codes.Unauthenticated, "unauthenticated")
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		vals := md.Get(MDAuthorization)
		if len(vals) != 1 || !strings.HasPrefix(vals[0], "Bearer ") {
			return nil, denied
		}
		tok, err := jwt.ParseString(vals[0][7:], jwt.WithKeySet(set), jwt.WithValidate(true),
			jwt.WithIssuer(srvIssuer), jwt.WithAudience(srvAudience))
		if err != nil {
			return nil, denied
		}
		scope, _ := tok.Get("scope")
		if s, _ := scope.(string); !strings.Contains(" "+s+" ", " test.read ") {
			return nil, status.Error(codes.PermissionDenied, "scope")
		}
		return handler(ctx, req)
	}
}

// srvBenchVariants are the four servers compared, all receiving the same
// metadata.
func srvBenchVariants(b *testing.B) (map[string]*grpc.ClientConn, *srvBench) {
	f := newSrvBench(b)
	return map[string]*grpc.ClientConn{
		"bare":        srvBenchConn(b),
		"passthrough": srvBenchConn(b, grpc.UnaryInterceptor(passThrough)),
		"callsign":    srvBenchConn(b, f.server.GRPCServerOptions()...),
		"naive-jwx":   srvBenchConn(b, grpc.UnaryInterceptor(naiveJWX(b, f.jwks))),
	}, f
}

var srvBenchOrder = []string{"bare", "passthrough", "callsign", "naive-jwx"}

// BenchmarkRPC is one unary RPC over bufconn. Target: callsign (warm) ≤ 1.05×
// passthrough.
func BenchmarkRPC(b *testing.B) {
	conns, f := srvBenchVariants(b)
	ctx := metadata.NewOutgoingContext(context.Background(), f.md())
	for _, name := range srvBenchOrder {
		conn := conns[name]
		b.Run(name, func(b *testing.B) {
			req, resp := &testv1.ScopedRequest{Payload: "ping"}, &testv1.ScopedResponse{}
			if err := conn.Invoke(ctx, srvTestSvc+"Scoped", req, resp); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := conn.Invoke(ctx, srvTestSvc+"Scoped", req, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRPCParallel is the same RPC from parallel clients (throughput).
// Targets: callsign ≥ 0.9× bare, ≥ 3× naive-jwx.
func BenchmarkRPCParallel(b *testing.B) {
	conns, f := srvBenchVariants(b)
	ctx := metadata.NewOutgoingContext(context.Background(), f.md())
	for _, name := range srvBenchOrder {
		conn := conns[name]
		b.Run(name, func(b *testing.B) {
			if err := conn.Invoke(ctx, srvTestSvc+"Scoped", &testv1.ScopedRequest{}, &testv1.ScopedResponse{}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				req, resp := &testv1.ScopedRequest{Payload: "ping"}, &testv1.ScopedResponse{}
				for pb.Next() {
					if err := conn.Invoke(ctx, srvTestSvc+"Scoped", req, resp); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// srvMedian is the median of d (d is reordered).
func srvMedian(d []float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkRPCInterleaved measures the four variants of BenchmarkRPC in
// alternation, batch by batch, and reports the median of the per-batch ratios:
// both sides of each ratio see the same machine load, which separate
// benchmarks on a busy machine do not. Targets: callsign ≤ 1.05×
// passthrough.
func BenchmarkRPCInterleaved(b *testing.B) {
	conns, f := srvBenchVariants(b)
	ctx := metadata.NewOutgoingContext(context.Background(), f.md())
	req, resp := &testv1.ScopedRequest{Payload: "ping"}, &testv1.ScopedResponse{}
	const batch = 32
	var batches [4][]float64 // ns per call, per batch, per variant
	run := func(i int) {
		conn := conns[srvBenchOrder[i]]
		start := time.Now()
		for range batch {
			if err := conn.Invoke(ctx, srvTestSvc+"Scoped", req, resp); err != nil {
				b.Fatal(err)
			}
		}
		batches[i] = append(batches[i], float64(time.Since(start).Nanoseconds())/batch)
	}
	for i := range srvBenchOrder {
		run(i) // warm every variant, its connection and its cache
	}
	batches = [4][]float64{}
	round := 0
	for b.Loop() {
		// Rotate the order so that no variant always follows another.
		for j := range srvBenchOrder {
			run((round + j) % len(srvBenchOrder))
		}
		round++
	}
	ratio := func(num, den int) float64 {
		r := make([]float64, len(batches[num]))
		for k := range r {
			r[k] = batches[num][k] / batches[den][k]
		}
		return srvMedian(r)
	}
	b.ReportMetric(ratio(2, 1), "callsign/passthrough")
	b.ReportMetric(ratio(2, 0), "callsign/bare")
	b.ReportMetric(ratio(3, 1), "naive/passthrough")
	b.ReportMetric(srvMedian(slices.Clone(batches[2])), "callsign-ns/call")
}

// BenchmarkRPCParallelInterleaved measures throughput from parallel clients
// (8 goroutines per CPU), the variants in alternation, and reports the median
// per-round throughput ratios. Targets: callsign ≥ 0.9× bare, ≥ 3× naive.
func BenchmarkRPCParallelInterleaved(b *testing.B) {
	conns, f := srvBenchVariants(b)
	ctx := metadata.NewOutgoingContext(context.Background(), f.md())
	workers := 8 * runtime.GOMAXPROCS(0)
	const perWorker = 16
	var rounds [4][]float64 // calls per second, per round, per variant
	run := func(i int) {
		conn := conns[srvBenchOrder[i]]
		var wg sync.WaitGroup
		start := time.Now()
		for range workers {
			wg.Go(func() {
				req, resp := &testv1.ScopedRequest{Payload: "ping"}, &testv1.ScopedResponse{}
				for range perWorker {
					if err := conn.Invoke(ctx, srvTestSvc+"Scoped", req, resp); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		rounds[i] = append(rounds[i], float64(workers*perWorker)/time.Since(start).Seconds())
	}
	for i := range srvBenchOrder {
		run(i)
	}
	rounds = [4][]float64{}
	round := 0
	for b.Loop() {
		for j := range srvBenchOrder {
			run((round + j) % len(srvBenchOrder))
		}
		round++
	}
	ratio := func(num, den int) float64 {
		r := make([]float64, len(rounds[num]))
		for k := range r {
			r[k] = rounds[num][k] / rounds[den][k]
		}
		return srvMedian(r)
	}
	b.ReportMetric(ratio(2, 0), "callsign/bare-throughput")
	b.ReportMetric(ratio(2, 3), "callsign/naive-throughput")
	b.ReportMetric(ratio(1, 0), "passthrough/bare-throughput")
	b.ReportMetric(srvMedian(slices.Clone(rounds[2])), "callsign-calls/s")
}

// BenchmarkServerColdInterleaved alternates batches of cold calls of the
// server interceptor (a token not in the cache: parse, key, signature,
// claims, revocation, rule, audit) with batches of raw ed25519.Verify of the
// same tokens, and reports the median per-batch ratio.
func BenchmarkServerColdInterleaved(b *testing.B) {
	f := newSrvBench(b, WithCacheSize(0))
	unary := f.server.UnaryServerInterceptor()
	const n = 256
	ctxs := make([]context.Context, n)
	msgs, sigs := make([][]byte, n), make([][]byte, n)
	for i := range n {
		tok := f.keys.sign(b, srvSvcClaims(time.Now(), "orders", "test.read", "test.write"))
		md := f.md()
		md.Set(MDAuthorization, "Bearer "+tok)
		ctxs[i] = srvIncoming(md) //nolint:fatcontext // one independent context per prepared call, not a chain
		dot := strings.LastIndexByte(tok, '.')
		msgs[i] = []byte(tok[:dot])
		sigs[i] = make([]byte, ed25519.SignatureSize)
		if _, err := base64.RawURLEncoding.Decode(sigs[i], []byte(tok[dot+1:])); err != nil {
			b.Fatal(err)
		}
	}
	pub := f.keys.signer.Key.Public.(ed25519.PublicKey)
	info := &grpc.UnaryServerInfo{FullMethod: srvTestSvc + "Scoped"}
	handler := func(context.Context, any) (any, error) { return nil, nil }
	const batch = 16
	var ratios []float64
	i := 0
	for b.Loop() {
		start := time.Now()
		for k := range batch {
			if _, err := unary(ctxs[(i+k)%n], nil, info, handler); err != nil {
				b.Fatal(err)
			}
		}
		cold := time.Since(start)
		start = time.Now()
		for k := range batch {
			if !ed25519.Verify(pub, msgs[(i+k)%n], sigs[(i+k)%n]) {
				b.Fatal("bad signature")
			}
		}
		raw := time.Since(start)
		ratios = append(ratios, float64(cold)/float64(raw))
		i += batch
	}
	b.ReportMetric(srvMedian(ratios), "cold/raw-ed25519")
}
