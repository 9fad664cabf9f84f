package interceptor

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// cliEpoch is the start of every fake clock.
var cliEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// cliFakeClock is a [Clock] that moves only when told to.
type cliFakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[int]*cliFakeTimer
	nextID  int
	changed chan struct{} // closed and replaced whenever timers change
}

type cliFakeTimer struct {
	at time.Time
	f  func()
}

func newCliFakeClock() *cliFakeClock {
	return &cliFakeClock{now: cliEpoch, timers: map[int]*cliFakeTimer{}, changed: make(chan struct{})}
}

func (c *cliFakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *cliFakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := c.nextID
	c.nextID++
	c.timers[id] = &cliFakeTimer{at: c.now.Add(d), f: f}
	c.notifyLocked()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[id]
		delete(c.timers, id)
		c.notifyLocked()
		return ok
	}
}

func (c *cliFakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock and runs the timers that fall due.
func (c *cliFakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []func()
	for id, t := range c.timers {
		if !t.at.After(c.now) {
			due = append(due, t.f)
			delete(c.timers, id)
		}
	}
	c.notifyLocked()
	c.mu.Unlock()
	for _, f := range due {
		go f()
	}
}

// Deadlines returns the pending timers, soonest first.
func (c *cliFakeClock) Deadlines() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, t := range c.timers {
		out = append(out, t.at)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// WaitForDeadline blocks until a timer is pending at exactly at, or fails
// the test when ctx ends.
func (c *cliFakeClock) WaitForDeadline(t *testing.T, at time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c.mu.Lock()
		ch := c.changed
		for _, tm := range c.timers {
			if tm.at.Equal(at) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no timer at +%v; pending %v", at.Sub(cliEpoch), cliRel(c.Deadlines()))
		}
	}
}

func cliRel(ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, v := range ts {
		out[i] = v.Sub(cliEpoch)
	}
	return out
}

// cliFakeAuth is an in-process AuthService that issues opaque, well-formed
// tokens, counts IssueToken calls and fails on demand.
type cliFakeAuth struct {
	callsignv1.UnimplementedAuthServiceServer

	clock    Clock
	lifetime time.Duration
	calls    atomic.Int32
	started  chan *callsignv1.IssueTokenRequest // each call, when not nil (buffered)

	mu      sync.Mutex
	reqs    []*callsignv1.IssueTokenRequest
	gate    chan struct{} // when not nil, each call waits for a value or a close
	failErr error         // when not nil, calls fail with it
	respond func(n int32, req *callsignv1.IssueTokenRequest) *callsignv1.IssueTokenResponse
}

func newCliFakeAuth(clock Clock) *cliFakeAuth {
	return &cliFakeAuth{clock: clock, lifetime: 300 * time.Second, started: make(chan *callsignv1.IssueTokenRequest, 4096)}
}

// cliToken builds an opaque compact-JWS-shaped token naming aud and n.
func cliToken(aud string, n int32) string {
	return "eyJhbGciOiJFZERTQSJ9." + base64.RawURLEncoding.EncodeToString([]byte(aud+"#"+strconv.Itoa(int(n)))) + ".c2ln"
}

func (f *cliFakeAuth) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failErr = err
}

func (f *cliFakeAuth) setGate(g chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = g
}

func (f *cliFakeAuth) requests() []*callsignv1.IssueTokenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*callsignv1.IssueTokenRequest(nil), f.reqs...)
}

func (f *cliFakeAuth) IssueToken(ctx context.Context, req *callsignv1.IssueTokenRequest) (*callsignv1.IssueTokenResponse, error) {
	n := f.calls.Add(1)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	gate, failErr, respond := f.gate, f.failErr, f.respond
	f.mu.Unlock()
	if f.started != nil {
		select {
		case f.started <- req:
		default:
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if failErr != nil {
		return nil, failErr
	}
	if respond != nil {
		return respond(n, req), nil
	}
	typ := callsignv1.TokenType_TOKEN_TYPE_SERVICE
	aud := req.GetAudience()
	if req.GetUser() != nil {
		typ = callsignv1.TokenType_TOKEN_TYPE_USER
		aud = "user:" + req.GetUser().GetUserId()
	}
	return &callsignv1.IssueTokenResponse{
		Token:      cliToken(aud, n),
		TokenType:  typ,
		ExpireTime: timestamppb.New(f.clock.Now().Add(f.lifetime)),
		TokenId:    "jti" + strconv.Itoa(int(n)),
	}, nil
}

// cliServe starts srv over bufconn and returns a client connection to it
// made with the dial options given.
func cliServe(t testing.TB, srv *grpc.Server, dial ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
	}, dial...)
	if !cliHasCreds(dial) {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	cc, err := grpc.NewClient("passthrough:///bufnet", opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// cliCredsOption marks dial options that carry transport credentials.
type cliCredsOption struct{ grpc.DialOption }

func cliHasCreds(opts []grpc.DialOption) bool {
	for _, o := range opts {
		if _, ok := o.(cliCredsOption); ok {
			return true
		}
	}
	return false
}

func cliWithTransport(c credentials.TransportCredentials) grpc.DialOption {
	return cliCredsOption{grpc.WithTransportCredentials(c)}
}

// cliStartAuth serves fa and returns a client for it.
func cliStartAuth(t testing.TB, fa *cliFakeAuth) callsignv1.AuthServiceClient {
	t.Helper()
	srv := grpc.NewServer()
	callsignv1.RegisterAuthServiceServer(srv, fa)
	return callsignv1.NewAuthServiceClient(cliServe(t, srv))
}

// cliNewSource returns a token source on a fresh fake AuthService with a
// fake clock and jitter fixed at r. It is closed at cleanup.
func cliNewSource(t testing.TB, r float64, opts ...TokenSourceOption) (*tokenSource, *cliFakeAuth, *cliFakeClock) {
	t.Helper()
	clk := newCliFakeClock()
	fa := newCliFakeAuth(clk)
	client := cliStartAuth(t, fa)
	opts = append([]TokenSourceOption{
		WithTokenSourceClock(clk), withTokenSourceRand(func() float64 { return r }),
		WithTokenSourceLogger(slog.New(slog.DiscardHandler)),
	}, opts...)
	ts, err := NewTokenSource(client, ClientSecret("orders", "cs_secret"), opts...)
	if err != nil {
		t.Fatalf("NewTokenSource: %v", err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	return ts.(*tokenSource), fa, clk
}

// cliRefusal is a status with a callsign ErrorInfo reason and, when
// audience is given, the refusing server's audience in its metadata.
func cliRefusal(code codes.Code, domain, reason string, audience ...string) error {
	info := &errdetails.ErrorInfo{Reason: reason, Domain: domain}
	if len(audience) > 0 {
		info.Metadata = map[string]string{ErrorInfoAudience: audience[0]}
	}
	st, err := status.New(code, "refused").WithDetails(info)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// cliTarget is a TestService that records the metadata of every call and
// answers each call with the next error of refuse (nil: success).
type cliTarget struct {
	testv1.UnimplementedTestServiceServer

	mu     sync.Mutex
	seen   []metadata.MD
	refuse []error
}

func (s *cliTarget) record(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, md)
	if len(s.refuse) > 0 {
		err := s.refuse[0]
		s.refuse = s.refuse[1:]
		return err
	}
	return nil
}

func (s *cliTarget) calls() []metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]metadata.MD(nil), s.seen...)
}

func (s *cliTarget) setRefuse(errs ...error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = errs
}

func (s *cliTarget) Scoped(ctx context.Context, req *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	if err := s.record(ctx); err != nil {
		return nil, err
	}
	return &testv1.ScopedResponse{Payload: req.GetPayload()}, nil
}

func (s *cliTarget) Public(ctx context.Context, req *testv1.PublicRequest) (*testv1.PublicResponse, error) {
	if err := s.record(ctx); err != nil {
		return nil, err
	}
	return &testv1.PublicResponse{Payload: req.GetPayload()}, nil
}

func (s *cliTarget) ServerStream(req *testv1.ServerStreamRequest, ss grpc.ServerStreamingServer[testv1.ServerStreamResponse]) error {
	if err := s.record(ss.Context()); err != nil {
		return err
	}
	return ss.Send(&testv1.ServerStreamResponse{Payload: req.GetPayload()})
}

func (s *cliTarget) BidiStream(ss grpc.BidiStreamingServer[testv1.BidiStreamRequest, testv1.BidiStreamResponse]) error {
	if err := s.record(ss.Context()); err != nil {
		return err
	}
	for {
		m, err := ss.Recv()
		if err != nil {
			return nil //nolint:nilerr // the client closed its side
		}
		if err := ss.Send(&testv1.BidiStreamResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

// cliStartTarget serves a cliTarget and returns a client whose connection
// uses the given dial options.
func cliStartTarget(t testing.TB, dial ...grpc.DialOption) (*cliTarget, testv1.TestServiceClient) {
	t.Helper()
	tgt := &cliTarget{}
	srv := grpc.NewServer()
	testv1.RegisterTestServiceServer(srv, tgt)
	return tgt, testv1.NewTestServiceClient(cliServe(t, srv, dial...))
}

// cliOurGoroutines lists the stacks of goroutines running code of the
// calling side of this package.
func cliOurGoroutines() []string {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	var out []string
	for g := range strings.SplitSeq(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "interceptor.(*tokenSource)") || strings.Contains(g, "interceptor.(*UserTokenSource)") {
			out = append(out, g)
		}
	}
	return out
}

// cliCtx returns a context that ends with the test.
func cliCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
