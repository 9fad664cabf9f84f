package authsvc

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Option configures a [Service].
type Option func(*options)

type options struct {
	now    func() time.Time
	logger *slog.Logger
	rand   io.Reader
}

// WithClock sets the clock (default time.Now). Tests use a fake clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithLogger sets the logger (default slog.Default()). Nothing logged contains a
// token, a secret or an assertion.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithRand sets the source of randomness for signing keys, secrets and ids of
// secrets (default crypto/rand).
func WithRand(r io.Reader) Option { return func(o *options) { o.rand = r } }

// Service is callsignd's AuthService and AdminService. It is safe for
// concurrent use.
type Service struct{}

// New returns a Service on store, applies cfg to it (idempotently) and makes
// sure a signing key exists. kek is the 32-byte key-encryption key ([LoadKEK]).
func New(ctx context.Context, store Store, kek []byte, cfg Config, opts ...Option) (*Service, error) {
	return nil, errors.New("authsvc: not implemented yet")
}

// ApplyConfig applies the accounts of cfg to the store, idempotently.
func (s *Service) ApplyConfig(ctx context.Context, cfg Config) error {
	return errors.New("authsvc: not implemented yet")
}

// AuthServer returns the AuthService implementation.
func (s *Service) AuthServer() callsignv1.AuthServiceServer { return nil }

// AdminServer returns the AdminService implementation.
func (s *Service) AdminServer() callsignv1.AdminServiceServer { return nil }

// JWKSHandler serves the published JWKS (GET /.well-known/jwks.json).
func (s *Service) JWKSHandler() http.Handler { return nil }

// Run runs the key lifecycle and revocation pruning on its schedule until ctx ends.
func (s *Service) Run(ctx context.Context) error { return errors.New("authsvc: not implemented yet") }

// Tick runs one lifecycle step now.
func (s *Service) Tick(ctx context.Context) error { return errors.New("authsvc: not implemented yet") }

// RotateNow rotates the signing keys now.
func (s *Service) RotateNow(ctx context.Context) error {
	return errors.New("authsvc: not implemented yet")
}

// GetKeys returns the published keys and revocation state, in-process.
func (s *Service) GetKeys(ctx context.Context, req *callsignv1.GetKeysRequest, _ ...grpc.CallOption) (*callsignv1.GetKeysResponse, error) {
	return nil, errors.New("authsvc: not implemented yet")
}

// OpenSQLite opens (creating when missing) the SQLite store at path.
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	return nil, errors.New("authsvc: not implemented yet")
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() Store { return nil }
