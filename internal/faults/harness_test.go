package faults

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// Bounds of every process test.
const (
	startTimeout = 30 * time.Second // a shared machine with the race detector is slow
	rpcTimeout   = 10 * time.Second
	// The audience the verifiers serve, and the account that calls them with
	// its grant (both from callsignd --dev).
	verifierAudience = "pricing"
	callerAccount    = "orders"
	callerScope      = "pricing.quote"
	adminAccount     = "callsign-admin"
	scopedMethod     = "/callsign.test.v1.TestService/Scoped"
)

var (
	binOnce  sync.Once
	binPath  string
	errBuild error
	binDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// soakEnabled reports whether the long fault runs are asked for
// (CALLSIGN_SOAK set, as make soak does).
func soakEnabled() bool { return os.Getenv("CALLSIGN_SOAK") != "" }

// soak skips t unless CALLSIGN_SOAK is set (make soak).
func soak(t *testing.T) {
	t.Helper()
	if !soakEnabled() {
		t.Skip("a long fault run: set CALLSIGN_SOAK=1 (make soak)")
	}
}

// callsigndBinary builds cmd/callsignd once per test run.
func callsigndBinary(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			errBuild = err
			return
		}
		if binDir, errBuild = os.MkdirTemp("", "callsign-faults-"); errBuild != nil {
			return
		}
		binPath = filepath.Join(binDir, "callsignd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goBin, "build", "-o", binPath, "github.com/callsign-dev/callsign/cmd/callsignd").CombinedOutput()
		if err != nil {
			errBuild = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if errBuild != nil {
		tb.Fatal(errBuild)
	}
	return binPath
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type readyInfo struct {
	PID      int    `json:"pid"`
	GRPCAddr string `json:"grpc_addr"`
	HTTPAddr string `json:"http_addr"`
	Issuer   string `json:"issuer"`
}

// daemon is one callsignd process and what a test needs to reach it.
type daemon struct {
	dataDir string
	args    []string
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan struct{}
	info    readyInfo
}

// fastConfig is a configuration for fault runs: short lifetimes, a 1 s
// refresh hint and publish lead, 1 s skew.
const fastConfig = `issuer: callsign
token_lifetime: 10s
max_token_lifetime: 10s
skew: 1s
refresh_hint: 1s
publish_lead: 1s
rotation_period: 1m
`

// startDaemon starts callsignd --dev on dataDir with the given YAML
// configuration ("" for the defaults) on grpcAddr ("" for a free port), and
// waits for its ready file.
func startDaemon(tb testing.TB, dataDir, config, grpcAddr string) *daemon {
	tb.Helper()
	d := &daemon{dataDir: dataDir}
	if config != "" {
		p := filepath.Join(dataDir, "..", filepath.Base(dataDir)+".yaml")
		if err := os.WriteFile(p, []byte(config), 0o600); err != nil {
			tb.Fatal(err)
		}
		d.args = append(d.args, "--config", p)
	}
	if grpcAddr == "" {
		grpcAddr = "127.0.0.1:0"
	}
	d.args = append(d.args, "--grpc-addr", grpcAddr)
	d.start(tb)
	return d
}

func (d *daemon) start(tb testing.TB) {
	tb.Helper()
	ready := filepath.Join(tb.TempDir(), "ready.json")
	args := append([]string{"--dev", "--data-dir", d.dataDir, "--http-addr", "127.0.0.1:0",
		"--ready-file", ready, "--log-format", "json"}, d.args...)
	d.out = &syncBuffer{}
	d.done = make(chan struct{})
	d.cmd = exec.Command(callsigndBinary(tb), args...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CALLSIGN_") {
			env = append(env, kv)
		}
	}
	d.cmd.Env = env
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	cmd, done := d.cmd, d.done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	tb.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(startTimeout)
	for {
		if data, err := os.ReadFile(ready); err == nil {
			var info readyInfo
			if json.Unmarshal(data, &info) == nil && info.PID == cmd.Process.Pid {
				d.info = info
				return
			}
		}
		select {
		case <-done:
			tb.Fatalf("callsignd exited before ready:\n%s", d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("callsignd not ready after %s:\n%s", startTimeout, d.out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill(tb testing.TB) {
	tb.Helper()
	_ = d.cmd.Process.Kill()
	select {
	case <-d.done:
	case <-time.After(startTimeout):
		tb.Fatal("callsignd survived SIGKILL")
	}
}

// restart starts the process again on the same data directory and gRPC
// address.
func (d *daemon) restart(tb testing.TB) {
	tb.Helper()
	for i, a := range d.args {
		if a == "--grpc-addr" {
			d.args[i+1] = d.info.GRPCAddr
		}
	}
	d.start(tb)
}

// dial returns a client connection to the daemon's gRPC address (which
// survives restarts on the same address).
func (d *daemon) dial(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	// Calls wait for the connection (bounded by their deadline), so that a
	// call right after a restart does not fail on the old connection.
	cc, err := grpc.NewClient(d.info.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.WaitForReady(true)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// credential reads the private key of a dev account.
func (d *daemon) credential(tb testing.TB, account string) (ed25519.PrivateKey, string) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(d.dataDir, "credentials", account+".jwk"))
	if err != nil {
		tb.Fatal(err)
	}
	var j struct {
		Kid string `json:"kid"`
		D   string `json:"d"`
	}
	if err := json.Unmarshal(data, &j); err != nil {
		tb.Fatal(err)
	}
	seed, err := base64.RawURLEncoding.DecodeString(j.D)
	if err != nil || len(seed) != ed25519.SeedSize {
		tb.Fatalf("credential of %s: bad d", account)
	}
	return ed25519.NewKeyFromSeed(seed), j.Kid
}

// issue obtains a token for account and audience with a client assertion
// made at the given clock offset.
func (d *daemon) issue(ctx context.Context, tb testing.TB, cc *grpc.ClientConn, account, audience string, offset time.Duration) (*callsignv1.IssueTokenResponse, error) {
	tb.Helper()
	priv, kid := d.credential(tb, account)
	a, err := token.SignAssertion(priv, kid, account, d.info.Issuer, time.Now().Add(offset), 30*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	return callsignv1.NewAuthServiceClient(cc).IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: a},
		Audience:   audience,
	})
}

// admin returns an AdminService client with a fresh callsign-admin token.
func (d *daemon) admin(tb testing.TB, cc *grpc.ClientConn) (callsignv1.AdminServiceClient, context.Context) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	tb.Cleanup(cancel)
	resp, err := d.issue(ctx, tb, cc, adminAccount, "callsign", 0)
	if err != nil {
		tb.Fatalf("admin token: %v", err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+resp.GetToken())
	return callsignv1.NewAdminServiceClient(cc), ctx
}

// tokenSource is a client-side token source for callerAccount.
func (d *daemon) tokenSource(tb testing.TB, cc *grpc.ClientConn, opts ...interceptor.TokenSourceOption) interceptor.TokenSource {
	tb.Helper()
	priv, kid := d.credential(tb, callerAccount)
	ts, err := interceptor.NewTokenSource(callsignv1.NewAuthServiceClient(cc),
		interceptor.PrivateKeyJWT(callerAccount, priv, kid, d.info.Issuer),
		append([]interceptor.TokenSourceOption{interceptor.WithTokenSourceLogger(quietLogger())}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = ts.Close() })
	return ts
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// countingFetcher counts the GetKeys calls a key source makes.
type countingFetcher struct {
	next  interceptor.KeyFetcher
	calls atomic.Int64
}

func (f *countingFetcher) GetKeys(ctx context.Context, in *callsignv1.GetKeysRequest, opts ...grpc.CallOption) (*callsignv1.GetKeysResponse, error) {
	f.calls.Add(1)
	return f.next.GetKeys(ctx, in, opts...)
}

// offsetClock is the system clock moved by a fixed offset.
type offsetClock struct{ offset time.Duration }

func (c offsetClock) Now() time.Time { return time.Now().Add(c.offset) }
func (c offsetClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// service is the test service: it counts handler runs.
type service struct {
	testv1.UnimplementedTestServiceServer
	runs atomic.Int64
}

func (s *service) Scoped(_ context.Context, r *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	s.runs.Add(1)
	return &testv1.ScopedResponse{Payload: r.GetPayload()}, nil
}

// verifier is a service protected by callsign's interceptors on a loopback
// port, with a live key source fed by callsignd.
type verifier struct {
	addr    string
	src     interceptor.KeySource
	live    *pendingSource
	fetcher *countingFetcher
	svc     *service
	denied  atomic.Int64
	reasons sync.Map // reason name -> *atomic.Int64
}

// pendingSource is a KeySource that has no keys until its live source is
// installed: a verifier that cannot reach callsignd serves, but refuses.
type pendingSource struct {
	live atomic.Pointer[interceptor.LiveKeySource]
}

func (p *pendingSource) KeySnapshot() (*interceptor.KeySnapshot, error) {
	if l := p.live.Load(); l != nil {
		return l.KeySnapshot()
	}
	return nil, interceptor.ErrKeysUnavailable
}

func (p *pendingSource) RefreshKeys(ctx context.Context) (*interceptor.KeySnapshot, error) {
	if l := p.live.Load(); l != nil {
		return l.RefreshKeys(ctx)
	}
	return nil, interceptor.ErrKeysUnavailable
}

// ready reports whether the verifier has keys: what its readiness probe
// would answer.
func (v *verifier) ready() bool {
	_, err := v.src.KeySnapshot()
	return err == nil
}

type verifierConfig struct {
	clock   interceptor.Clock
	skew    time.Duration
	keyOpts []interceptor.KeySourceOption
	noWait  bool // serve before the first key fetch succeeds
}

// startVerifier starts a verifier fed by the daemon's AuthService at addr.
func startVerifier(tb testing.TB, grpcAddr string, cfg verifierConfig) *verifier {
	tb.Helper()
	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	v := &verifier{svc: &service{}, fetcher: &countingFetcher{next: callsignv1.NewAuthServiceClient(cc)}}
	clock := cfg.clock
	if clock == nil {
		clock = interceptor.SystemClock
	}
	keyOpts := append([]interceptor.KeySourceOption{interceptor.WithKeyLogger(quietLogger()), interceptor.WithKeyClock(clock)}, cfg.keyOpts...)
	v.live = &pendingSource{}
	v.src = v.live
	startLive := func(ctx context.Context) error {
		src, err := interceptor.NewLiveKeySource(ctx, v.fetcher, keyOpts...)
		if err != nil {
			return err
		}
		tb.Cleanup(func() { _ = src.Close() })
		v.live.live.Store(src)
		return nil
	}
	if cfg.noWait {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			_ = startLive(ctx)
		}()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := startLive(ctx); err != nil {
			tb.Fatalf("verifier: first key fetch: %v", err)
		}
	}
	skew := cfg.skew
	if skew == 0 {
		skew = time.Second
	}
	srv, err := interceptor.NewServer(v.src,
		interceptor.WithIssuer("callsign"),
		interceptor.WithAudience(verifierAudience),
		interceptor.WithClock(clock),
		interceptor.WithSkew(skew),
		interceptor.WithLogger(quietLogger()),
		interceptor.WithAuditSink(interceptor.AuditSinkFunc(func(_ context.Context, rec interceptor.AuditRecord) {
			if rec.Decision == interceptor.DecisionDeny {
				v.denied.Add(1)
				n, _ := v.reasons.LoadOrStore(interceptor.ReasonName(rec.Reason), new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		})),
		interceptor.WithRule(scopedMethod, interceptor.Rule{Scopes: []string{callerScope}}),
	)
	if err != nil {
		tb.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	testv1.RegisterTestServiceServer(gs, v.svc)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	v.addr = lis.Addr().String()
	go func() { _ = gs.Serve(lis) }()
	tb.Cleanup(gs.Stop)
	return v
}

// client returns a connection to the verifier; with ts set, its calls carry
// tokens from ts through callsign's client interceptors.
func (v *verifier) client(tb testing.TB, ts interceptor.TokenSource) *grpc.ClientConn {
	tb.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if ts != nil {
		opts = append(opts,
			grpc.WithChainUnaryInterceptor(interceptor.UnaryClientInterceptor(ts, interceptor.WithTargetAudience(verifierAudience))),
			grpc.WithChainStreamInterceptor(interceptor.StreamClientInterceptor(ts, interceptor.WithTargetAudience(verifierAudience))))
	}
	cc, err := grpc.NewClient(v.addr, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// callWith calls Scoped on cc with tok (when not empty) as the bearer token.
func callWith(cc *grpc.ClientConn, tok string) error {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	if tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	return cc.Invoke(ctx, scopedMethod, &testv1.ScopedRequest{Payload: "p"}, &testv1.ScopedResponse{})
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// waitFor polls cond every 10 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// reasonOf is the callsign reason of err, or its text.
func reasonOf(err error) string {
	if err == nil {
		return "OK"
	}
	if r, ok := interceptor.ReasonFromError(err); ok {
		return interceptor.ReasonName(r)
	}
	return err.Error()
}

// claimsOf decodes a token's payload without verifying it.
func claimsOf(tb testing.TB, tok string) (jti string, exp time.Time) {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatal("not a compact token")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		tb.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		tb.Fatal(err)
	}
	return c.JTI, time.Unix(c.Exp, 0)
}

func expiryOf(tb testing.TB, tok string) time.Time {
	_, exp := claimsOf(tb, tok)
	return exp
}
