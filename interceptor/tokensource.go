package interceptor

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// TokenSource hands out service tokens for the calling side, one audience at a
// time. The audience is the id of the service to be called (the audience of
// its callsign.v1.service option).
//
// Implementations are safe for concurrent use. [NewTokenSource] returns the
// live implementation that obtains tokens from callsignd; [StaticTokenSource]
// serves fixed tokens (tests, tokens obtained out of band).
type TokenSource interface {
	// Token returns a valid service token for audience, without the "Bearer "
	// prefix. When no valid token can be obtained it fails closed with an error
	// whose gRPC status is Unavailable (ErrorInfo reason TOKEN_UNAVAILABLE).
	Token(ctx context.Context, audience string) (string, error)
	// Invalidate drops token from the cache of audience if it is still the
	// cached one, so that the next call to Token obtains a new token. Clients
	// call it after a server answered TOKEN_EXPIRED, KEY_UNKNOWN or
	// TOKEN_REVOKED.
	Invalidate(audience, token string)
	// Close stops every background activity. Token fails after Close.
	Close() error
}

// IssueTokenClient is the part of [callsignv1.AuthServiceClient] a token source
// needs; a client made with callsignv1.NewAuthServiceClient satisfies it.
type IssueTokenClient interface {
	IssueToken(ctx context.Context, in *callsignv1.IssueTokenRequest, opts ...grpc.CallOption) (*callsignv1.IssueTokenResponse, error)
}

// Defaults of the token source (DESIGN.md §9).
const (
	// DefaultIssueTimeout bounds one IssueToken call.
	DefaultIssueTimeout = 10 * time.Second
	// DefaultBackoffInitial is the first wait after a failed IssueToken call;
	// each further failure doubles it, up to DefaultBackoffMax. Every wait is
	// spread by ±20 % at random.
	DefaultBackoffInitial = time.Second
	// DefaultBackoffMax caps the wait between attempts after failures.
	DefaultBackoffMax = 30 * time.Second
	// DefaultMinInvalidateAge is how old a token must be before
	// [TokenSource.Invalidate] drops it; see [WithMinInvalidateAge].
	DefaultMinInvalidateAge = 5 * time.Second
	// MaxAudiences bounds how many audiences one token source serves.
	MaxAudiences = 1024

	// maxCachedLifetime caps how long a token is used, whatever expire_time
	// says.
	maxCachedLifetime = time.Hour
	// minIssuedLifetime is the shortest remaining lifetime accepted from
	// IssueToken.
	minIssuedLifetime = time.Second
	// maxExpiryMargin is how long before its expiry a token stops being handed
	// out (or a tenth of its lifetime when that is shorter), so that it does not
	// expire on its way to the server.
	maxExpiryMargin = 10 * time.Second
	// maxAudienceLength bounds an audience (the longest SPIFFE id accepted).
	maxAudienceLength = 2048
)

// TokenSourceOption configures [NewTokenSource].
type TokenSourceOption func(*tokenSourceConfig)

type tokenSourceConfig struct {
	scopes           map[string][]string
	tenantID         string
	lifetime         time.Duration
	issueTimeout     time.Duration
	backoffInitial   time.Duration
	backoffMax       time.Duration
	minInvalidateAge time.Duration
	logger           *slog.Logger
	clock            Clock
	rand             func() float64
	metrics          prometheus.Registerer
	onFetched        func(audience string) // test hook, called after every IssueToken
}

// WithScopes asks for exactly these scopes (a subset of the grant) on tokens
// for audience. Without it callsignd grants every scope granted for the
// audience. A scope that is not granted makes IssueToken fail; it is never
// dropped silently.
func WithScopes(audience string, scopes ...string) TokenSourceOption {
	s := append([]string(nil), scopes...)
	return func(c *tokenSourceConfig) {
		if c.scopes == nil {
			c.scopes = make(map[string][]string)
		}
		c.scopes[audience] = s
	}
}

// WithTenant asks for tenant-scoped service tokens (a background job working
// for one tenant): every token carries tenant_id.
func WithTenant(tenantID string) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.tenantID = tenantID }
}

// WithLifetime asks callsignd for tokens of this lifetime (whole seconds, at
// least 10 s). Zero, the default, means callsignd's default (5 min).
func WithLifetime(d time.Duration) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.lifetime = d }
}

// WithIssueTimeout bounds each IssueToken call; default [DefaultIssueTimeout].
func WithIssueTimeout(d time.Duration) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.issueTimeout = d }
}

// WithBackoff sets the wait after the first failed IssueToken call and its
// cap; defaults [DefaultBackoffInitial] and [DefaultBackoffMax].
func WithBackoff(initial, maxWait time.Duration) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.backoffInitial, c.backoffMax = initial, maxWait }
}

// WithMinInvalidateAge sets how old a cached token must be before
// [TokenSource.Invalidate] drops it (default [DefaultMinInvalidateAge]). A
// token that was just issued is not dropped: a fresh token would not fare
// better, and a server that refuses every token must not turn each call into
// an IssueToken call.
func WithMinInvalidateAge(d time.Duration) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.minInvalidateAge = d }
}

// WithTokenSourceLogger sets the logger for failed IssueToken calls; default
// [slog.Default]. Records never hold a token or a secret.
func WithTokenSourceLogger(l *slog.Logger) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.logger = l }
}

// WithTokenSourceClock replaces the system clock, for tests. Default
// [SystemClock].
func WithTokenSourceClock(clock Clock) TokenSourceOption {
	return func(c *tokenSourceConfig) {
		if clock != nil {
			c.clock = clock
		}
	}
}

// withTokenSourceRand replaces the source of jitter, numbers in [0, 1) (tests).
func withTokenSourceRand(rnd func() float64) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.rand = rnd }
}

// withTokenSourceHook is called after every IssueToken call has been applied
// to the cache (tests).
func withTokenSourceHook(f func(audience string)) TokenSourceOption {
	return func(c *tokenSourceConfig) { c.onFetched = f }
}

// NewTokenSource returns a [TokenSource] that obtains service tokens from
// callsignd through client, proving the service's identity with cred.
//
// It caches one token per audience. A token is obtained on the first call to
// Token for its audience; concurrent first calls share one IssueToken call. A
// token that was used since it was obtained is renewed in the background at
// 50 % ± 10 % of its lifetime, so that the hot path never waits while a valid
// token is cached; a token nobody used is left to expire and the next call
// obtains a new one. The expiry is read from IssueTokenResponse.expire_time;
// nothing else is taken from the token itself.
//
// After a failed IssueToken call the source waits before trying again
// (exponential backoff with jitter, [WithBackoff]); meanwhile, and whenever it
// holds no valid token, Token fails at once with Unavailable
// (TOKEN_UNAVAILABLE).
//
// Close stops the background refreshes and waits for them. The source is safe
// for concurrent use.
func NewTokenSource(client IssueTokenClient, cred Credential, opts ...TokenSourceOption) (TokenSource, error) {
	if client == nil {
		return nil, errors.New("interceptor: NewTokenSource: nil IssueTokenClient")
	}
	if cred == nil {
		return nil, errors.New("interceptor: NewTokenSource: nil Credential")
	}
	cfg := tokenSourceConfig{
		issueTimeout:     DefaultIssueTimeout,
		backoffInitial:   DefaultBackoffInitial,
		backoffMax:       DefaultBackoffMax,
		minInvalidateAge: DefaultMinInvalidateAge,
		clock:            SystemClock,
		rand:             rand.Float64,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.issueTimeout <= 0 || cfg.backoffInitial <= 0 || cfg.backoffMax < cfg.backoffInitial || cfg.minInvalidateAge < 0 {
		return nil, errors.New("interceptor: NewTokenSource: invalid timeout or backoff")
	}
	if cfg.lifetime < 0 || cfg.lifetime%time.Second != 0 {
		return nil, errors.New("interceptor: NewTokenSource: lifetime must be whole seconds")
	}
	var metrics *tsMetrics
	if cfg.metrics != nil {
		m, err := newTSMetrics(cfg.metrics)
		if err != nil {
			return nil, err
		}
		metrics = m
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &tokenSource{
		cfg:     cfg,
		metrics: metrics,
		iss:     &tsIssuer{client: client, cred: cred, clock: cfg.clock, rand: cfg.rand, timeout: cfg.issueTimeout},
		ctx:     ctx,
		cancel:  cancel,
	}
	empty := map[string]*tsEntry{}
	s.entries.Store(&empty)
	return s, nil
}

// tokenSource is the live TokenSource.
type tokenSource struct {
	cfg     tokenSourceConfig
	iss     *tsIssuer
	metrics *tsMetrics

	// entries is copy-on-write: read without a lock, replaced under mu.
	entries atomic.Pointer[map[string]*tsEntry]
	closed  atomic.Bool

	mu     sync.Mutex // guards writes to entries, and wg.Add against Close
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	live   atomic.Int32 // running goroutines (tests)
	idled  atomic.Int32 // times a refresher found its token unused (tests)
}

// cachedToken is an immutable token with its schedule.
type cachedToken struct {
	token     string
	bearer    string    // "Bearer " + token
	expiry    time.Time // expire_time, as issued
	obtained  time.Time
	useUntil  time.Time // not handed out after this (expiry minus a margin)
	refreshAt time.Time // renewed in the background from here on
}

// tsEntry is the state of one audience.
type tsEntry struct {
	audience string
	cur      atomic.Pointer[cachedToken]
	used     atomic.Bool   // Token served this audience since its token was obtained
	wake     chan struct{} // capacity 1: tells the refresher to look again
	waiters  atomic.Int32  // callers waiting for a fetch (tests)

	mu          sync.Mutex
	flight      *tsFlight // the IssueToken call in progress, if any
	failures    int
	nextAttempt time.Time
	lastErr     error
}

// tsFlight is one IssueToken call that several callers may wait for.
type tsFlight struct {
	done chan struct{}
	tok  *cachedToken
	err  error
}

func (e *tsEntry) kick() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *tsEntry) markUsed() {
	if !e.used.Load() && e.used.CompareAndSwap(false, true) {
		e.kick()
	}
}

// Token implements [TokenSource].
func (s *tokenSource) Token(ctx context.Context, audience string) (string, error) {
	t, err := s.get(ctx, audience)
	if err != nil {
		return "", err
	}
	return t.token, nil
}

// bearerToken implements bearerSource: the header value and the token.
func (s *tokenSource) bearerToken(ctx context.Context, audience string) (string, string, error) {
	t, err := s.get(ctx, audience)
	if err != nil {
		return "", "", err
	}
	return t.bearer, t.token, nil
}

// get is the hot path: two atomic loads, a map read and a clock read while a
// valid token is cached.
func (s *tokenSource) get(ctx context.Context, audience string) (*cachedToken, error) {
	if e := (*s.entries.Load())[audience]; e != nil && !s.closed.Load() {
		if t := e.cur.Load(); t != nil && s.cfg.clock.Now().Before(t.useUntil) {
			e.markUsed()
			return t, nil
		}
	}
	return s.slow(ctx, audience)
}

func (s *tokenSource) slow(ctx context.Context, audience string) (*cachedToken, error) {
	t, err := s.obtain(ctx, audience)
	if err != nil {
		s.metrics.failClosed()
	}
	return t, err
}

// obtain returns a valid token for audience, waiting for an IssueToken call
// when none is cached.
func (s *tokenSource) obtain(ctx context.Context, audience string) (*cachedToken, error) {
	if s.closed.Load() {
		return nil, tokenUnavailable(errTokenSourceClosed)
	}
	if audience == "" || len(audience) > maxAudienceLength {
		return nil, tokenUnavailable(errBadAudience)
	}
	e, err := s.entry(audience)
	if err != nil {
		return nil, tokenUnavailable(err)
	}
	e.markUsed()
	if t := e.cur.Load(); t != nil && s.cfg.clock.Now().Before(t.useUntil) {
		return t, nil
	}
	f, err := s.join(e, false)
	if err != nil {
		return nil, tokenUnavailable(err)
	}
	e.waiters.Add(1)
	defer e.waiters.Add(-1)
	select {
	case <-f.done:
		if f.err != nil {
			return nil, tokenUnavailable(f.err)
		}
		return f.tok, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// entry returns the state of audience, creating it and its refresher.
func (s *tokenSource) entry(audience string) (*tsEntry, error) {
	if e := (*s.entries.Load())[audience]; e != nil {
		return e, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, errTokenSourceClosed
	}
	old := *s.entries.Load()
	if e := old[audience]; e != nil {
		return e, nil
	}
	if len(old) >= MaxAudiences {
		return nil, errTooManyAudiences
	}
	e := &tsEntry{audience: audience, wake: make(chan struct{}, 1)}
	next := make(map[string]*tsEntry, len(old)+1)
	maps.Copy(next, old)
	next[audience] = e
	s.entries.Store(&next)
	s.goLocked(func() { s.refresher(e) })
	return e, nil
}

// goLocked starts f as a goroutine that Close waits for. s.mu must be held and
// the source open.
func (s *tokenSource) goLocked(f func()) {
	s.wg.Add(1)
	s.live.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.live.Add(-1)
		f()
	}()
}

// join returns the IssueToken call in progress for e, or starts one, unless
// e is backing off after a failure. A call may have ended since the caller
// looked at the cache: when the token it left is still valid (and, for a
// refresh, not due yet) no call is started and the token is returned as a
// finished flight.
func (s *tokenSource) join(e *tsEntry, refresh bool) (*tsFlight, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.flight != nil {
		return e.flight, nil
	}
	now := s.cfg.clock.Now()
	if t := e.cur.Load(); t != nil && now.Before(t.useUntil) && (!refresh || now.Before(t.refreshAt)) {
		f := &tsFlight{done: make(chan struct{}), tok: t}
		close(f.done)
		return f, nil
	}
	if e.lastErr != nil && now.Before(e.nextAttempt) {
		return nil, e.lastErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, errTokenSourceClosed
	}
	f := &tsFlight{done: make(chan struct{})}
	e.flight = f
	s.goLocked(func() { s.fetch(e, f, refresh) })
	return f, nil
}

// fetch runs one IssueToken call for e and publishes its result.
func (s *tokenSource) fetch(e *tsEntry, f *tsFlight, refresh bool) {
	req := &callsignv1.IssueTokenRequest{
		Audience: e.audience,
		Scopes:   s.cfg.scopes[e.audience],
		TenantId: s.cfg.tenantID,
	}
	if s.cfg.lifetime > 0 {
		req.Lifetime = durationpb.New(s.cfg.lifetime)
	}
	tok, err := s.iss.issue(s.ctx, req, callsignv1.TokenType_TOKEN_TYPE_SERVICE)
	now := s.cfg.clock.Now()
	s.metrics.fetch(refresh, err == nil)

	e.mu.Lock()
	if err != nil {
		e.failures++
		wait := backoffWait(e.failures, s.cfg.backoffInitial, s.cfg.backoffMax, s.cfg.rand())
		e.nextAttempt = now.Add(wait)
		e.lastErr = err
		s.logFailure(e.audience, err, e.failures, wait)
	} else {
		e.failures, e.lastErr, e.nextAttempt = 0, nil, time.Time{}
		e.cur.Store(tok)
	}
	// Only a caller that comes after this call keeps the audience refreshed.
	e.used.Store(false)
	f.tok, f.err = tok, err
	e.flight = nil
	close(f.done)
	e.mu.Unlock()

	e.kick()
	if s.cfg.onFetched != nil {
		s.cfg.onFetched(e.audience)
	}
}

func (s *tokenSource) logFailure(audience string, err error, failures int, wait time.Duration) {
	if s.ctx.Err() != nil {
		return // closing
	}
	attrs := []any{"audience", audience, "failures", failures, "retry_in", wait}
	if ie, ok := errors.AsType[*IssueError](err); ok {
		attrs = append(attrs, "code", ie.Code.String(), "reason", ReasonName(ie.Reason))
	}
	s.cfg.logger.Warn("callsign: could not obtain a service token", attrs...)
}

// wakeAt is when the refresher of e should act next; false when it should
// wait for a kick (a call in progress, or nothing cached).
func (s *tokenSource) wakeAt(e *tsEntry) (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case e.flight != nil:
		return time.Time{}, false
	case e.lastErr != nil:
		return e.nextAttempt, true
	}
	if t := e.cur.Load(); t != nil {
		return t.refreshAt, true
	}
	return time.Time{}, false
}

// refresher renews the token of e in the background until the source closes.
func (s *tokenSource) refresher(e *tsEntry) {
	done := s.ctx.Done()
	for {
		at, ok := s.wakeAt(e)
		if !ok {
			select {
			case <-e.wake:
				continue
			case <-done:
				return
			}
		}
		if d := at.Sub(s.cfg.clock.Now()); d > 0 {
			fired := make(chan struct{})
			stop := s.cfg.clock.AfterFunc(d, func() { close(fired) })
			select {
			case <-fired:
			case <-e.wake:
				stop()
				continue
			case <-done:
				stop()
				return
			}
			continue // look again: the schedule may have changed meanwhile
		}
		if !e.used.Load() {
			// Nobody used the token since it was obtained (or since the
			// last failure): let it expire until a caller needs it again.
			s.idled.Add(1)
			select {
			case <-e.wake:
				continue
			case <-done:
				return
			}
		}
		f, err := s.join(e, true)
		if err != nil {
			continue
		}
		select {
		case <-f.done:
		case <-done:
			return
		}
	}
}

// Invalidate implements [TokenSource].
func (s *tokenSource) Invalidate(audience, token string) {
	e := (*s.entries.Load())[audience]
	if e == nil {
		return
	}
	t := e.cur.Load()
	if t == nil || t.token != token || s.cfg.clock.Now().Sub(t.obtained) < s.cfg.minInvalidateAge {
		return
	}
	if e.cur.CompareAndSwap(t, nil) {
		s.metrics.invalidation()
	}
}

// Close implements [TokenSource]. It waits for the background goroutines.
func (s *tokenSource) Close() error {
	s.mu.Lock()
	s.closed.Store(true)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// backoffWait is the wait after the n-th consecutive failure: initial doubled
// per failure, capped at maxWait, spread by ±20 % with r in [0, 1).
func backoffWait(n int, initial, maxWait time.Duration, r float64) time.Duration {
	d := initial
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	d = time.Duration(float64(d) * (0.8 + 0.4*r))
	return max(min(d, maxWait), time.Millisecond)
}

// StaticTokenSource returns a [TokenSource] that serves fixed tokens: tokens
// maps an audience to its token. An audience without a token gets Unavailable
// (TOKEN_UNAVAILABLE). Invalidate and Close do nothing. It is meant for tests
// and for tokens obtained out of band.
func StaticTokenSource(tokens map[string]string) TokenSource {
	m := make(map[string][2]string, len(tokens))
	for aud, tok := range tokens {
		m[aud] = [2]string{"Bearer " + tok, tok}
	}
	return staticTokenSource(m)
}

type staticTokenSource map[string][2]string

func (s staticTokenSource) Token(ctx context.Context, audience string) (string, error) {
	_, tok, err := s.bearerToken(ctx, audience)
	return tok, err
}

func (s staticTokenSource) bearerToken(_ context.Context, audience string) (string, string, error) {
	v, ok := s[audience]
	if !ok {
		return "", "", tokenUnavailable(errNoStaticToken)
	}
	return v[0], v[1], nil
}

func (staticTokenSource) Invalidate(string, string) {}
func (staticTokenSource) Close() error              { return nil }

// bearerSource is implemented by the token sources of this package: it saves
// building "Bearer " + token on every call.
type bearerSource interface {
	bearerToken(ctx context.Context, audience string) (bearer, token string, err error)
}

// Errors of the calling side, wrapped by the Unavailable status that
// [TokenSource.Token] returns.
var (
	errTokenSourceClosed = errors.New("interceptor: token source closed")
	errBadAudience       = errors.New("interceptor: audience empty or too long")
	errTooManyAudiences  = errors.New("interceptor: too many audiences for one token source")
	errNoStaticToken     = errors.New("interceptor: no static token for the audience")
	errBadIssueResponse  = errors.New("interceptor: IssueToken returned an unusable response")
)
