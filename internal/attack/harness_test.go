package attack

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/callsign-dev/callsign/interceptor"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// The fixed world every attack runs in.
var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

const (
	issuer   = "callsign-attack"
	audience = "test"
	svcPath  = "/callsign.test.v1.TestService/"
	skew     = 30 * time.Second

	// Accounts with a fixed state in the revocation data of every server.
	disabledAccount = "disabled-svc"
	rotatedAccount  = "rotated-svc" // every token issued before t0 is revoked
	revokedJTI      = "revoked-jti-AAAAAAAAAAAAAAAAAAAAAA"
)

// fixedClock stands still at t0; its timers never fire.
type fixedClock struct{}

func (fixedClock) Now() time.Time { return t0 }
func (fixedClock) AfterFunc(time.Duration, func()) (stop func() bool) {
	return func() bool { return true }
}

// seededKey returns a deterministic Ed25519 key.
func seededKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// kit forges tokens: the pinned key k1 (published), an attacker key (not
// published), and helpers to build headers and payloads byte for byte.
type kit struct {
	priv     ed25519.PrivateKey // kid k1, published
	attacker ed25519.PrivateKey // never published
	jwks     []byte
	// fetchURL is a loopback URL that counts requests, put in jku and x5u.
	fetchURL string
}

func newKit(t testing.TB) *kit {
	k := &kit{priv: seededKey(1), attacker: seededKey(2)}
	jwks, err := token.MarshalJWKS([]token.Key{{ID: "k1", Algorithm: token.EdDSA, Public: k.priv.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	k.jwks = jwks
	return k
}

var b64 = base64.RawURLEncoding

func enc(s string) string { return b64.EncodeToString([]byte(s)) }

// sign returns header.payload.signature with the JSON texts taken verbatim
// and an Ed25519 signature by priv over the first two segments.
func signWith(priv ed25519.PrivateKey, header, payload string) string {
	msg := enc(header) + "." + enc(payload)
	return msg + "." + b64.EncodeToString(ed25519.Sign(priv, []byte(msg)))
}

func (k *kit) sign(header, payload string) string { return signWith(k.priv, header, payload) }

// signSegments signs already encoded segments.
func (k *kit) signSegments(h, p string) string {
	msg := h + "." + p
	return msg + "." + b64.EncodeToString(ed25519.Sign(k.priv, []byte(msg)))
}

const (
	svcHeader  = `{"alg":"EdDSA","kid":"k1","typ":"svc+jwt"}`
	userHeader = `{"alg":"EdDSA","kid":"k1","typ":"user+jwt"}`
)

// claims is a JSON object kept as ordered raw members, so that a row can
// duplicate, reorder or reshape any of them.
type claims [][2]string

func (c claims) set(name, raw string) claims {
	out := make(claims, 0, len(c)+1)
	found := false
	for _, m := range c {
		if m[0] == name {
			out = append(out, [2]string{name, raw})
			found = true
			continue
		}
		out = append(out, m)
	}
	if !found {
		out = append(out, [2]string{name, raw})
	}
	return out
}

func (c claims) add(name, raw string) claims {
	return append(append(claims{}, c...), [2]string{name, raw})
}

func (c claims) del(name string) claims {
	out := make(claims, 0, len(c))
	for _, m := range c {
		if m[0] != name {
			out = append(out, m)
		}
	}
	return out
}

func (c claims) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + m[0] + `":` + m[1]) // names verbatim, escapes included
	}
	b.WriteByte('}')
	return b.String()
}

var jtiSeq atomic.Int64

// newJTI is a fresh, valid token id.
func newJTI() string {
	return fmt.Sprintf("jti-%024d", jtiSeq.Add(1))
}

func num(t time.Time) string { return fmt.Sprint(t.Unix()) }

// svcClaims are valid service-token claims for sub with scope test.read.
func svcClaims(sub string) claims {
	return claims{
		{"iss", `"` + issuer + `"`},
		{"sub", `"` + sub + `"`},
		{"aud", `"` + audience + `"`},
		{"exp", num(t0.Add(5 * time.Minute))},
		{"iat", num(t0)},
		{"jti", `"` + newJTI() + `"`},
		{"scope", `"test.read"`},
	}
}

// userClaims are valid user-token claims for the trust domain.
func userClaims(user, tenant string) claims {
	c := claims{
		{"iss", `"` + issuer + `"`},
		{"sub", `"` + user + `"`},
		{"aud", `"` + issuer + `"`},
		{"exp", num(t0.Add(5 * time.Minute))},
		{"iat", num(t0)},
		{"jti", `"` + newJTI() + `"`},
		{"roles", `["admin"]`},
		{"act", `{"sub":"edge"}`},
	}
	if tenant != "" {
		c = c.set("tenant_id", `"`+tenant+`"`)
	}
	return c
}

// svcToken is a valid service token of caller "orders" with test.read.
func (k *kit) svcToken() string { return k.sign(svcHeader, svcClaims("orders").String()) }

// userToken is a valid user token for alice of tenant acme.
func (k *kit) userToken() string { return k.sign(userHeader, userClaims("alice", "acme").String()) }

// mutableKeys is a KeySource whose snapshot a test can replace.
type mutableKeys struct {
	snap atomic.Pointer[interceptor.KeySnapshot]
}

func (m *mutableKeys) KeySnapshot() (*interceptor.KeySnapshot, error) {
	s := m.snap.Load()
	if s == nil {
		return nil, errors.New("no keys")
	}
	return s, nil
}

func (m *mutableKeys) set(t testing.TB, jwks []byte, alg interceptor.Algorithm, rev interceptor.Revocation) {
	t.Helper()
	s, err := interceptor.NewKeySnapshot(jwks, alg, rev)
	if err != nil {
		t.Fatal(err)
	}
	m.snap.Store(s)
}

// baseRevocation is the revocation state every attack server starts with.
func baseRevocation() interceptor.Revocation {
	return interceptor.Revocation{
		TokenIDs:         []string{revokedJTI},
		DisabledAccounts: []string{disabledAccount},
		RevokedBefore:    map[string]time.Time{rotatedAccount: t0.Add(-time.Second)},
	}
}

// recorder captures the audit records and the log output of one server.
type recorder struct {
	mu   sync.Mutex
	recs []interceptor.AuditRecord
	log  bytes.Buffer
	next interceptor.AuditSink
}

func (r *recorder) Audit(ctx context.Context, rec interceptor.AuditRecord) {
	r.mu.Lock()
	r.recs = append(r.recs, rec)
	r.mu.Unlock()
	r.next.Audit(ctx, rec)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.Write(p)
}

// take returns and clears what was recorded.
func (r *recorder) take() ([]interceptor.AuditRecord, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs, log := r.recs, r.log.String()
	r.recs, r.log = nil, bytes.Buffer{}
	return recs, log
}

// service implements the test service and counts handler runs.
type service struct {
	testv1.UnimplementedTestServiceServer
	runs   atomic.Int64
	mu     sync.Mutex
	tenant []string // TenantFromContext of each run
}

func (s *service) ran(ctx context.Context) {
	s.runs.Add(1)
	tenant, _ := interceptor.TenantFromContext(ctx)
	s.mu.Lock()
	s.tenant = append(s.tenant, tenant)
	s.mu.Unlock()
}

// lastTenant is the tenant of the last handler run.
func (s *service) lastTenant() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tenant) == 0 {
		return ""
	}
	return s.tenant[len(s.tenant)-1]
}

func (s *service) Public(ctx context.Context, r *testv1.PublicRequest) (*testv1.PublicResponse, error) {
	s.ran(ctx)
	return &testv1.PublicResponse{Payload: r.GetPayload()}, nil
}

func (s *service) Scoped(ctx context.Context, r *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	s.ran(ctx)
	return &testv1.ScopedResponse{Payload: r.GetPayload()}, nil
}

func (s *service) UserRequired(ctx context.Context, r *testv1.UserRequiredRequest) (*testv1.UserRequiredResponse, error) {
	s.ran(ctx)
	return &testv1.UserRequiredResponse{Payload: r.GetPayload()}, nil
}

func (s *service) TenantRequired(ctx context.Context, r *testv1.TenantRequiredRequest) (*testv1.TenantRequiredResponse, error) {
	s.ran(ctx)
	return &testv1.TenantRequiredResponse{Payload: r.GetPayload()}, nil
}

func (s *service) ServerStream(r *testv1.ServerStreamRequest, st grpc.ServerStreamingServer[testv1.ServerStreamResponse]) error {
	s.ran(st.Context())
	return st.Send(&testv1.ServerStreamResponse{Payload: r.GetPayload()})
}

func (s *service) PublicServerStream(r *testv1.PublicServerStreamRequest, st grpc.ServerStreamingServer[testv1.PublicServerStreamResponse]) error {
	s.ran(st.Context())
	return st.Send(&testv1.PublicServerStreamResponse{Payload: r.GetPayload()})
}

func (s *service) echoStream(st grpc.ServerStream) error {
	s.ran(st.Context())
	for {
		m := &testv1.BidiStreamRequest{}
		if err := st.RecvMsg(m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := st.SendMsg(&testv1.BidiStreamResponse{Payload: m.GetPayload()}); err != nil {
			return err
		}
	}
}

func (s *service) BidiStream(st grpc.BidiStreamingServer[testv1.BidiStreamRequest, testv1.BidiStreamResponse]) error {
	return s.echoStream(st)
}

// ClientStream is given, by the attack server, the rule of TenantRequired,
// so that the tenant rows have a streaming twin.
func (s *service) ClientStream(st grpc.ClientStreamingServer[testv1.ClientStreamRequest, testv1.ClientStreamResponse]) error {
	s.ran(st.Context())
	for {
		if _, err := st.Recv(); errors.Is(err, io.EOF) {
			return st.SendAndClose(&testv1.ClientStreamResponse{Payload: "ok"})
		} else if err != nil {
			return err
		}
	}
}

// env is one attack server: the interceptors and the test service on a real
// grpc.Server, reachable over bufconn (grpc-go client) and loopback TCP (raw
// HTTP/2 client).
type env struct {
	kit  *kit
	keys *mutableKeys
	srv  *interceptor.Server
	svc  *service
	rec  *recorder
	conn *grpc.ClientConn
	addr string // 127.0.0.1:port
}

func newEnv(t testing.TB, extra ...interceptor.ServerOption) *env {
	t.Helper()
	k := newKit(t)
	return newEnvKeys(t, k, k.jwks, interceptor.EdDSA, extra...)
}

// newEnvKeys starts an attack server whose key source first holds jwks under
// alg (which extra must pin when it is not EdDSA).
func newEnvKeys(t testing.TB, k *kit, jwks []byte, alg interceptor.Algorithm, extra ...interceptor.ServerOption) *env {
	t.Helper()
	e := &env{kit: k, keys: &mutableKeys{}, svc: &service{}}
	e.keys.set(t, jwks, alg, baseRevocation())
	e.rec = &recorder{}
	logger := slog.New(slog.NewJSONHandler(e.rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.rec.next = interceptor.NewSlogAuditSink(logger, true)
	opts := append([]interceptor.ServerOption{
		interceptor.WithIssuer(issuer),
		interceptor.WithAudience(audience),
		interceptor.WithClock(fixedClock{}),
		interceptor.WithSkew(skew),
		interceptor.WithLogger(logger),
		interceptor.WithAuditSink(e.rec),
		interceptor.WithRule(svcPath+"ClientStream", interceptor.Rule{Scopes: []string{"test.read"}, RequireUser: true, RequireTenant: true}),
	}, extra...)
	srv, err := interceptor.NewServer(e.keys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	testv1.RegisterTestServiceServer(gs, e.svc)
	if missing := srv.CheckServer(gs); len(missing) != 3 { // BrokenRule, NoRule and NoRuleBidiStream
		t.Fatalf("CheckServer = %v, want the three methods without a usable rule", missing)
	}
	bl := bufconn.Listen(1 << 20)
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = tl.Addr().String()
	go func() { _ = gs.Serve(bl) }()
	go func() { _ = gs.Serve(tl) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.conn = conn
	t.Cleanup(func() {
		_ = conn.Close()
		gs.Stop()
	})
	return e
}

// target is the pair of methods an attack is run on.
type target struct {
	unary  string
	stream string
	// streamKind: the stream method's shape.
	clientStreams, serverStreams bool
}

var (
	onScoped = target{unary: "Scoped", stream: "ServerStream", serverStreams: true}
	onUser   = target{unary: "UserRequired", stream: "BidiStream", clientStreams: true, serverStreams: true}
	onTenant = target{unary: "TenantRequired", stream: "ClientStream", clientStreams: true}
	onPublic = target{unary: "Public", stream: "PublicServerStream", serverStreams: true}
)

// outcome is what one call produced, seen from both ends.
type outcome struct {
	err     error
	payload string
	runs    int64 // handler runs during the call
	recs    []interceptor.AuditRecord
	log     string
}

// call runs one RPC of t (stream or unary) through the grpc-go client.
func (e *env) call(tg target, stream bool, md metadata.MD) outcome {
	e.rec.take()
	before := e.svc.runs.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, md)
	var (
		payload string
		err     error
	)
	req := &testv1.ScopedRequest{Payload: "ping"}
	resp := &testv1.ScopedResponse{}
	if !stream {
		err = e.conn.Invoke(ctx, svcPath+tg.unary, req, resp)
		payload = resp.GetPayload()
	} else {
		payload, err = e.streamCall(ctx, tg, req)
	}
	return e.finish(before, payload, err)
}

func (e *env) streamCall(ctx context.Context, tg target, req *testv1.ScopedRequest) (string, error) {
	desc := &grpc.StreamDesc{ClientStreams: tg.clientStreams, ServerStreams: tg.serverStreams}
	cs, err := e.conn.NewStream(ctx, desc, svcPath+tg.stream)
	if err != nil {
		return "", err
	}
	if err := cs.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	if err := cs.CloseSend(); err != nil {
		return "", err
	}
	resp := &testv1.ScopedResponse{}
	if err := cs.RecvMsg(resp); err != nil {
		return "", err
	}
	return resp.GetPayload(), nil
}

// finish collects the server-side view of a call that just returned. The
// interceptor audits before it answers, so the records are complete.
func (e *env) finish(before int64, payload string, err error) outcome {
	runs := e.svc.runs.Load() - before
	recs, log := e.rec.take()
	return outcome{err: err, payload: payload, runs: runs, recs: recs, log: log}
}

// reasonOf returns the code, the ErrorInfo reason and the whole status text
// (message and details, as JSON) of err.
func reasonOf(t testing.TB, err error) (codes.Code, string, string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status error: %v", err)
	}
	text := st.Message()
	if b, err := protojson.Marshal(st.Proto()); err == nil {
		text += " " + string(b)
	}
	var reason string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != interceptor.ErrorDomain {
				t.Errorf("ErrorInfo domain %q", info.GetDomain())
			}
			reason = info.GetReason()
		}
	}
	return st.Code(), reason, text
}

// secretsOf returns what of an attacker's input must never come back: each
// value sent, each token and each of its dot-separated pieces long enough to
// be recognised, and the decoded header and payload.
func secretsOf(md metadata.MD, extra []string) []string {
	var out []string
	addPiece := func(s string) {
		if len(s) >= 12 {
			out = append(out, s)
		}
	}
	for _, vs := range md {
		for _, v := range vs {
			addPiece(v)
			tok := v
			if _, after, ok := strings.Cut(v, " "); ok {
				tok = after
			}
			for piece := range strings.SplitSeq(tok, ".") {
				addPiece(piece)
				if d, err := b64.DecodeString(piece); err == nil {
					addPiece(string(d))
				}
			}
		}
	}
	for _, x := range extra {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// assertNoEcho fails when any secret appears in where (named what).
func assertNoEcho(t testing.TB, what, where string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(where, s) {
			t.Errorf("%s echoes attacker input %.40q", what, s)
		}
	}
}
