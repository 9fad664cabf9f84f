package interceptor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Defaults of the live key source (DESIGN.md §6, §9).
const (
	// DefaultRefreshInterval is used when GetKeys gives no refresh hint.
	DefaultRefreshInterval = 60 * time.Second
	// DefaultUnknownKIDInterval is the least time between two fetches caused
	// by tokens naming unknown kids.
	DefaultUnknownKIDInterval = 5 * time.Second
	// DefaultMaxStaleness is how long the last good key set is trusted when
	// fetches fail.
	DefaultMaxStaleness = 24 * time.Hour
	// DefaultFetchTimeout bounds one GetKeys call.
	DefaultFetchTimeout = 10 * time.Second

	minRefreshInterval = time.Second
	maxRefreshInterval = time.Hour
)

// KeyFetcher fetches keys and revocation state. callsignv1.AuthServiceClient
// satisfies it; callsignd adapts its own in-process service.
type KeyFetcher interface {
	GetKeys(ctx context.Context, in *callsignv1.GetKeysRequest, opts ...grpc.CallOption) (*callsignv1.GetKeysResponse, error)
}

// KeySourceOption configures [NewLiveKeySource] and [NewStaticKeySource].
type KeySourceOption interface {
	applyKeySource(*keySourceConfig)
}

type keySourceOptionFunc func(*keySourceConfig)

func (f keySourceOptionFunc) applyKeySource(c *keySourceConfig) { f(c) }

type keySourceConfig struct {
	alg             Algorithm
	clock           Clock
	logger          *slog.Logger
	registerer      prometheus.Registerer
	refresh         time.Duration
	unknownInterval time.Duration
	maxStaleness    time.Duration
	fetchTimeout    time.Duration
	revocation      Revocation
	errs            []error
}

func defaultKeySourceConfig() keySourceConfig {
	return keySourceConfig{
		alg:             EdDSA,
		clock:           SystemClock,
		logger:          slog.Default(),
		refresh:         DefaultRefreshInterval,
		unknownInterval: DefaultUnknownKIDInterval,
		maxStaleness:    DefaultMaxStaleness,
		fetchTimeout:    DefaultFetchTimeout,
	}
}

func (c *keySourceConfig) fail(msg string) {
	c.errs = append(c.errs, fmt.Errorf("%w: %s", errConfig, msg))
}

// WithKeyAlgorithm pins the algorithm of a live key source. Default [EdDSA].
func WithKeyAlgorithm(alg Algorithm) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if _, err := alg.token(); err != nil {
			c.errs = append(c.errs, err)
		}
		c.alg = alg
	})
}

// WithKeyClock replaces the system clock of a live key source, for tests.
func WithKeyClock(clock Clock) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if clock == nil {
			c.fail("nil clock")
			return
		}
		c.clock = clock
	})
}

// WithKeyLogger sets the logger of a live key source (fetch failures).
// Default [slog.Default].
func WithKeyLogger(logger *slog.Logger) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if logger == nil {
			c.fail("nil logger")
			return
		}
		c.logger = logger
	})
}

// WithKeyMetrics registers the live key source's metrics with reg:
// callsign_keys_age_seconds, callsign_keys_version and
// callsign_keys_fetches_total{result}.
func WithKeyMetrics(reg prometheus.Registerer) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) { c.registerer = reg })
}

// WithRefreshInterval sets the refresh interval used when GetKeys gives no
// hint. Default [DefaultRefreshInterval]. Hints and this value are clamped to
// between 1 s and 1 h; each wait is jittered by ±10 %.
func WithRefreshInterval(d time.Duration) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if d <= 0 {
			c.fail("refresh interval must be positive")
		}
		c.refresh = d
	})
}

// WithUnknownKIDInterval sets the least time between two fetches caused by
// unknown kids. Default [DefaultUnknownKIDInterval].
func WithUnknownKIDInterval(d time.Duration) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if d < 0 {
			c.fail("negative unknown-kid interval")
		}
		c.unknownInterval = d
	})
}

// WithMaxStaleness sets how long the last good key set is trusted after its
// fetch when later fetches fail; after that, calls fail with Unavailable /
// KEYS_UNAVAILABLE. Default [DefaultMaxStaleness].
func WithMaxStaleness(d time.Duration) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if d <= 0 {
			c.fail("max staleness must be positive")
		}
		c.maxStaleness = d
	})
}

// WithFetchTimeout bounds one GetKeys call. Default [DefaultFetchTimeout].
func WithFetchTimeout(d time.Duration) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) {
		if d <= 0 {
			c.fail("fetch timeout must be positive")
		}
		c.fetchTimeout = d
	})
}

// WithRevocation sets the revocation state of a static key source.
func WithRevocation(rev Revocation) KeySourceOption {
	return keySourceOptionFunc(func(c *keySourceConfig) { c.revocation = rev })
}

// LiveKeySource is a [KeySource] and [KeyRefresher] fed by AuthService.GetKeys.
// It refreshes in the background on the server's hint, fetches again (at
// most once per [DefaultUnknownKIDInterval], coalesced) when a token names an
// unknown kid, keeps the last good set when a fetch fails, and refuses to
// serve a set older than the maximum staleness. It is safe for concurrent use;
// [LiveKeySource.Close] stops it.
type LiveKeySource struct {
	fetcher KeyFetcher
	cfg     keySourceConfig

	state atomic.Pointer[liveState]

	ctx    context.Context //nolint:containedctx // the source owns its background work
	cancel context.CancelFunc
	done   chan struct{}
	kick   chan struct{}

	fetchMu sync.Mutex // one fetch at a time
	workers sync.WaitGroup

	mu          sync.Mutex // guards the fields below
	updated     chan struct{}
	lastUnknown time.Time
	inflight    chan struct{}
	closed      bool

	metrics *keyMetrics
}

type liveState struct {
	snap      *KeySnapshot
	fetchedAt time.Time
	refresh   time.Duration
}

// NewLiveKeySource starts a key source and blocks until its first fetch
// succeeds or ctx ends; in the latter case it stops and returns the last fetch
// error. Retries before the first success back off from 100 ms to the refresh
// interval. ctx bounds only this wait, not the source's life: call
// [LiveKeySource.Close] to stop it.
func NewLiveKeySource(ctx context.Context, fetcher KeyFetcher, opts ...KeySourceOption) (*LiveKeySource, error) {
	if fetcher == nil {
		return nil, fmt.Errorf("%w: nil key fetcher", errConfig)
	}
	c := defaultKeySourceConfig()
	for _, o := range opts {
		o.applyKeySource(&c)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	s := &LiveKeySource{
		fetcher: fetcher,
		cfg:     c,
		ctx:     bg,
		cancel:  cancel,
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		updated: make(chan struct{}),
	}
	if c.registerer != nil {
		m, err := newKeyMetrics(c.registerer, s)
		if err != nil {
			cancel()
			return nil, err
		}
		s.metrics = m
	}
	first := s.updatedChan()
	go s.run()
	select {
	case <-first:
		return s, nil
	case <-ctx.Done():
		_ = s.Close()
		return nil, fmt.Errorf("interceptor: first key fetch: %w", ctx.Err())
	}
}

// Close stops the background refresh and waits for it to end. It is safe to
// call more than once. After Close the last snapshot is still served until it
// is too stale.
func (s *LiveKeySource) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	<-s.done
	s.workers.Wait()
	return nil
}

// KeySnapshot returns the last good snapshot, or [ErrKeysUnavailable] when
// there is none or it was fetched longer ago than the maximum staleness.
func (s *LiveKeySource) KeySnapshot() (*KeySnapshot, error) {
	st := s.state.Load()
	if st == nil || s.cfg.clock.Now().Sub(st.fetchedAt) > s.cfg.maxStaleness {
		return nil, ErrKeysUnavailable
	}
	return st.snap, nil
}

// WaitUntilUpdated blocks until the next successful fetch after the call, or
// until ctx ends.
func (s *LiveKeySource) WaitUntilUpdated(ctx context.Context) error {
	ch := s.updatedChan()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// RefreshKeys fetches again because a token named an unknown kid. Concurrent
// calls share one fetch; a call within the unknown-kid interval of the
// previous one fetches nothing. It returns the snapshot current afterwards.
func (s *LiveKeySource) RefreshKeys(ctx context.Context) (*KeySnapshot, error) {
	s.mu.Lock()
	wait := s.inflight
	if s.closed {
		s.mu.Unlock()
		return s.KeySnapshot()
	}
	if wait == nil {
		now := s.cfg.clock.Now()
		if !s.lastUnknown.IsZero() && now.Sub(s.lastUnknown) < s.cfg.unknownInterval {
			s.mu.Unlock()
			return s.KeySnapshot()
		}
		s.lastUnknown = now
		wait = make(chan struct{})
		s.inflight = wait
		s.workers.Go(func() {
			s.fetch()
			s.mu.Lock()
			s.inflight = nil
			s.mu.Unlock()
			close(wait)
		})
	}
	s.mu.Unlock()
	select {
	case <-wait:
	case <-ctx.Done():
	}
	return s.KeySnapshot()
}

func (s *LiveKeySource) updatedChan() chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updated
}

// run is the background refresh loop.
func (s *LiveKeySource) run() {
	defer close(s.done)
	backoff := 100 * time.Millisecond
	for {
		var next time.Duration
		if s.fetch() {
			backoff = 100 * time.Millisecond
			next = s.state.Load().refresh
		} else {
			next = min(backoff, s.interval())
			backoff = min(2*backoff, s.interval())
		}
		stop := s.cfg.clock.AfterFunc(jitter(next), func() {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		})
		select {
		case <-s.ctx.Done():
			_ = stop()
			return
		case <-s.kick:
		}
	}
}

// interval is the current refresh interval.
func (s *LiveKeySource) interval() time.Duration {
	if st := s.state.Load(); st != nil {
		return st.refresh
	}
	return clampRefresh(s.cfg.refresh)
}

// fetch calls GetKeys once and installs the result. It reports success.
func (s *LiveKeySource) fetch() bool {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.fetchTimeout)
	defer cancel()
	resp, err := s.fetcher.GetKeys(ctx, &callsignv1.GetKeysRequest{KnownVersion: s.version()})
	var snap *KeySnapshot
	if err == nil {
		snap, err = NewKeySnapshot(resp.GetJwks(), s.cfg.alg, revocationFromResponse(resp))
	}
	if err != nil {
		s.metrics.fetched(false)
		if s.ctx.Err() == nil {
			s.cfg.logger.LogAttrs(s.ctx, slog.LevelWarn, "callsign: key fetch failed; keeping the last good key set",
				slog.String("error", err.Error()))
		}
		return false
	}
	snap.version = resp.GetVersion()
	refresh := s.cfg.refresh
	if h := resp.GetRefreshInterval(); h != nil && h.AsDuration() > 0 {
		refresh = h.AsDuration()
	}
	s.state.Store(&liveState{snap: snap, fetchedAt: s.cfg.clock.Now(), refresh: clampRefresh(refresh)})
	s.metrics.fetched(true)
	s.mu.Lock()
	close(s.updated)
	s.updated = make(chan struct{})
	s.mu.Unlock()
	return true
}

func (s *LiveKeySource) version() uint64 {
	if st := s.state.Load(); st != nil {
		return st.snap.version
	}
	return 0
}

// age is the time since the last successful fetch, or -1 before it.
func (s *LiveKeySource) age() time.Duration {
	st := s.state.Load()
	if st == nil {
		return -1
	}
	return s.cfg.clock.Now().Sub(st.fetchedAt)
}

func clampRefresh(d time.Duration) time.Duration {
	return min(max(d, minRefreshInterval), maxRefreshInterval)
}

// jitter spreads d by ±10 %.
func jitter(d time.Duration) time.Duration {
	spread := int64(d) / 10
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread) + time.Duration(rand.Int64N(2*spread+1)) //nolint:gosec // timing jitter, not a secret
}
