// Package authsvc implements callsignd's AuthService and AdminService: service
// accounts and their credentials, token issuance, central verification,
// revocation, the signing key lifecycle and the storage behind them.
//
// A [Service] is built by [New] on a [Store] ([OpenSQLite] by default,
// [NewMemoryStore] for tests), a key-encryption key ([LoadKEK]) and a [Config]
// ([ParseConfig], [LoadConfig], [DefaultConfig]). It exposes the gRPC servers
// ([Service.AuthServer], [Service.AdminServer]), the JWKS over HTTP
// ([Service.JWKSHandler]), the published state in-process ([Service.GetKeys],
// shaped like the generated client method so that the server's own
// interceptor can use it as its key source) and the key lifecycle
// ([Service.Run], [Service.Tick], [Service.RotateNow]).
//
// The package does not authenticate the callers of Verify and of AdminService:
// the server registers them behind callsign's server interceptor, which
// requires the scopes callsign.verify and callsign.admin declared in the proto
// files. It does not set transport limits either: the server must set
// grpc.MaxRecvMsgSize([MaxRequestSize]); every handler checks the size again.
//
// # Accounts and credentials
//
// An account id is a plain name ([a-z0-9][a-z0-9._-]{0,62}) or a SPIFFE id. An
// account holds Ed25519 public keys for private_key_jwt client assertions
// (RFC 7523; several at once, so that keys rotate with overlap; each with an
// optional expiry), client secrets ("cs_" and 43 base64url characters, 256
// random bits, stored only as their SHA-256 and compared in constant time),
// grants (an audience and the scopes the account may obtain for it) and a user
// assertion rule (whether it may obtain user-context tokens, and for which
// tenants; "*" is every tenant). The same tenant list bounds tenant-scoped
// service tokens.
//
// # Issuance
//
// IssueToken checks the credential first. An assertion must be a compact JWS
// signed with EdDSA by one of the account's unexpired keys (found by kid),
// with iss = sub = the account, aud = the issuer id, exp at most
// [MaxAssertionAhead] (plus skew) ahead and a jti used once: the jti is recorded in the
// store until the assertion's exp plus twice the skew (a replica's clock may lag
// by the skew), atomically, so that of concurrent replays exactly one passes. A correctly signed assertion is spent even when
// the request is then refused for lack of a grant. Unknown accounts, wrong
// keys or secrets, expired credentials, malformed or replayed assertions and
// disabled accounts all take the same path (with a signature check or hash
// comparison against a dummy when there is nothing real to compare with) and
// get the same answer.
//
// A service token has one audience, the granted scopes or a requested subset
// (a scope not granted refuses the request), a lifetime of TokenLifetime by
// default and never above MaxTokenLifetime, a jti of 128 random bits, and a
// tenant_id only when asked for one of the account's tenants. A user-context
// token (typ user+jwt) has the issuer id as audience and names the asserting
// account in act.sub. No token expires after its signing key leaves the
// published set.
//
// # Keys
//
// Signing keys are Ed25519 (default) or ES256 and move through the states of
// DESIGN.md §4: next (published, not signing), active (signing), retired
// (published until the last token it signed has expired, plus twice the skew
// (a verifier's clock may lag ours) and a second for replicas with a stale
// view), then removed. A new next key is
// published as soon as a key becomes active, so it has been published for a
// whole RotationPeriod when it takes over, and never for less than
// PublishLead (the active key signs on until then). The very first key of an
// empty store signs at once, as no verifier can hold an older set.
// [Service.RotateNow] promotes the next key at once, even a young one, since
// an operator asked; a key never signs before it is in the published set.
// Private keys are stored encrypted with AES-256-GCM under the key-encryption
// key, the kid as additional data. The lifecycle step is idempotent and runs
// under the store's key lock, so replicas sharing a store may all run it.
//
// # Revocation
//
// A token is revoked by jti until its exp, or every token of an account issued
// before a time. Disabled accounts are published too. The records are
// dropped by the lifecycle step once the tokens they name would have expired,
// plus twice the skew. The state version of GetKeys increases with every change of
// keys, revocations or account status.
//
// # Storage
//
// [Store] is the one interface for all storage. The SQLite store uses a single
// file in WAL mode with one writer connection, read-only reader connections,
// versioned migrations (table schema_version) and a group commit for used
// assertion ids. Accounts are cached by the Service for up to a second
// (changes made through the Service take effect at once; changes by another
// replica within that second).
//
// # Codes
//
// Every error is a gRPC status with a fixed message; refusals carry a
// google.rpc.ErrorInfo with domain [ErrorDomain] and a reason from
// callsignv1.Reason without its REASON_ prefix ([ReasonString]). Nothing the
// caller sent is echoed.
//
//   - InvalidArgument, REQUEST_INVALID: a field breaks its documented limits
//     (sizes, charsets, counts), or the request is larger than
//     [MaxRequestSize]. Nothing is read or written.
//   - Unauthenticated, CREDENTIAL_INVALID: IssueToken's credential was not
//     accepted, whatever the cause.
//   - PermissionDenied: IssueToken for an audience not granted
//     (AUDIENCE_NOT_GRANTED), a scope not granted (SCOPE_NOT_GRANTED), a
//     lifetime above the maximum (LIFETIME_TOO_LONG), a user-context token by
//     an account that may not assert users (USER_ASSERTION_DENIED) or for a
//     tenant it may not act for (TENANT_NOT_ALLOWED).
//   - Unavailable, KEYS_UNAVAILABLE: no key may sign yet. Unavailable without
//     a reason: the store failed (logged).
//   - NotFound, AlreadyExists: AdminService on a missing account, key or grant,
//     or creating an existing account or key id.
//   - FailedPrecondition: AdminService would exceed an account's limit of keys
//     ([MaxAccountKeys]), secrets ([MaxAccountSecrets]) or grants
//     ([MaxGrants]), or RotateSigningKeys would publish more keys than a JWKS
//     may hold (rotations in quick succession; retry once retired keys are
//     removed).
//   - Internal: an unexpected failure (logged).
//
// Verify answers OK with active = false and the reason (TOKEN_MALFORMED,
// SIGNATURE_INVALID, TOKEN_EXPIRED, KEY_UNKNOWN, AUDIENCE_MISMATCH,
// TYPE_MISMATCH, TOKEN_REVOKED, ACCOUNT_DISABLED, ...) for a token that does
// not verify.
//
// # Logs
//
// Refusals are logged with their real cause at Info, issued tokens at Debug
// (account, audience, jti, kid, exp), admin changes at Info. Logs never
// contain a token, an assertion, a secret or an account id that was not
// verified.
package authsvc
