package interceptor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// KeySource supplies the verification keys and revocation state that the
// server interceptor checks every call against. Implementations must be safe
// for concurrent use and must not block: KeySnapshot is called on every RPC.
//
// [NewStaticKeySource] and [NewLiveKeySource] are the two implementations.
type KeySource interface {
	// KeySnapshot returns the state to verify with now. An error means there is
	// none that may be trusted (never loaded, or too stale); calls then fail
	// with Unavailable / KEYS_UNAVAILABLE.
	KeySnapshot() (*KeySnapshot, error)
}

// KeyRefresher is implemented by key sources that can fetch again when a
// token names a kid missing from their snapshot. The server interceptor calls
// RefreshKeys at most once per such token; implementations coalesce and
// rate-limit the fetches and may return the current snapshot unchanged.
type KeyRefresher interface {
	RefreshKeys(ctx context.Context) (*KeySnapshot, error)
}

// ErrKeysUnavailable is returned by [KeySource.KeySnapshot] when no trusted
// key set is loaded.
var ErrKeysUnavailable = errors.New("interceptor: verification keys unavailable")

// Revocation is revocation state applied on top of a key set.
type Revocation struct {
	// TokenIDs are revoked token ids (jti).
	TokenIDs []string
	// DisabledAccounts are accounts every token of which is refused.
	DisabledAccounts []string
	// RevokedBefore revokes, per account, every token issued (iat) before the
	// time given. The account is the sub of a service token and the act.sub of
	// a user token.
	RevokedBefore map[string]time.Time
}

// KeySnapshot is an immutable, validated key set with its revocation state.
// It is safe for concurrent use.
type KeySnapshot struct {
	keys          *token.KeySet
	alg           Algorithm
	revokedTokens map[string]struct{}
	disabled      map[string]struct{}
	revokedBefore map[string]time.Time
	version       uint64
}

// NewKeySnapshot validates a JWK Set (RFC 7517) for alg (see [Algorithm]) and
// combines it with rev. Every key must be a public key of the pinned algorithm
// with a unique kid and the exact size; any invalid key rejects the whole set.
func NewKeySnapshot(jwks []byte, alg Algorithm, rev Revocation) (*KeySnapshot, error) {
	talg, err := alg.token()
	if err != nil {
		return nil, err
	}
	ks, err := token.ParseJWKS(jwks, talg)
	if err != nil {
		return nil, fmt.Errorf("interceptor: key set rejected: %w", err)
	}
	if alg == "" {
		alg = EdDSA
	}
	s := &KeySnapshot{
		keys:          ks,
		alg:           alg,
		revokedTokens: make(map[string]struct{}, len(rev.TokenIDs)),
		disabled:      make(map[string]struct{}, len(rev.DisabledAccounts)),
		revokedBefore: make(map[string]time.Time, len(rev.RevokedBefore)),
	}
	for _, id := range rev.TokenIDs {
		s.revokedTokens[id] = struct{}{}
	}
	for _, a := range rev.DisabledAccounts {
		s.disabled[a] = struct{}{}
	}
	maps.Copy(s.revokedBefore, rev.RevokedBefore)
	return s, nil
}

// Len is the number of keys in the snapshot.
func (s *KeySnapshot) Len() int { return s.keys.Len() }

// Version is the GetKeys version the snapshot was built from; 0 for a static
// set.
func (s *KeySnapshot) Version() uint64 { return s.version }

// Algorithm is the algorithm the keys were validated for.
func (s *KeySnapshot) Algorithm() Algorithm { return s.alg }

// lookup returns the key with kid.
func (s *KeySnapshot) lookup(kid string) (token.Key, bool) { return s.keys.Lookup(kid) }

// revocation checks a verified token against the revocation state (step 6 of
// DESIGN.md §5). It returns REASON_UNSPECIFIED when the token stands.
func (s *KeySnapshot) revocation(v *verified) callsignv1.Reason {
	if _, ok := s.revokedTokens[v.id]; ok {
		return callsignv1.Reason_REASON_TOKEN_REVOKED
	}
	account := v.subject
	if v.typ == token.TypeUser {
		account = v.actor
	}
	if _, ok := s.disabled[account]; ok {
		return callsignv1.Reason_REASON_ACCOUNT_DISABLED
	}
	if before, ok := s.revokedBefore[account]; ok && v.issuedAt.Before(before) {
		return callsignv1.Reason_REASON_TOKEN_REVOKED
	}
	return callsignv1.Reason_REASON_UNSPECIFIED
}

// revocationFromResponse extracts the revocation state of a GetKeys response.
func revocationFromResponse(r *callsignv1.GetKeysResponse) Revocation {
	rev := Revocation{RevokedBefore: make(map[string]time.Time, len(r.GetRevokedAccounts()))}
	for _, t := range r.GetRevokedTokens() {
		rev.TokenIDs = append(rev.TokenIDs, t.GetTokenId())
	}
	for _, a := range r.GetDisabledAccounts() {
		rev.DisabledAccounts = append(rev.DisabledAccounts, a.GetAccountId())
	}
	for _, a := range r.GetRevokedAccounts() {
		t := a.GetIssuedBefore().AsTime()
		if prev, ok := rev.RevokedBefore[a.GetAccountId()]; !ok || t.After(prev) {
			rev.RevokedBefore[a.GetAccountId()] = t
		}
	}
	return rev
}

// StaticKeySource is a [KeySource] with a fixed key set, for tests, for
// development, and for deployments that distribute the JWKS as a file. It
// never goes stale and fetches nothing for unknown kids. It is safe for
// concurrent use.
type StaticKeySource struct {
	snap *KeySnapshot
}

// NewStaticKeySource validates jwks for alg (see [NewKeySnapshot]) and returns
// a source that always yields it. Options: [WithRevocation].
func NewStaticKeySource(jwks []byte, alg Algorithm, opts ...KeySourceOption) (*StaticKeySource, error) {
	c := defaultKeySourceConfig()
	for _, o := range opts {
		o.applyKeySource(&c)
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	snap, err := NewKeySnapshot(jwks, alg, c.revocation)
	if err != nil {
		return nil, err
	}
	return &StaticKeySource{snap: snap}, nil
}

// NewStaticKeySourceFromFile reads a JWKS document from a file and calls
// [NewStaticKeySource].
func NewStaticKeySourceFromFile(path string, alg Algorithm, opts ...KeySourceOption) (*StaticKeySource, error) {
	const maxJWKSFile = 1 << 20
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("interceptor: reading key set: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxJWKSFile+1))
	if err != nil {
		return nil, fmt.Errorf("interceptor: reading key set: %w", err)
	}
	if len(buf) > maxJWKSFile {
		return nil, fmt.Errorf("interceptor: key set file larger than %d bytes", maxJWKSFile)
	}
	return NewStaticKeySource(buf, alg, opts...)
}

// KeySnapshot returns the fixed snapshot.
func (s *StaticKeySource) KeySnapshot() (*KeySnapshot, error) { return s.snap, nil }
