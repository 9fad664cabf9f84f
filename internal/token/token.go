package token

import (
	"crypto"
	"errors"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Limits of DESIGN.md §9.
const (
	// MaxTokenSize is the largest token accepted, in bytes.
	MaxTokenSize = 8 << 10
	// MaxKIDLength is the longest kid accepted.
	MaxKIDLength = 128
)

// Limits of the claims profile (see the package documentation).
const (
	// MaxSubjectLength bounds sub, act.sub, and an assertion's iss = sub, in bytes.
	MaxSubjectLength = 2048
	// MaxTextLength bounds tenant_id and each role, in bytes.
	MaxTextLength = 256
	// MaxScopes is the largest number of scopes in one token.
	MaxScopes = 32
	// MaxScopeLength is the longest scope.
	MaxScopeLength = 128
	// MaxRoles is the largest number of roles in one user token.
	MaxRoles = 64
	// MinIDLength and MaxIDLength bound a jti.
	MinIDLength = 16
	MaxIDLength = 128
	// MaxJWKSSize is the largest JWK Set accepted, in bytes (DESIGN.md §9).
	MaxJWKSSize = 64 << 10
	// MaxKeys is the largest number of keys in one JWK Set.
	MaxKeys = 64
	// MaxNumericDate is the largest exp, iat or nbf accepted:
	// 9999-12-31T23:59:59Z.
	MaxNumericDate = 253402300799
)

// Defaults of [Expect] and of [Parsed.AssertionClaims] when given zero.
const (
	DefaultSkew        = 30 * time.Second
	DefaultMaxLifetime = 15 * time.Minute
	// DefaultAssertionMaxAhead is how far in the future an assertion's exp may be.
	DefaultAssertionMaxAhead = 5 * time.Minute
)

// Type is the kind of a callsign token, carried in the JOSE header typ.
type Type uint8

// The token types.
const (
	TypeService Type = 1 // typ "svc+jwt"
	TypeUser    Type = 2 // typ "user+jwt"
)

// The typ header values.
const (
	typService   = "svc+jwt"
	typUser      = "user+jwt"
	typAssertion = "JWT"
)

// String returns the typ header value of t, or "" for an unknown type.
func (t Type) String() string {
	switch t {
	case TypeService:
		return typService
	case TypeUser:
		return typUser
	default:
		return ""
	}
}

// Algorithm is a JWS algorithm callsign signs with. One per issuer, pinned by
// configuration, never read from a token.
type Algorithm string

// The supported algorithms.
const (
	EdDSA Algorithm = "EdDSA" // Ed25519, the default
	ES256 Algorithm = "ES256" // ECDSA P-256 with SHA-256, raw r||s signatures
)

// Valid reports whether a is one of the supported algorithms.
func (a Algorithm) Valid() bool { return a == EdDSA || a == ES256 }

// Claims are the claims of a callsign token.
type Claims struct {
	Type      Type
	Issuer    string    // iss
	Subject   string    // sub: the service (service token) or the user (user token)
	Audience  string    // aud: exactly one
	Expiry    time.Time // exp (whole seconds)
	IssuedAt  time.Time // iat
	NotBefore time.Time // nbf; zero when absent
	ID        string    // jti
	Scopes    []string  // scope, split on single spaces (service tokens)
	TenantID  string    // tenant_id, when present
	Roles     []string  // roles (user tokens)
	Actor     string    // act.sub: the service that asserted the user (user tokens)
}

// Error is a verification failure. Its text is fixed per reason.
type Error struct {
	Reason callsignv1.Reason
}

func (e *Error) Error() string { return "token: " + e.Reason.String() }

// ReasonOf returns the reason of err when it is (or wraps) an [*Error], and
// REASON_UNSPECIFIED otherwise.
func ReasonOf(err error) callsignv1.Reason {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return callsignv1.Reason_REASON_UNSPECIFIED
}

// fail returns a new *Error: a fresh value each time, so that no caller can
// alter another's error.
func fail(r callsignv1.Reason) error { return &Error{Reason: r} }

// reason is short for the reason enum inside this package.
type reason = callsignv1.Reason

const (
	reasonMalformed   = callsignv1.Reason_REASON_TOKEN_MALFORMED
	reasonSignature   = callsignv1.Reason_REASON_SIGNATURE_INVALID
	reasonExpired     = callsignv1.Reason_REASON_TOKEN_EXPIRED
	reasonNotYetValid = callsignv1.Reason_REASON_TOKEN_NOT_YET_VALID
	reasonLifetime    = callsignv1.Reason_REASON_LIFETIME_TOO_LONG
	reasonKeyUnknown  = callsignv1.Reason_REASON_KEY_UNKNOWN
	reasonIssuer      = callsignv1.Reason_REASON_ISSUER_MISMATCH
	reasonAudience    = callsignv1.Reason_REASON_AUDIENCE_MISMATCH
	reasonType        = callsignv1.Reason_REASON_TYPE_MISMATCH
)

// Key is one validated public verification key.
type Key struct {
	ID        string
	Algorithm Algorithm
	Public    crypto.PublicKey // ed25519.PublicKey or *ecdsa.PublicKey (P-256)
}

// KeySet is an immutable, validated set of public keys, looked up by kid.
type KeySet struct {
	keys map[string]Key
}

// Expect is what a verifier requires of a token's claims.
type Expect struct {
	Issuer      string        // required iss
	Audience    string        // required aud, exactly
	Type        Type          // required typ
	Now         time.Time     // the verifier's clock
	Skew        time.Duration // allowed clock skew (default 30 s when zero)
	MaxLifetime time.Duration // largest exp-iat accepted (default 15 min when zero)
}

// Parsed is a token that passed the structural steps 1 and 2 of DESIGN.md §5:
// charset, length, three segments, strict base64url, header allow-list with the
// pinned algorithm and the expected type. Its signature is not verified yet.
type Parsed struct {
	KID  string
	Type Type // zero for a client assertion

	alg       Algorithm // the pinned algorithm the header carried
	message   []byte    // the signing input: header.payload as received
	payload   []byte    // decoded payload (not checked yet)
	signature []byte    // decoded signature (length not checked yet)
}

// Signer signs tokens with one private key. It may be written as a literal;
// [NewSigner] also validates the public key as a key set loader would.
type Signer struct {
	Key     Key           // the public half, with its kid and algorithm
	Private crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey
}

// AssertionClaims are the checked claims of a private_key_jwt client assertion
// (RFC 7523 §3): iss = sub = the account id.
type AssertionClaims struct {
	Subject  string // iss = sub: the account id
	Audience string // the issuer id of callsignd
	ID       string // jti, single use
	Expiry   time.Time
	IssuedAt time.Time
}
