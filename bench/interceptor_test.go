package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// transportStream gives grpc.Method a method name, as grpc-go's server does.
type transportStream struct{ method string }

func (s transportStream) Method() string                  { return s.method }
func (transportStream) SetHeader(metadata.MD) error       { return nil }
func (transportStream) SendHeader(metadata.MD) error      { return nil }
func (transportStream) SetTrailer(metadata.MD) error      { return nil }
func (transportStream) SetSendCompression(s string) error { return nil }

var benchPeer = &peer.Peer{
	Addr:      &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41000},
	LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 50051},
}

// incoming is the context a grpc-go server hands to its interceptors for a
// call to method carrying tok: the incoming metadata as the transport builds
// it (with what callsign's client interceptor attaches), the peer, and the
// transport stream.
func incoming(tok, method string) context.Context {
	md := metadata.MD{
		":authority":       {"127.0.0.1:50051"},
		"content-type":     {"application/grpc"},
		"user-agent":       {"grpc-go/1.85.0"},
		"authorization":    {"Bearer " + tok},
		"x-correlation-id": {"c1J9i5t0Q4uO0ZbV3o2m8A"},
		"x-request-id":     {"r7G2k9Wq1xYb5Lm3Nd8sPe"},
	}
	ctx := metadata.NewIncomingContext(context.Background(), md)
	ctx = peer.NewContext(ctx, benchPeer)
	return grpc.NewContextWithServerTransportStream(ctx, transportStream{method: method})
}

func okHandler(context.Context, any) (any, error) { return nil, nil }

// ServerInterceptor: the unary server interceptor alone, called directly
// with the context grpc-go would build; the handler does nothing. (grpc-go's
// authz interceptor cannot run outside a server: it reads the connection
// from a context key internal to grpc-go.)
func BenchmarkServerInterceptor(b *testing.B) {
	info := &grpc.UnaryServerInfo{FullMethod: methodUnary}
	req := &testv1.ScopedRequest{Payload: payload}
	for _, v := range []string{vPass, vJWX, vJWT, vWarm, vCold, vCentralWarm, vCentral} {
		b.Run(v, func(b *testing.B) {
			f := getFixture(b)
			iv := newVariant(b, f, v)
			toks := []string{f.warm}
			if v == vCold || v == vCentral {
				toks = f.coldTokens(b)
			}
			ctxs := make([]context.Context, len(toks))
			for i, t := range toks {
				ctxs[i] = incoming(t, methodUnary) //nolint:fatcontext // each is built from context.Background, none nests another
			}
			if _, err := iv.unary(ctxs[0], req, info, okHandler); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			cpu := startCPU()
			for b.Loop() {
				if _, err := iv.unary(ctxs[i%len(ctxs)], req, info, okHandler); err != nil {
					b.Fatal(err)
				}
				i++
			}
			cpu.report(b, b.N)
		})
	}
}

var errInvalid = errors.New("signature invalid")

func ed25519Verify(f *fixture, msg, sig []byte) bool { return ed25519.Verify(f.pub, msg, sig) }

// splitSigned returns the signing input and the decoded signature of a
// compact JWS.
func splitSigned(tb testing.TB, tok string) ([]byte, []byte) {
	tb.Helper()
	dot := strings.LastIndexByte(tok, '.')
	sig, err := base64.RawURLEncoding.DecodeString(tok[dot+1:])
	if err != nil {
		tb.Fatal(err)
	}
	return []byte(tok[:dot]), sig
}

// Verify: a token never seen before (round-robin over the cold pool),
// verified by each implementation: callsign's strict core (Parse, key by kid,
// signature, claims), jwx v2 and golang-jwt v5 as the naive interceptors call
// them, next to one raw ed25519.Verify of the same signing input, and one
// ed25519 sign + verify (the floor of an IssueToken with private_key_jwt).
func BenchmarkVerify(b *testing.B) {
	b.Run("ed25519", func(b *testing.B) {
		f := getFixture(b)
		pool := f.coldTokens(b)
		msgs, sigs := make([][]byte, len(pool)), make([][]byte, len(pool))
		for i, t := range pool {
			msgs[i], sigs[i] = splitSigned(b, t)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if !ed25519.Verify(f.pub, msgs[i%len(msgs)], sigs[i%len(sigs)]) {
				b.Fatal("signature invalid")
			}
			i++
		}
	})
	b.Run("callsign", func(b *testing.B) {
		f := getFixture(b)
		pool := f.coldTokens(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			_, err := token.Verify(pool[i%len(pool)], token.EdDSA, f.keySet, token.Expect{
				Issuer: issuer, Audience: audience, Type: token.TypeService, Now: time.Now(),
			})
			if err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	for _, v := range []string{vJWX, vJWT} {
		b.Run(v, func(b *testing.B) {
			f := getFixture(b)
			pool := f.coldTokens(b)
			verify := jwxVerifier(f.pub)
			if v == vJWT {
				verify = golangJWTVerifier(f.pub)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := verify(pool[i%len(pool)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("ed25519-sign+verify", func(b *testing.B) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		msg := make([]byte, 200)
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, ed25519.Sign(priv, msg)) {
				b.Fatal("signature invalid")
			}
		}
	})
}

// countingIssuer counts IssueToken calls.
type countingIssuer struct {
	inner interceptor.IssueTokenClient
	n     atomic.Int64
}

func (c *countingIssuer) IssueToken(ctx context.Context, in *callsignv1.IssueTokenRequest, opts ...grpc.CallOption) (*callsignv1.IssueTokenResponse, error) {
	c.n.Add(1)
	return c.inner.IssueToken(ctx, in, opts...)
}

func nopInvoker(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
	return nil
}

// Client: the unary client interceptor alone (token from the source,
// metadata attached; the invoker does nothing), with a static source and
// with the live source (private_key_jwt against callsignd over loopback),
// warmed by one call. IssueToken-calls counts the IssueToken calls made
// during the timed loop: the hot path must make none.
func BenchmarkClient(b *testing.B) {
	for _, name := range []string{"static", "live"} {
		b.Run(name, func(b *testing.B) {
			f := getFixture(b)
			ts := interceptor.StaticTokenSource(map[string]string{audience: f.warm})
			cnt := &countingIssuer{inner: callsignv1.NewAuthServiceClient(f.dialAuth(b))}
			if name == "live" {
				live, err := interceptor.NewTokenSource(cnt, interceptor.PrivateKeyJWT(caller, f.ordersKey, f.ordersKID, issuer),
					interceptor.WithTokenSourceLogger(discard))
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = live.Close() })
				ts = live
			}
			ui := interceptor.UnaryClientInterceptor(ts)
			req, reply := &testv1.ScopedRequest{Payload: payload}, &testv1.ScopedResponse{}
			ctx := context.Background()
			if err := ui(ctx, methodUnary, req, reply, nil, nopInvoker); err != nil {
				b.Fatal(err)
			}
			before := cnt.n.Load()
			b.ReportAllocs()
			cpu := startCPU()
			for b.Loop() {
				if err := ui(ctx, methodUnary, req, reply, nil, nopInvoker); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b, b.N)
			b.ReportMetric(float64(cnt.n.Load()-before), "IssueToken-calls")
		})
	}
}

// herdSize is the number of concurrent cold callers of BenchmarkRefreshHerd.
const herdSize = 1000

// RefreshHerd: 1,000 goroutines ask a new live token source (private_key_jwt,
// callsignd over loopback) for a token at once. One op is one herd;
// IssueToken/herd must be 1.
func BenchmarkRefreshHerd(b *testing.B) {
	f := getFixture(b)
	cnt := &countingIssuer{inner: callsignv1.NewAuthServiceClient(f.dialAuth(b))}
	cred := interceptor.PrivateKeyJWT(caller, f.ordersKey, f.ordersKID, issuer)
	var calls int64
	for b.Loop() {
		ts, err := interceptor.NewTokenSource(cnt, cred, interceptor.WithTokenSourceLogger(discard))
		if err != nil {
			b.Fatal(err)
		}
		before := cnt.n.Load()
		start := make(chan struct{})
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range herdSize {
			wg.Go(func() {
				<-start
				if _, err := ts.Token(context.Background(), audience); err != nil {
					failed.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		_ = ts.Close()
		if failed.Load() > 0 {
			b.Fatalf("%d callers got no token", failed.Load())
		}
		calls += cnt.n.Load() - before
	}
	b.ReportMetric(float64(calls)/float64(b.N), "IssueToken/herd")
}

// memSigner signs tokens of the issued shape with its own key, published
// next to the issuer's keys: for the token counts and shapes callsignd is not
// asked for.
type memSigner struct {
	signer token.Signer
	jwks   []byte
}

func newMemSigner(tb testing.TB, f *fixture, kidLen int) memSigner {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k := token.Key{ID: strings.Repeat("b", kidLen), Algorithm: token.EdDSA, Public: pub}
	jwks, err := token.MarshalJWKS(append(f.keySet.Keys(), k))
	if err != nil {
		tb.Fatal(err)
	}
	return memSigner{signer: token.Signer{Key: k, Private: priv}, jwks: jwks}
}

// sign returns a service token orders → test with the claims callsignd puts
// in one (nbf = iat unless noNBF).
func (m memSigner) sign(tb testing.TB, noNBF bool) string {
	tb.Helper()
	tok, err := m.trySign(noNBF)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

func (m memSigner) trySign(noNBF bool) (string, error) {
	id, err := token.NewID()
	if err != nil {
		return "", err
	}
	now := time.Now().Truncate(time.Second)
	c := token.Claims{
		Type: token.TypeService, Issuer: issuer, Subject: caller, Audience: audience,
		Expiry: now.Add(5 * time.Minute), IssuedAt: now, NotBefore: now, ID: id, Scopes: []string{scope},
	}
	if noNBF {
		c.NotBefore = time.Time{}
	}
	return m.signer.Sign(c)
}

// CacheMemory: distinct valid tokens through the server interceptor (cache
// of interceptor.DefaultCacheSize entries): the heap that stays reachable once
// the cache is just full, and again after 10⁶ tokens; the cache bounds it when
// the second is no larger than the first. B/entry is the heap per cached token
// (the token itself included), next to what the cache documents (about 450
// bytes of bookkeeping plus the token: bound-MB). One op is the whole run.
func BenchmarkCacheMemory(b *testing.B) {
	f := getFixture(b)
	size, n := sized(interceptor.DefaultCacheSize, 100), sized(1_000_000, 300)
	m := newMemSigner(b, f, len(f.kid(b)))
	ks, err := interceptor.NewStaticKeySource(m.jwks, interceptor.EdDSA)
	if err != nil {
		b.Fatal(err)
	}
	info := &grpc.UnaryServerInfo{FullMethod: methodUnary}
	heap := func() float64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc)
	}
	before := heap()
	srv, err := interceptor.NewServer(ks, interceptor.WithIssuer(issuer), interceptor.WithAudience(audience),
		interceptor.WithLogger(discard), interceptor.WithCacheSize(size))
	if err != nil {
		b.Fatal(err)
	}
	ui := srv.UnaryServerInterceptor()
	var next atomic.Int64
	feed := func(upTo int64) {
		var wg sync.WaitGroup
		var failed atomic.Int64
		for range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for next.Add(1) <= upTo {
					tok, err := m.trySign(false)
					if err == nil {
						_, err = ui(incoming(tok, methodUnary), nil, info, okHandler)
					}
					if err != nil {
						failed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		next.Store(upTo)
		if failed.Load() > 0 {
			b.Fatalf("%d calls refused", failed.Load())
		}
	}
	feed(int64(size))
	full := heap() - before
	feed(int64(n))
	after := heap() - before
	runtime.KeepAlive(srv)
	// The cache keeps the token as a part of the authorization value the
	// transport allocated, "Bearer " included.
	tokLen := len("Bearer ") + len(m.sign(b, false))
	b.ReportMetric(full/1e6, "full-MB")
	b.ReportMetric(after/1e6, "heap-MB")
	b.ReportMetric(float64(size*(450+tokLen))/1e6, "bound-MB")
	b.ReportMetric(after/float64(size), "B/entry")
	b.ReportMetric(float64(n), "tokens")
	b.ReportMetric(0, "ns/op")
}

// kid returns the kid and the header of the issued warm token.
func (f *fixture) kid(tb testing.TB) string {
	tb.Helper()
	p, err := token.Parse(f.warm, token.EdDSA, token.TypeService)
	if err != nil {
		tb.Fatal(err)
	}
	return p.KID
}

// TokenSize: the unary RPC over TCP, warm (one token reused) and cold (a new
// token every call), with a token of the shape callsignd issues ("issued")
// and the same without nbf ("no-nbf", which equals iat in every issued token
// and adds nothing a verifier checks: iat ≤ now + skew is required anyway).
// token-B is the token's length.
func BenchmarkTokenSize(b *testing.B) {
	for _, mode := range []string{"warm", "cold"} {
		for _, shape := range []string{"issued", "no-nbf"} {
			b.Run(mode+"/"+shape, func(b *testing.B) {
				f := getFixture(b)
				m := newMemSigner(b, f, len(f.kid(b)))
				noNBF := shape == "no-nbf"
				n := 1
				if mode == "cold" {
					n = sized(interceptor.DefaultCacheSize+1000, 16)
				}
				pool := make([]string, n)
				for i := range pool {
					pool[i] = m.sign(b, noNBF)
				}
				r := newTokenRPC(b, m.jwks, &rotatingSource{pool: pool})
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					if err := r.unary(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(pool[0])), "token-B")
			})
		}
	}
}

// newTokenRPC is a TestService over TCP behind callsign's interceptor with
// the key set jwks, called with the tokens of ts.
func newTokenRPC(tb testing.TB, jwks []byte, ts interceptor.TokenSource) *rpc {
	tb.Helper()
	ks, err := interceptor.NewStaticKeySource(jwks, interceptor.EdDSA)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := interceptor.NewServer(ks, interceptor.WithIssuer(issuer), interceptor.WithAudience(audience), interceptor.WithLogger(discard))
	if err != nil {
		tb.Fatal(err)
	}
	return startRPC(tb, tTCP, interceptors{unary: srv.UnaryServerInterceptor(), stream: srv.StreamServerInterceptor(), tokens: ts}, "callsign")
}
