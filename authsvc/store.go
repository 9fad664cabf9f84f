package authsvc

import (
	"context"
	"errors"
	"time"
)

// Store errors. Implementations return them (possibly wrapped) so that callers
// tell the cases apart with [errors.Is].
var (
	// ErrNotFound: the account does not exist.
	ErrNotFound = errors.New("authsvc: not found")
	// ErrAlreadyExists: an account with that id exists.
	ErrAlreadyExists = errors.New("authsvc: already exists")
)

// Store is everything callsignd keeps. One interface for all storage: the
// embedded SQLite store ([OpenSQLite]), the in-memory store for tests
// ([NewMemoryStore]), and later a PostgreSQL store for several replicas on one
// database. Nothing in it is specific to one database.
//
// Implementations are safe for concurrent use, by several goroutines and (for a
// shared database) several processes. Every method is atomic: it either makes
// all of its change or none. Values passed in and returned are copies; callers
// may keep and modify them.
//
// The version ([State.Version]) increases in the same transaction as every
// change of signing keys, revocations or account status (enabled/disabled).
type Store interface {
	// CreateAccount stores a new account; ErrAlreadyExists when the id is taken.
	CreateAccount(ctx context.Context, a *Account) error
	// GetAccount returns the account; ErrNotFound when there is none.
	GetAccount(ctx context.Context, id string) (*Account, error)
	// ListAccounts returns at most limit accounts with ids greater than after,
	// ordered by id.
	ListAccounts(ctx context.Context, after string, limit int) ([]*Account, error)
	// UpdateAccount reads the account, calls fn on it and stores the result, in
	// one transaction that excludes concurrent updates of the same account. An
	// error from fn aborts the update and is returned as is; ErrNotFound when the
	// account does not exist. fn may be called more than once (on retry) and must
	// not change the id.
	UpdateAccount(ctx context.Context, id string, fn func(a *Account) error) (*Account, error)

	// UseAssertionID records the jti of a client assertion of account until
	// keepUntil and reports whether it was new. Of concurrent calls with the same
	// account and jti, exactly one sees true.
	UseAssertionID(ctx context.Context, account, jti string, keepUntil time.Time) (bool, error)

	// SigningKeys returns every stored signing key (any state).
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	// UpdateSigningKeys runs fn on the stored signing keys under an exclusive
	// lock shared by every process using the store, and replaces the stored set
	// with the one fn returns (keys matched by id: added, changed, deleted). The
	// version increases when the set changed. An error from fn aborts.
	UpdateSigningKeys(ctx context.Context, fn func(keys []SigningKey) ([]SigningKey, error)) error

	// RevokeToken records a revoked token id until r.DropAt. Revoking again keeps
	// the later DropAt.
	RevokeToken(ctx context.Context, r RevokedToken) error
	// RevokeAccount records that the account's tokens issued before
	// r.IssuedBefore are revoked, until r.DropAt. An existing record keeps the
	// later of both times.
	RevokeAccount(ctx context.Context, r RevokedAccount) error
	// TokenRevoked reports whether the token with id jti, or every token of
	// account issued before its IssuedBefore (iat strictly earlier), is revoked.
	TokenRevoked(ctx context.Context, jti, account string, iat time.Time) (bool, error)

	// State returns, from one consistent read, what GetKeys publishes: signing
	// keys, revocations, disabled accounts and the version.
	State(ctx context.Context) (*State, error)

	// Prune drops revocation records and used assertion ids whose DropAt (or
	// keepUntil) is not after now. The version increases when a revocation
	// record was dropped.
	Prune(ctx context.Context, now time.Time) error

	// Close releases the store.
	Close() error
}

// Account is a service account as stored.
type Account struct {
	ID            string
	Description   string
	Disabled      bool
	DisabledAt    time.Time // zero while active
	CreatedAt     time.Time
	PublicKeys    []AccountKey
	Secrets       []Secret
	Grants        []Grant // sorted by audience
	UserAssertion UserAssertion
}

// AccountKey is an Ed25519 public key for private_key_jwt assertions.
type AccountKey struct {
	ID        string // kid
	JWK       string // the JWK as given (public members only)
	Public    []byte // the 32-byte Ed25519 public key
	CreatedAt time.Time
	ExpiresAt time.Time // zero: none
}

// Secret is a client secret, stored only as its SHA-256 hash.
type Secret struct {
	ID        string
	Hash      []byte // SHA-256 of the secret
	CreatedAt time.Time
	ExpiresAt time.Time // zero: none
}

// Grant lets the account obtain tokens for Audience with Scopes (sorted).
type Grant struct {
	Audience string
	Scopes   []string
}

// UserAssertion says whether the account may assert users, and for which
// tenants ("*" for all).
type UserAssertion struct {
	Allowed bool
	Tenants []string
}

// KeyState is the lifecycle state of a signing key (DESIGN.md §4).
type KeyState string

// The key states. A removed key is deleted from the store.
const (
	KeyNext    KeyState = "next"    // published, not signing
	KeyActive  KeyState = "active"  // signing
	KeyRetired KeyState = "retired" // published until RemoveAt
)

// SigningKey is one of callsignd's signing keys. The private key is stored only
// encrypted (AES-256-GCM under the key-encryption key, the kid as additional
// data).
type SigningKey struct {
	ID               string
	Algorithm        string // "EdDSA" or "ES256"
	State            KeyState
	Public           []byte // PKIX DER
	EncryptedPrivate []byte // nonce || AES-GCM(PKCS #8 DER)
	CreatedAt        time.Time
	ActivateAt       time.Time // when it signs (planned while next)
	RetireAt         time.Time // when it stops signing (planned while next or active)
	RemoveAt         time.Time // when it leaves the published set
}

// RevokedToken revokes one token id until DropAt.
type RevokedToken struct {
	ID        string
	ExpiresAt time.Time // the token's exp
	DropAt    time.Time // ExpiresAt plus twice the skew
}

// RevokedAccount revokes an account's tokens issued before IssuedBefore.
type RevokedAccount struct {
	Account      string
	IssuedBefore time.Time
	DropAt       time.Time // when the last such token has expired, plus twice the skew
}

// DisabledAccount names a disabled account.
type DisabledAccount struct {
	Account    string
	DisabledAt time.Time
}

// State is the published state: keys, revocations, disabled accounts, version.
type State struct {
	Version          uint64
	Keys             []SigningKey
	RevokedTokens    []RevokedToken
	RevokedAccounts  []RevokedAccount
	DisabledAccounts []DisabledAccount
}
