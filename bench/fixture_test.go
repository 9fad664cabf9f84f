package bench

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jwtv5 "github.com/golang-jwt/jwt/v5"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/authz"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// The deployment every benchmark runs in: callsignd issues tokens for the
// account "orders" to call the service "test" (the audience of the test
// proto's TestService) with scope test.read; "test" may call
// AuthService.Verify (central verification).
const (
	issuer       = authsvc.DefaultIssuer
	selfAudience = "callsign" // the audience of callsignd's own services
	audience     = "test"
	caller       = "orders"
	scope        = "test.read"

	methodUnary  = "/callsign.test.v1.TestService/Scoped"
	methodStream = "/callsign.test.v1.TestService/ServerStream"
)

// smoke is set by TestBenchmarksSmoke: every benchmark runs at its smallest
// size (pools, load durations, token counts).
var smoke bool

// sized returns full, or small in a smoke run.
func sized[T any](full, small T) T {
	if smoke {
		return small
	}
	return full
}

var discard = slog.New(slog.DiscardHandler)

// fixture is one callsignd (authsvc on SQLite, served on loopback TCP behind
// callsign's own server interceptor, as cmd/callsignd serves it) with the
// accounts and credentials the benchmarks use. It is built once per process.
type fixture struct {
	dir  string
	svc  *authsvc.Service
	gs   *grpc.Server
	addr string

	ordersKey    ed25519.PrivateKey
	ordersKID    string
	ordersSecret string
	testSecret   string

	jwks   []byte // the published key set
	keySet *token.KeySet
	pub    ed25519.PublicKey // the active signing key, for the naive verifiers

	warm string // one service token orders → test, reused by every warm call

	coldOnce sync.Once
	cold     []string // distinct tokens, one per cold call
}

var (
	fixOnce, memOnce sync.Once
	fix, fixMem      *fixture
	fixErr, memErr   error
)

// getFixture returns the shared callsignd on its default store, SQLite.
func getFixture(tb testing.TB) *fixture {
	tb.Helper()
	fixOnce.Do(func() { fix, fixErr = newFixture(false) })
	if fixErr != nil {
		tb.Fatal(fixErr)
	}
	return fix
}

// getMemFixture returns a second callsignd on the in-memory store.
func getMemFixture(tb testing.TB) *fixture {
	tb.Helper()
	memOnce.Do(func() { fixMem, memErr = newFixture(true) })
	if memErr != nil {
		tb.Fatal(memErr)
	}
	return fixMem
}

// closeFixtures stops the shared callsignds and removes their files.
func closeFixtures() {
	for _, f := range []*fixture{fix, fixMem} {
		if f != nil {
			f.gs.Stop()
			_ = os.RemoveAll(f.dir)
		}
	}
}

func newFixture(memory bool) (*fixture, error) {
	ctx := context.Background()
	f := &fixture{}
	var err error
	if f.dir, err = os.MkdirTemp("", "callsign-bench-"); err != nil {
		return nil, err
	}
	priv, jwk, err := authsvc.GenerateAccountKey()
	if err != nil {
		return nil, err
	}
	var parsed struct{ KID string }
	if err := json.Unmarshal([]byte(jwk), &parsed); err != nil {
		return nil, err
	}
	f.ordersKey, f.ordersKID = priv, parsed.KID
	_, testJWK, err := authsvc.GenerateAccountKey()
	if err != nil {
		return nil, err
	}
	cfg := authsvc.DefaultConfig()
	cfg.Accounts = []authsvc.AccountConfig{
		{
			ID:         caller,
			PublicKeys: []authsvc.PublicKeyConfig{{JWK: jwk}},
			Grants:     []authsvc.GrantConfig{{Audience: audience, Scopes: []string{scope}}},
		},
		{
			ID:         audience,
			PublicKeys: []authsvc.PublicKeyConfig{{JWK: testJWK}},
			Grants:     []authsvc.GrantConfig{{Audience: selfAudience, Scopes: []string{"callsign.verify"}}},
		},
	}
	store := authsvc.NewMemoryStore()
	if !memory {
		if store, err = authsvc.OpenSQLite(ctx, filepath.Join(f.dir, "callsign.db")); err != nil {
			return nil, err
		}
	}
	kek := make([]byte, authsvc.KEKSize)
	for i := range kek {
		kek[i] = byte(i + 1)
	}
	if f.svc, err = authsvc.New(ctx, store, kek, cfg, authsvc.WithLogger(discard)); err != nil {
		return nil, err
	}
	for _, acct := range []string{caller, audience} {
		r, err := f.svc.AdminServer().RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: acct})
		if err != nil {
			return nil, err
		}
		if acct == caller {
			f.ordersSecret = r.GetSecret()
		} else {
			f.testSecret = r.GetSecret()
		}
	}
	keys, err := f.svc.GetKeys(ctx, &callsignv1.GetKeysRequest{})
	if err != nil {
		return nil, err
	}
	f.jwks = keys.GetJwks()
	if f.keySet, err = token.ParseJWKS(f.jwks, token.EdDSA); err != nil {
		return nil, err
	}
	if f.warm, err = f.issue(ctx); err != nil {
		return nil, err
	}
	p, err := token.Parse(f.warm, token.EdDSA, token.TypeService)
	if err != nil {
		return nil, err
	}
	k, _ := f.keySet.Lookup(p.KID)
	f.pub = k.Public.(ed25519.PublicKey)

	// callsignd's gRPC server: AuthService behind callsign's own interceptor.
	ks, err := interceptor.NewStaticKeySource(f.jwks, interceptor.EdDSA)
	if err != nil {
		return nil, err
	}
	self, err := interceptor.NewServer(ks, interceptor.WithIssuer(issuer), interceptor.WithAudience(selfAudience),
		interceptor.WithLogger(discard))
	if err != nil {
		return nil, err
	}
	f.gs = grpc.NewServer(append(self.GRPCServerOptions(), grpc.MaxRecvMsgSize(authsvc.MaxRequestSize))...)
	callsignv1.RegisterAuthServiceServer(f.gs, f.svc.AuthServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.addr = lis.Addr().String()
	go func() { _ = f.gs.Serve(lis) }()
	return f, nil
}

// issue obtains one service token orders → test in process (client secret).
func (f *fixture) issue(ctx context.Context) (string, error) {
	resp, err := f.svc.AuthServer().IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: caller, Secret: f.ordersSecret}},
		Audience:   audience,
	})
	if err != nil {
		return "", err
	}
	return resp.GetToken(), nil
}

// coldTokens returns the pool of distinct tokens for cold calls: more than
// the verified-token cache holds, so that a round-robin over them never hits.
func (f *fixture) coldTokens(tb testing.TB) []string {
	tb.Helper()
	f.coldOnce.Do(func() {
		n := sized(2*interceptor.DefaultCacheSize+1000, 16)
		f.cold = make([]string, n)
		var wg sync.WaitGroup
		var failed atomic.Bool
		workers := runtime.GOMAXPROCS(0)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					tok, err := f.issue(context.Background())
					if err != nil {
						failed.Store(true)
						return
					}
					f.cold[i] = tok
				}
			})
		}
		wg.Wait()
		if failed.Load() {
			f.cold = nil
		}
	})
	if f.cold == nil {
		tb.Fatal("issuing the cold token pool failed")
	}
	return f.cold
}

// dialAuth returns a connection to the fixture's callsignd.
func (f *fixture) dialAuth(tb testing.TB, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(f.addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// rotatingSource is a TokenSource that hands out the next token of a pool on
// every call: every call carries a token the server has not seen recently.
type rotatingSource struct {
	pool []string
	next atomic.Uint64
}

func (r *rotatingSource) Token(context.Context, string) (string, error) {
	return r.pool[(r.next.Add(1)-1)%uint64(len(r.pool))], nil
}
func (*rotatingSource) Invalidate(string, string) {}
func (*rotatingSource) Close() error              { return nil }

// The server-side variants, in the order the tables list them.
const (
	vBare        = "bare"
	vPass        = "passthrough"
	vAuthz       = "authz"
	vJWX         = "naive-jwx"
	vJWT         = "naive-jwt"
	vWarm        = "callsign-warm"
	vCold        = "callsign-cold"
	vCentral     = "callsign-central"
	vCentralWarm = "callsign-central-warm"
	vNoExpiry    = "callsign-warm-noexpiry" // streams not ended at token expiry
	vPassAuth    = "passthrough-authonly"   // pass-through; the client sends authorization only
)

// interceptors are one variant's server interceptors; nil for bare.
type interceptors struct {
	unary  grpc.UnaryServerInterceptor
	stream grpc.StreamServerInterceptor
	// tokens is the client's token source: fixed (warm) or rotating (cold).
	tokens interceptor.TokenSource
	// authOnly, when set, replaces callsign's client interceptor with one
	// that attaches only this authorization value.
	authOnly string
}

// newVariant builds the server interceptors of a variant.
func newVariant(tb testing.TB, f *fixture, name string) interceptors {
	tb.Helper()
	warm := interceptor.StaticTokenSource(map[string]string{audience: f.warm})
	switch name {
	case vBare:
		return interceptors{}
	case vPass:
		return interceptors{unary: passUnary, stream: passStream, tokens: warm}
	case vAuthz:
		a, err := authz.NewStatic(authzPolicy)
		if err != nil {
			tb.Fatal(err)
		}
		return interceptors{unary: a.UnaryInterceptor, stream: a.StreamInterceptor, tokens: warm}
	case vJWX:
		v := jwxVerifier(f.pub)
		return interceptors{unary: naiveUnary(v), stream: naiveStream(v), tokens: warm}
	case vJWT:
		v := golangJWTVerifier(f.pub)
		return interceptors{unary: naiveUnary(v), stream: naiveStream(v), tokens: warm}
	case vWarm, vCold:
		srv := f.callsignServer(tb)
		ts := warm
		if name == vCold {
			ts = &rotatingSource{pool: f.coldTokens(tb)}
		}
		return interceptors{unary: srv.UnaryServerInterceptor(), stream: srv.StreamServerInterceptor(), tokens: ts}
	case vPassAuth:
		return interceptors{unary: passUnary, stream: passStream, authOnly: "Bearer " + f.warm}
	case vNoExpiry:
		srv := f.callsignServer(tb, interceptor.WithStreamExpiry(false))
		return interceptors{unary: srv.UnaryServerInterceptor(), stream: srv.StreamServerInterceptor(), tokens: warm}
	case vCentral, vCentralWarm:
		srv := f.centralServer(tb)
		ts := warm
		if name == vCentral {
			ts = &rotatingSource{pool: f.coldTokens(tb)}
		}
		return interceptors{unary: srv.UnaryServerInterceptor(), stream: srv.StreamServerInterceptor(), tokens: ts}
	}
	tb.Fatalf("unknown variant %q", name)
	return interceptors{}
}

// callsignServer is the resource server's callsign interceptor with its
// defaults: local verification against the published keys, the
// verified-token cache, rules from the proto, audit counting allowed calls.
func (f *fixture) callsignServer(tb testing.TB, opts ...interceptor.ServerOption) *interceptor.Server {
	tb.Helper()
	ks, err := interceptor.NewStaticKeySource(f.jwks, interceptor.EdDSA)
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := interceptor.NewServer(ks, append([]interceptor.ServerOption{
		interceptor.WithIssuer(issuer), interceptor.WithAudience(audience), interceptor.WithLogger(discard),
	}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// centralServer verifies every token by AuthService.Verify on the fixture's
// callsignd, over loopback TCP, authenticated as the account "test" with a
// live token source.
func (f *fixture) centralServer(tb testing.TB) *interceptor.Server {
	tb.Helper()
	boot := callsignv1.NewAuthServiceClient(f.dialAuth(tb))
	ts, err := interceptor.NewTokenSource(boot, interceptor.ClientSecret(audience, f.testSecret),
		interceptor.WithTokenSourceLogger(discard))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ts.Close() })
	conn := f.dialAuth(tb, grpc.WithUnaryInterceptor(interceptor.UnaryClientInterceptor(ts)))
	srv, err := interceptor.NewServer(nil,
		interceptor.WithIssuer(issuer), interceptor.WithAudience(audience), interceptor.WithLogger(discard),
		interceptor.WithCentralVerification(callsignv1.NewAuthServiceClient(conn)))
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// The pass-through interceptors: they only call the handler.
func passUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	return handler(ctx, req)
}

func passStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, ss)
}

// authzPolicy is grpc-go's static authorization policy for the benchmark
// methods: allowed when an authorization header starts with "Bearer ". It is
// a policy engine with no cryptography: a lower bound for any authorization.
const authzPolicy = `{
  "name": "bench",
  "allow_rules": [{
    "name": "test-read",
    "request": {
      "paths": ["` + methodUnary + `", "` + methodStream + `"],
      "headers": [{"key": "authorization", "values": ["Bearer *"]}]
    }
  }]
}`

// A naive verifier parses and verifies a JWT on every call, the pattern most
// articles show: the whole metadata map, then the library's parse with
// validation, then a scope check on the parsed claims.
type naiveVerifier func(raw string) (any, error)

type claimsKey struct{}

var errNaive = status.Error(codes.Unauthenticated, "unauthenticated")

func naiveAuth(ctx context.Context, verify naiveVerifier) (context.Context, error) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil, errNaive
	}
	vals := md.Get("authorization")
	if len(vals) != 1 || !strings.HasPrefix(vals[0], "Bearer ") {
		return nil, errNaive
	}
	claims, err := verify(strings.TrimPrefix(vals[0], "Bearer "))
	if err != nil {
		return nil, errNaive
	}
	return context.WithValue(ctx, claimsKey{}, claims), nil
}

func naiveUnary(verify naiveVerifier) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := naiveAuth(ctx, verify)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

func naiveStream(verify naiveVerifier) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := naiveAuth(ss.Context(), verify)
		if err != nil {
			return err
		}
		return handler(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context //nolint:containedctx // a stream carries its context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

func hasScope(list, want string) bool {
	for s := range strings.FieldsSeq(list) {
		if s == want {
			return true
		}
	}
	return false
}

// jwxVerifier is jwx v2's jwt.Parse with the key, validation, issuer and
// audience.
func jwxVerifier(pub ed25519.PublicKey) naiveVerifier {
	opts := []jwt.ParseOption{
		jwt.WithKey(jwa.EdDSA, pub),
		jwt.WithValidate(true),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithAcceptableSkew(30 * time.Second),
	}
	return func(raw string) (any, error) {
		tok, err := jwt.Parse([]byte(raw), opts...)
		if err != nil {
			return nil, err
		}
		sc, ok := tok.Get("scope")
		if s, _ := sc.(string); !ok || !hasScope(s, scope) {
			return nil, errNaive
		}
		return tok, nil
	}
}

type jwtClaims struct {
	jwtv5.RegisteredClaims
	Scope string `json:"scope"`
}

// golangJWTVerifier is golang-jwt v5's ParseWithClaims with the algorithm
// pinned, issuer, audience and exp required.
func golangJWTVerifier(pub ed25519.PublicKey) naiveVerifier {
	p := jwtv5.NewParser(
		jwtv5.WithValidMethods([]string{"EdDSA"}),
		jwtv5.WithIssuer(issuer),
		jwtv5.WithAudience(audience),
		jwtv5.WithExpirationRequired(),
		jwtv5.WithIssuedAt(),
		jwtv5.WithLeeway(30*time.Second),
	)
	keyFunc := func(*jwtv5.Token) (any, error) { return pub, nil }
	return func(raw string) (any, error) {
		var c jwtClaims
		if _, err := p.ParseWithClaims(raw, &c, keyFunc); err != nil {
			return nil, err
		}
		if !hasScope(c.Scope, scope) {
			return nil, errNaive
		}
		return &c, nil
	}
}

// testService answers the benchmark RPCs: Scoped echoes its payload,
// ServerStream sends one message.
type testService struct {
	testv1.UnimplementedTestServiceServer
}

func (testService) Scoped(_ context.Context, req *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	return &testv1.ScopedResponse{Payload: req.GetPayload()}, nil
}

func (testService) ServerStream(req *testv1.ServerStreamRequest, ss grpc.ServerStreamingServer[testv1.ServerStreamResponse]) error {
	return ss.Send(&testv1.ServerStreamResponse{Payload: req.GetPayload()})
}

// Transports.
const (
	tTCP     = "tcp"
	tBufconn = "bufconn"
)

// rpc is a client connected to a TestService behind one variant.
type rpc struct {
	client testv1.TestServiceClient
}

// newRPC starts a TestService behind variant on transport and returns a
// client that carries the variant's tokens (callsign's client interceptor
// attaches authorization, x-correlation-id and x-request-id; bare sends
// nothing). One call is made before it returns, so that connection set-up
// and rule resolution are out of the measurement.
func newRPC(tb testing.TB, transport, variant string) *rpc {
	tb.Helper()
	f := getFixture(tb)
	return startRPC(tb, transport, newVariant(tb, f, variant), variant)
}

// startRPC starts a TestService behind v on transport and returns a client
// carrying v's tokens.
func startRPC(tb testing.TB, transport string, v interceptors, variant string) *rpc {
	tb.Helper()
	var sopts []grpc.ServerOption
	if v.unary != nil {
		sopts = append(sopts, grpc.ChainUnaryInterceptor(v.unary), grpc.ChainStreamInterceptor(v.stream))
	}
	gs := grpc.NewServer(sopts...)
	testv1.RegisterTestServiceServer(gs, testService{})

	copts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	switch {
	case v.authOnly != "":
		copts = append(copts, grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", v.authOnly), method, req, reply, cc, opts...)
		}), grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			return streamer(metadata.AppendToOutgoingContext(ctx, "authorization", v.authOnly), desc, cc, method, opts...)
		}))
	case v.tokens != nil:
		copts = append(copts,
			grpc.WithUnaryInterceptor(interceptor.UnaryClientInterceptor(v.tokens)),
			grpc.WithStreamInterceptor(interceptor.StreamClientInterceptor(v.tokens)))
	}
	var target string
	switch transport {
	case tTCP:
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		target = lis.Addr().String()
		go func() { _ = gs.Serve(lis) }()
	case tBufconn:
		lis := bufconn.Listen(1 << 20)
		target = "passthrough:///bufnet"
		copts = append(copts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }))
		go func() { _ = gs.Serve(addrListener{lis}) }()
	default:
		tb.Fatalf("unknown transport %q", transport)
	}
	conn, err := grpc.NewClient(target, copts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
	})
	r := &rpc{client: testv1.NewTestServiceClient(conn)}
	if err := r.unary(context.Background()); err != nil {
		tb.Fatalf("%s over %s: first call: %v", variant, transport, err)
	}
	if err := r.stream(context.Background()); err != nil {
		tb.Fatalf("%s over %s: first stream: %v", variant, transport, err)
	}
	return r
}

var payload = "0123456789abcdef0123456789abcdef" // 32 bytes each way

func (r *rpc) unary(ctx context.Context) error {
	resp, err := r.client.Scoped(ctx, &testv1.ScopedRequest{Payload: payload})
	if err == nil && resp.GetPayload() != payload {
		err = errors.New("wrong payload")
	}
	return err
}

// stream opens a server stream, reads its one message and its end.
func (r *rpc) stream(ctx context.Context) error {
	st, err := r.client.ServerStream(ctx, &testv1.ServerStreamRequest{Payload: payload})
	if err != nil {
		return err
	}
	n := 0
	for {
		_, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		n++
	}
	if n != 1 {
		return fmt.Errorf("%d messages", n)
	}
	return nil
}

// addrListener gives bufconn's server-side connections TCP-shaped addresses:
// grpc-go's authz engine refuses a local address without a port, and bufconn
// reports "bufconn".
type addrListener struct{ *bufconn.Listener }

func (l addrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return addrConn{c}, nil
}

type addrConn struct{ net.Conn }

func (addrConn) LocalAddr() net.Addr  { return benchPeer.LocalAddr }
func (addrConn) RemoteAddr() net.Addr { return benchPeer.Addr }
