package interceptor

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// cliIssuer is a callsignd stand-in that signs real tokens on its own clock,
// with the key chosen by keyFor (by call number).
type cliIssuer struct {
	callsignv1.UnimplementedAuthServiceServer
	clock  Clock
	keys   map[string]token.Signer
	calls  atomic.Int32
	mu     sync.Mutex
	keyFor func(n int32) string
}

func newCliIssuer(t *testing.T, clock Clock, kids ...string) (*cliIssuer, []byte) {
	t.Helper()
	iss := &cliIssuer{clock: clock, keys: map[string]token.Signer{}, keyFor: func(int32) string { return kids[0] }}
	var pub []token.Key
	for _, kid := range kids {
		seed := make([]byte, ed25519.SeedSize)
		copy(seed, kid) // the same kid gives the same key in every issuer
		priv := ed25519.NewKeyFromSeed(seed)
		k := token.Key{ID: kid, Algorithm: token.EdDSA, Public: priv.Public()}
		iss.keys[kid] = token.Signer{Key: k, Private: priv}
		pub = append(pub, k)
	}
	jwks, err := token.MarshalJWKS(pub)
	if err != nil {
		t.Fatal(err)
	}
	return iss, jwks
}

func (i *cliIssuer) IssueToken(_ context.Context, req *callsignv1.IssueTokenRequest) (*callsignv1.IssueTokenResponse, error) {
	n := i.calls.Add(1)
	i.mu.Lock()
	kid := i.keyFor(n)
	i.mu.Unlock()
	now := i.clock.Now().Truncate(time.Second)
	id, err := token.NewID()
	if err != nil {
		return nil, status.Error(codes.Internal, "id")
	}
	c := token.Claims{Type: token.TypeService, Issuer: "callsign", Subject: "orders", Audience: req.GetAudience(),
		IssuedAt: now, Expiry: now.Add(5 * time.Minute), ID: id, Scopes: []string{"test.read"}}
	tok, err := i.keys[kid].Sign(c)
	if err != nil {
		return nil, status.Error(codes.Internal, "sign")
	}
	return &callsignv1.IssueTokenResponse{Token: tok, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(c.Expiry)}, nil
}

// cliRealServer serves TestService behind the callsign server interceptors,
// verifying with the keys of publishedJWKS on serverClock.
func cliRealServer(t *testing.T, publishedJWKS []byte, serverClock Clock, dial ...grpc.DialOption) (testv1.TestServiceClient, *srvService) {
	t.Helper()
	svc := &srvService{}
	return cliRealServerFor(t, "test", svc, publishedJWKS, serverClock, dial...), svc
}

// cliRealServerFor serves impl as audience behind the callsign server
// interceptors.
func cliRealServerFor(t *testing.T, audience string, impl testv1.TestServiceServer, publishedJWKS []byte, serverClock Clock, dial ...grpc.DialOption) testv1.TestServiceClient {
	t.Helper()
	keys, err := NewStaticKeySource(publishedJWKS, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(keys, WithIssuer("callsign"), WithAudience(audience), WithClock(serverClock),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	testv1.RegisterTestServiceServer(gs, impl)
	return testv1.NewTestServiceClient(cliServe(t, gs, dial...))
}

func cliIssuerSource(t *testing.T, iss *cliIssuer, clock Clock) TokenSource {
	t.Helper()
	authSrv := grpc.NewServer()
	callsignv1.RegisterAuthServiceServer(authSrv, iss)
	ts, err := NewTokenSource(callsignv1.NewAuthServiceClient(cliServe(t, authSrv)), ClientSecret("orders", "cs_x"),
		WithTokenSourceClock(clock), withTokenSourceRand(func() float64 { return 0.5 }),
		WithTokenSourceLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	return ts
}

func TestClientAgainstServerRetriesOnUnknownKey(t *testing.T) {
	clk := newCliFakeClock()
	iss, _ := newCliIssuer(t, clk, "retired", "current")
	_, published := newCliIssuer(t, clk, "current") // same seeds: "current" is the same key
	iss.keyFor = func(n int32) string {
		if n == 1 {
			return "retired"
		}
		return "current"
	}
	ts := cliIssuerSource(t, iss, clk)
	client, _ := cliRealServer(t, published, clk, cliClientDial(ts)...)

	ctx := cliCtx(t)
	if _, err := ts.Token(ctx, "test"); err != nil { // the cached token is signed by the retired key
		t.Fatal(err)
	}
	clk.Advance(DefaultMinInvalidateAge)
	if _, err := client.Scoped(ctx, &testv1.ScopedRequest{}); err != nil {
		t.Fatalf("Scoped: %v; want success after a retry with a fresh token", err)
	}
	if n := iss.calls.Load(); n != 2 {
		t.Fatalf("IssueToken calls = %d, want 2", n)
	}
}

func TestClientAgainstServerRetriesOnExpiredToken(t *testing.T) {
	// The client's clock lags: it still trusts a token that the server (and
	// callsignd, which share a clock) see as expired.
	clientClock, serverClock := newCliFakeClock(), newCliFakeClock()
	iss, published := newCliIssuer(t, serverClock, "current")
	ts := cliIssuerSource(t, iss, clientClock)
	client, _ := cliRealServer(t, published, serverClock, cliClientDial(ts)...)

	ctx := cliCtx(t)
	if _, err := client.Scoped(ctx, &testv1.ScopedRequest{}); err != nil {
		t.Fatal(err)
	}
	clientClock.Advance(10 * time.Second)
	serverClock.Advance(400 * time.Second)
	if _, err := client.Scoped(ctx, &testv1.ScopedRequest{}); err != nil {
		t.Fatalf("Scoped: %v; want success after a retry with a fresh token", err)
	}
	if n := iss.calls.Load(); n != 2 {
		t.Fatalf("IssueToken calls = %d, want 2", n)
	}
}

func TestClientAgainstServerAllCallKinds(t *testing.T) {
	clk := newCliFakeClock()
	clk.now = time.Now().Truncate(time.Second)
	iss, published := newCliIssuer(t, clk, "current")
	ts := cliIssuerSource(t, iss, clk)
	client, _ := cliRealServer(t, published, clk, cliClientDial(ts)...)
	ctx := cliCtx(t)
	if _, err := client.Scoped(ctx, &testv1.ScopedRequest{}); err != nil {
		t.Fatalf("unary: %v", err)
	}
	s, err := client.ServerStream(ctx, &testv1.ServerStreamRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("server stream: %v", err)
	}
	// A method whose rule the token does not satisfy is refused, not retried.
	if _, err := client.MultiScoped(ctx, &testv1.MultiScopedRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("MultiScoped: %v, want PermissionDenied", err)
	}
	if n := iss.calls.Load(); n != 1 {
		t.Fatalf("IssueToken calls = %d, want 1", n)
	}
}

// cliCountingRelay relays Scoped to the next service and counts its runs.
type cliCountingRelay struct {
	testv1.UnimplementedTestServiceServer
	next testv1.TestServiceClient
	runs atomic.Int32
}

func (r *cliCountingRelay) Scoped(ctx context.Context, req *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	r.runs.Add(1)
	return r.next.Scoped(ctx, req)
}

func TestClientDoesNotRetryARefusalPassedOnByAHandler(t *testing.T) {
	// edge --> middle ("test") --> back ("inventory"). The back refuses the
	// middle's token (KEY_UNKNOWN: it does not know callsignd's key); the
	// middle retries once, then its handler passes the refusal on. The edge
	// must neither retry (running the middle's handler twice) nor drop its
	// own valid token.
	clk := newCliFakeClock()
	iss, published := newCliIssuer(t, clk, "current")
	_, unrelated := newCliIssuer(t, clk, "unrelated")
	edgeTS := cliIssuerSource(t, iss, clk)
	middleTS := cliIssuerSource(t, iss, clk)

	back := cliRealServerFor(t, "inventory", cliEcho{}, unrelated, clk, cliClientDial(middleTS, WithTargetAudience("inventory"))...)
	relay := &cliCountingRelay{next: back}
	edge := cliRealServerFor(t, "test", relay, published, clk, cliClientDial(edgeTS)...)

	ctx := cliCtx(t)
	edgeTok, err := edgeTS.Token(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := middleTS.Token(ctx, "inventory"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultMinInvalidateAge) // both tokens may be dropped now

	_, err = edge.Scoped(ctx, &testv1.ScopedRequest{})
	if r, ok := ReasonFromError(err); status.Code(err) != codes.Unauthenticated || !ok || r != callsignv1.Reason_REASON_KEY_UNKNOWN {
		t.Fatalf("err = %v, want the back's KEY_UNKNOWN passed on", err)
	}
	if n := relay.runs.Load(); n != 1 {
		t.Fatalf("the middle's handler ran %d times, want 1", n)
	}
	if n := iss.calls.Load(); n != 3 {
		t.Fatalf("IssueToken calls = %d, want 3 (edge 1, middle 1 + 1 for its own retry)", n)
	}
	if tok, _ := edgeTS.Token(ctx, "test"); tok != edgeTok {
		t.Fatal("the edge dropped its valid token")
	}
}
