package authsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// Option configures a [Service].
type Option func(*options)

type options struct {
	now    func() time.Time
	logger *slog.Logger
	rand   io.Reader
}

// WithClock sets the clock (default time.Now). Tests use a fake clock and
// [Service.Tick] instead of waiting.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default slog.Default()). Nothing logged contains a
// token, a secret, an assertion or an unverified account id.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRand sets the source of randomness for signing keys, key ids, nonces,
// client secrets and their ids (default crypto/rand). It must be a
// cryptographically secure source.
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// Service is callsignd's AuthService and AdminService over one [Store]. It is
// safe for concurrent use; several Services (replicas) may share one store when
// the store supports it.
type Service struct {
	store Store
	cfg   Config
	alg   token.Algorithm
	kek   []byte
	now   func() time.Time
	log   *slog.Logger
	rand  io.Reader
	life  lifecycle

	accounts accountCache
	view     atomic.Pointer[keyView]
	reloadMu sync.Mutex
	signers  signerCache

	// Comparable work for unknown accounts (no existence oracle).
	dummyHash [sha256.Size]byte
	dummyKey  ed25519.PublicKey
}

// New returns a Service on store. It applies cfg (see [Service.ApplyConfig])
// and runs one key lifecycle step, so that a signing key exists when it
// returns. kek is the 32-byte key-encryption key ([LoadKEK]) under which the
// private signing keys are stored; the store's existing keys must decrypt with
// it. cfg is validated ([Config.Validate]); its settings (issuer, algorithm,
// lifetimes, schedule) are fixed for the life of the Service.
func New(ctx context.Context, store Store, kek []byte, cfg Config, opts ...Option) (*Service, error) {
	o := options{now: time.Now, logger: slog.Default(), rand: rand.Reader}
	for _, opt := range opts {
		opt(&o)
	}
	if store == nil {
		return nil, errors.New("authsvc: nil store")
	}
	if len(kek) != KEKSize {
		return nil, errKEK
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	alg, _ := parseAlgorithm(cfg.Algorithm)
	s := &Service{
		store: store,
		cfg:   cfg,
		alg:   alg,
		kek:   append([]byte(nil), kek...),
		now:   o.now,
		log:   o.logger,
		rand:  o.rand,
	}
	s.life = lifecycle{
		alg:            alg,
		publishLead:    cfg.PublishLead,
		rotationPeriod: cfg.RotationPeriod,
		maxLifetime:    cfg.MaxTokenLifetime,
		skew:           cfg.Skew,
		kek:            s.kek,
		rand:           s.rand,
	}
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand.Reader, seed[:]); err != nil {
		return nil, fmt.Errorf("authsvc: %w", err)
	}
	dummy := ed25519.NewKeyFromSeed(seed[:])
	s.dummyKey = ed25519.PublicKey(append([]byte(nil), dummy[ed25519.SeedSize:]...))
	if _, err := io.ReadFull(rand.Reader, s.dummyHash[:]); err != nil {
		return nil, fmt.Errorf("authsvc: %w", err)
	}
	// Every stored private key must open with this key-encryption key before
	// anything is written: a wrong key must not add keys sealed under it.
	stored, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	for i := range stored {
		if _, err := openPrivate(s.kek, stored[i].ID, stored[i].EncryptedPrivate); err != nil {
			return nil, err
		}
	}
	if err := s.ApplyConfig(ctx, cfg); err != nil {
		return nil, err
	}
	if err := s.Tick(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Config returns the configuration the Service runs with.
func (s *Service) Config() Config { return s.cfg }

// AuthServer returns the AuthService implementation. Register it on a server
// that limits messages to [MaxRequestSize] (grpc.MaxRecvMsgSize) and protects
// Verify with callsign's server interceptor (scope callsign.verify).
func (s *Service) AuthServer() callsignv1.AuthServiceServer { return &authServer{s: s} }

// AdminServer returns the AdminService implementation. Every RPC must be
// protected by callsign's server interceptor (scope callsign.admin).
func (s *Service) AdminServer() callsignv1.AdminServiceServer { return &adminServer{s: s} }

// Run runs the key lifecycle and the pruning of revocation records until ctx
// ends, one [Service.Tick] per interval (at most every 5 s, and at least twice
// per refresh hint). A failed step is logged and retried at the next interval.
// It returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	interval := min(s.cfg.RefreshHint/2, 5*time.Second)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.LogAttrs(ctx, slog.LevelError, "authsvc: key lifecycle step failed", slog.String("error", err.Error()))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick runs one lifecycle step now, at the Service's clock: it removes retired
// keys whose last token has expired (plus twice the skew), promotes the next key when the
// active one is due and the next one has been published for PublishLead,
// publishes a new next key, and drops revocation records and used assertion ids
// that no longer matter. It is idempotent and holds the store's key lock, so
// replicas may all run it.
func (s *Service) Tick(ctx context.Context) error {
	return s.step(ctx, false)
}

// RotateNow rotates the signing keys now: the next key signs, the active key
// retires (published until its last token has expired, plus twice the skew),
// and a new next key is published. It fails when the published set would
// exceed the largest JWKS verifiers accept (rotations in quick succession)
// until retired keys are removed. The next key is promoted even when it has been
// published for less than PublishLead, since an operator asked (for example
// after a leak); verifiers that do not know it yet fetch the key set again on
// its unknown kid. A key never signs before it is in the published set.
func (s *Service) RotateNow(ctx context.Context) error {
	return s.step(ctx, true)
}

func (s *Service) step(ctx context.Context, rotate bool) error {
	now := s.now()
	err := s.store.UpdateSigningKeys(ctx, func(keys []SigningKey) ([]SigningKey, error) {
		return s.life.step(keys, now, rotate)
	})
	if err != nil {
		return err
	}
	if err := s.store.Prune(ctx, now); err != nil {
		return err
	}
	_, err = s.reloadKeys(ctx)
	return err
}

// keys returns the current key view, reloading it from the store when it is
// older than keyReloadInterval (other replicas may have rotated).
func (s *Service) keys(ctx context.Context) (*keyView, error) {
	v := s.view.Load()
	now := s.now()
	if v != nil && now.Sub(v.loadedAt) < keyReloadInterval && !now.Before(v.loadedAt) {
		return v, nil
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if v := s.view.Load(); v != nil && now.Sub(v.loadedAt) < keyReloadInterval && !now.Before(v.loadedAt) {
		return v, nil
	}
	return s.reloadKeysLocked(ctx, now)
}

func (s *Service) reloadKeys(ctx context.Context) (*keyView, error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.reloadKeysLocked(ctx, s.now())
}

func (s *Service) reloadKeysLocked(ctx context.Context, now time.Time) (*keyView, error) {
	stored, err := s.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	v, err := buildView(ctx, stored, now, s.kek, &s.signers)
	if err != nil {
		return nil, err
	}
	s.view.Store(v)
	return v, nil
}

// GetKeys returns the published keys and revocation state, as the GetKeys RPC
// does: everything in the store, which the lifecycle step ([Service.Tick],
// run by [Service.Run]) keeps current. Its signature matches the generated client, so a server can feed its
// own interceptor's key source in-process.
func (s *Service) GetKeys(ctx context.Context, req *callsignv1.GetKeysRequest, _ ...grpc.CallOption) (*callsignv1.GetKeysResponse, error) {
	if req == nil {
		return nil, errRequestInvalid
	}
	st, err := s.store.State(ctx)
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	jwks, err := s.publishedJWKS(st.Keys)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	resp := &callsignv1.GetKeysResponse{
		Jwks:            jwks,
		Version:         st.Version,
		RefreshInterval: durationpb.New(s.cfg.RefreshHint),
	}
	for _, r := range st.RevokedTokens {
		resp.RevokedTokens = append(resp.RevokedTokens, &callsignv1.RevokedToken{
			TokenId:    r.ID,
			ExpireTime: timestamppb.New(r.ExpiresAt),
		})
	}
	for _, d := range st.DisabledAccounts {
		resp.DisabledAccounts = append(resp.DisabledAccounts, &callsignv1.DisabledAccount{
			AccountId:   d.Account,
			DisableTime: timestamppb.New(d.DisabledAt),
		})
	}
	for _, r := range st.RevokedAccounts {
		resp.RevokedAccounts = append(resp.RevokedAccounts, &callsignv1.RevokedAccount{
			AccountId:    r.Account,
			IssuedBefore: timestamppb.New(r.IssuedBefore),
			ExpireTime:   timestamppb.New(r.DropAt),
		})
	}
	return resp, nil
}

// publishedJWKS encodes the stored keys (states next, active and retired).
// Keys and revocation records leave the published state when the lifecycle
// step removes them from the store, so that what GetKeys returns changes only
// with its version.
func (s *Service) publishedJWKS(keys []SigningKey) ([]byte, error) {
	pub := make([]token.Key, 0, len(keys))
	for i := range keys {
		pk, err := publicKey(&keys[i])
		if err != nil {
			return nil, err
		}
		pub = append(pub, pk)
	}
	return token.MarshalJWKS(pub)
}

// JWKSHandler serves the published JWKS (the same as GetKeys) as
// application/jwk-set+json, for GET and HEAD, with Cache-Control max-age set to
// the refresh hint. Mount it at /.well-known/jwks.json.
func (s *Service) JWKSHandler() http.Handler {
	maxAge := "public, max-age=" + strconv.Itoa(int(s.cfg.RefreshHint/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		st, err := s.store.State(r.Context())
		if err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "authsvc: jwks: store", slog.String("error", err.Error()))
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		jwks, err := s.publishedJWKS(st.Keys)
		if err != nil {
			s.log.LogAttrs(r.Context(), slog.LevelError, "authsvc: jwks: encode", slog.String("error", err.Error()))
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Cache-Control", maxAge)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Length", strconv.Itoa(len(jwks)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(jwks)
	})
}

// storeError maps a storage error to a status: the context's own error when it
// ended, else Unavailable (logged).
func (s *Service) storeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	s.log.LogAttrs(ctx, slog.LevelError, "authsvc: storage error", slog.String("error", err.Error()))
	return errUnavailable
}

// internal logs err and returns the fixed Internal status.
func (s *Service) internal(ctx context.Context, err error) error {
	s.log.LogAttrs(ctx, slog.LevelError, "authsvc: internal error", slog.String("error", err.Error()))
	return errInternal
}
