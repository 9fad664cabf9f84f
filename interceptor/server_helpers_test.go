package interceptor

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sort"
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

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// srvT0 is the start of every test's clock.
var srvT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	srvIssuer   = "callsign-test"
	srvAudience = "test"
	srvTestSvc  = "/callsign.test.v1.TestService/"
)

// srvClock is a manual Clock: time moves only when Advance is called.
type srvClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*srvTimer
}

type srvTimer struct {
	at      time.Time
	f       func()
	stopped bool
	fired   bool
}

func newSrvClock() *srvClock { return &srvClock{now: srvT0} }

func (c *srvClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *srvClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	t := &srvTimer{at: c.now.Add(d), f: f}
	fire := d <= 0
	if fire {
		t.fired = true
	} else {
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	if fire {
		go f()
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.fired || t.stopped {
			return false
		}
		t.stopped = true
		return true
	}
}

// Advance moves the clock and runs the callbacks that fall due, in order.
func (c *srvClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*srvTimer
	rest := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.fired = true
			due = append(due, t)
		default:
			rest = append(rest, t)
		}
	}
	c.timers = rest
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// pending is the number of armed timers.
func (c *srvClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped && !t.fired {
			n++
		}
	}
	return n
}

// srvKeys is a signing key with its published JWKS.
type srvKeys struct {
	signer token.Signer
	jwks   []byte
}

func newSrvKeys(t testing.TB, kid string) srvKeys {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := token.Key{ID: kid, Algorithm: token.EdDSA, Public: pub}
	jwks, err := token.MarshalJWKS([]token.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	return srvKeys{signer: token.Signer{Key: k, Private: priv}, jwks: jwks}
}

// jwksOf publishes several keys together.
func srvJWKS(t testing.TB, ks ...srvKeys) []byte {
	t.Helper()
	keys := make([]token.Key, 0, len(ks))
	for _, k := range ks {
		keys = append(keys, k.signer.Key)
	}
	b, err := token.MarshalJWKS(keys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// svcClaims are valid service-token claims at now for the test audience.
func srvSvcClaims(now time.Time, sub string, scopes ...string) token.Claims {
	id, err := token.NewID()
	if err != nil {
		panic(err)
	}
	return token.Claims{
		Type:     token.TypeService,
		Issuer:   srvIssuer,
		Subject:  sub,
		Audience: srvAudience,
		Expiry:   now.Add(5 * time.Minute),
		IssuedAt: now,
		ID:       id,
		Scopes:   scopes,
	}
}

// srvUserClaims are valid user-token claims for the trust domain.
func srvUserClaims(now time.Time, user, tenant string) token.Claims {
	id, err := token.NewID()
	if err != nil {
		panic(err)
	}
	return token.Claims{
		Type:     token.TypeUser,
		Issuer:   srvIssuer,
		Subject:  user,
		Audience: srvIssuer,
		Expiry:   now.Add(5 * time.Minute),
		IssuedAt: now,
		ID:       id,
		TenantID: tenant,
		Roles:    []string{"admin"},
		Actor:    "edge",
	}
}

func (k srvKeys) sign(t testing.TB, c token.Claims) string {
	t.Helper()
	s, err := k.signer.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// srvAudit collects audit records.
type srvAudit struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (a *srvAudit) Audit(_ context.Context, rec AuditRecord) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, rec)
}

func (a *srvAudit) take() []AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.recs
	a.recs = nil
	return r
}

// srvService implements the test services; it counts handler runs and keeps
// the identity each handler saw.
type srvService struct {
	testv1.UnimplementedTestServiceServer
	testv1.UnimplementedDefaultScopedServiceServer

	runs atomic.Int64
	mu   sync.Mutex
	last []srvSeen
	// streamStarted receives a value when a server stream has sent its first
	// message and waits for its context to end.
	streamStarted chan struct{}
}

type srvSeen struct {
	method    string
	caller    Caller
	hasCaller bool
	user      User
	hasUser   bool
	tenant    string
	request   RequestInfo
}

func (s *srvService) saw(ctx context.Context, method string) {
	s.runs.Add(1)
	seen := srvSeen{method: method}
	seen.caller, seen.hasCaller = CallerFromContext(ctx)
	seen.user, seen.hasUser = UserFromContext(ctx)
	seen.tenant, _ = TenantFromContext(ctx)
	seen.request, _ = RequestInfoFromContext(ctx)
	s.mu.Lock()
	s.last = append(s.last, seen)
	s.mu.Unlock()
}

func (s *srvService) seen() []srvSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	s.last = nil
	return r
}

func (s *srvService) Public(ctx context.Context, r *testv1.PublicRequest) (*testv1.PublicResponse, error) {
	s.saw(ctx, "Public")
	return &testv1.PublicResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) Scoped(ctx context.Context, r *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	s.saw(ctx, "Scoped")
	return &testv1.ScopedResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) MultiScoped(ctx context.Context, r *testv1.MultiScopedRequest) (*testv1.MultiScopedResponse, error) {
	s.saw(ctx, "MultiScoped")
	return &testv1.MultiScopedResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) UserRequired(ctx context.Context, r *testv1.UserRequiredRequest) (*testv1.UserRequiredResponse, error) {
	s.saw(ctx, "UserRequired")
	return &testv1.UserRequiredResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) TenantRequired(ctx context.Context, r *testv1.TenantRequiredRequest) (*testv1.TenantRequiredResponse, error) {
	s.saw(ctx, "TenantRequired")
	return &testv1.TenantRequiredResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) CallersListed(ctx context.Context, r *testv1.CallersListedRequest) (*testv1.CallersListedResponse, error) {
	s.saw(ctx, "CallersListed")
	return &testv1.CallersListedResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) Idempotent(ctx context.Context, r *testv1.IdempotentRequest) (*testv1.IdempotentResponse, error) {
	s.saw(ctx, "Idempotent")
	return &testv1.IdempotentResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) BrokenRule(ctx context.Context, r *testv1.BrokenRuleRequest) (*testv1.BrokenRuleResponse, error) {
	s.saw(ctx, "BrokenRule")
	return &testv1.BrokenRuleResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) NoRule(ctx context.Context, r *testv1.NoRuleRequest) (*testv1.NoRuleResponse, error) {
	s.saw(ctx, "NoRule")
	return &testv1.NoRuleResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) ServerStream(r *testv1.ServerStreamRequest, st grpc.ServerStreamingServer[testv1.ServerStreamResponse]) error {
	s.saw(st.Context(), "ServerStream")
	if err := st.Send(&testv1.ServerStreamResponse{Payload: r.GetPayload()}); err != nil {
		return err
	}
	if r.GetPayload() != "hold" {
		return nil
	}
	// Keep sending until the stream ends, as a feed would.
	if s.streamStarted != nil {
		s.streamStarted <- struct{}{}
	}
	<-st.Context().Done()
	return st.Send(&testv1.ServerStreamResponse{Payload: "after"})
}

func (s *srvService) ClientStream(st grpc.ClientStreamingServer[testv1.ClientStreamRequest, testv1.ClientStreamResponse]) error {
	s.saw(st.Context(), "ClientStream")
	var last string
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.SendAndClose(&testv1.ClientStreamResponse{Payload: last})
		}
		if err != nil {
			return err
		}
		last = m.GetPayload()
	}
}

func (s *srvService) BidiStream(st grpc.BidiStreamingServer[testv1.BidiStreamRequest, testv1.BidiStreamResponse]) error {
	s.saw(st.Context(), "BidiStream")
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(&testv1.BidiStreamResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

func (s *srvService) PublicServerStream(r *testv1.PublicServerStreamRequest, st grpc.ServerStreamingServer[testv1.PublicServerStreamResponse]) error {
	s.saw(st.Context(), "PublicServerStream")
	return st.Send(&testv1.PublicServerStreamResponse{Payload: r.GetPayload()})
}

func (s *srvService) NoRuleBidiStream(st grpc.BidiStreamingServer[testv1.NoRuleBidiStreamRequest, testv1.NoRuleBidiStreamResponse]) error {
	s.saw(st.Context(), "NoRuleBidiStream")
	return nil
}

func (s *srvService) Inherit(ctx context.Context, r *testv1.InheritRequest) (*testv1.InheritResponse, error) {
	s.saw(ctx, "Inherit")
	return &testv1.InheritResponse{Payload: r.GetPayload()}, nil
}

func (s *srvService) Override(ctx context.Context, r *testv1.OverrideRequest) (*testv1.OverrideResponse, error) {
	s.saw(ctx, "Override")
	return &testv1.OverrideResponse{Payload: r.GetPayload()}, nil
}

// srvEnv is a test server over bufconn with one signing key.
type srvEnv struct {
	t      testing.TB
	clock  *srvClock
	keys   srvKeys
	source KeySource
	server *Server
	svc    *srvService
	audit  *srvAudit
	conn   *grpc.ClientConn
	gs     *grpc.Server
}

type srvEnvConfig struct {
	opts      []ServerOption
	source    func(e *srvEnv) KeySource
	serverTLS credentials.TransportCredentials
	clientTLS credentials.TransportCredentials
}

func newSrvEnv(t testing.TB, cfg srvEnvConfig) *srvEnv {
	t.Helper()
	e := &srvEnv{t: t, clock: newSrvClock(), keys: newSrvKeys(t, "k1"), svc: &srvService{}, audit: &srvAudit{}}
	if cfg.source != nil {
		e.source = cfg.source(e)
	} else {
		src, err := NewStaticKeySource(e.keys.jwks, EdDSA)
		if err != nil {
			t.Fatal(err)
		}
		e.source = src
	}
	opts := append([]ServerOption{
		WithIssuer(srvIssuer),
		WithAudience(srvAudience),
		WithClock(e.clock),
		WithAuditSink(e.audit),
	}, cfg.opts...)
	srv, err := NewServer(e.source, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.server = srv
	gopts := srv.GRPCServerOptions()
	if cfg.serverTLS != nil {
		gopts = append(gopts, grpc.Creds(cfg.serverTLS))
	}
	e.gs = grpc.NewServer(gopts...)
	testv1.RegisterTestServiceServer(e.gs, e.svc)
	testv1.RegisterDefaultScopedServiceServer(e.gs, e.svc)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = e.gs.Serve(lis) }()
	creds := insecure.NewCredentials()
	if cfg.clientTLS != nil {
		creds = cfg.clientTLS
	}
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	t.Cleanup(func() {
		_ = conn.Close()
		e.gs.Stop()
	})
	return e
}

// svcToken signs a service token for sub with scopes, valid now.
func (e *srvEnv) svcToken(sub string, scopes ...string) string {
	return e.keys.sign(e.t, srvSvcClaims(e.clock.Now(), sub, scopes...))
}

func (e *srvEnv) userToken(user, tenant string) string {
	return e.keys.sign(e.t, srvUserClaims(e.clock.Now(), user, tenant))
}

// rpcKind is one of the four kinds of RPC.
type rpcKind int

const (
	kindUnary rpcKind = iota
	kindServerStream
	kindClientStream
	kindBidi
)

func (k rpcKind) String() string {
	return [...]string{"unary", "server-stream", "client-stream", "bidi"}[k]
}

// call invokes method (a TestService method name) of the given kind with md as
// outgoing metadata and returns the error and the payload answered.
func (e *srvEnv) call(kind rpcKind, method string, md metadata.MD) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srvInvoke(metadata.NewOutgoingContext(ctx, md), e.conn, kind, srvTestSvc+method)
}

func srvInvoke(ctx context.Context, conn *grpc.ClientConn, kind rpcKind, full string) (string, error) {
	req := &testv1.ScopedRequest{Payload: "ping"}
	resp := &testv1.ScopedResponse{}
	if kind == kindUnary {
		err := conn.Invoke(ctx, full, req, resp)
		return resp.GetPayload(), err
	}
	desc := &grpc.StreamDesc{
		ServerStreams: kind == kindServerStream || kind == kindBidi,
		ClientStreams: kind == kindClientStream || kind == kindBidi,
	}
	cs, err := conn.NewStream(ctx, desc, full)
	if err != nil {
		return "", err
	}
	if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if err := cs.CloseSend(); err != nil {
		return "", err
	}
	if err := cs.RecvMsg(resp); err != nil {
		return "", err
	}
	return resp.GetPayload(), nil
}

// srvReason returns the code and ErrorInfo reason of err, failing the test
// when the detail is missing or malformed.
func srvReason(t testing.TB, err error) (codes.Code, string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status error: %v", err)
	}
	if st.Code() == codes.OK {
		return codes.OK, ""
	}
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != ErrorDomain {
				t.Fatalf("ErrorInfo domain %q", info.GetDomain())
			}
			reason = info.GetReason()
			if aud := info.GetMetadata()[ErrorInfoAudience]; aud != srvAudience || len(info.GetMetadata()) != 1 {
				t.Fatalf("ErrorInfo metadata %v, want only the server's audience", info.GetMetadata())
			}
		}
	}
	if reason == "" {
		t.Fatalf("status %v has no ErrorInfo", st)
	}
	if want := reasonStatus[callsignv1.Reason(callsignv1.Reason_value["REASON_"+reason])].msg; st.Message() != want {
		t.Fatalf("message %q, want the fixed %q", st.Message(), want)
	}
	return st.Code(), reason
}

func srvMD(kv ...string) metadata.MD { return metadata.Pairs(kv...) }

func srvBearer(tok string) string { return "Bearer " + tok }
