// Package token is callsign's strict JOSE core, shared by the verifier
// (interceptor) and the issuer (authsvc): it parses compact JWS tokens under the
// rules of DESIGN.md §5, verifies their signatures against a validated key set,
// checks their claims, and signs new tokens. Users never import it.
//
// Every function here is safe for concurrent use. Nothing in an error's text
// repeats the input: errors carry a [callsignv1.Reason] and a fixed message.
package token

import (
	"crypto"
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

// Type is the kind of a callsign token, carried in the JOSE header typ.
type Type uint8

// The token types.
const (
	TypeService Type = 1 // typ "svc+jwt"
	TypeUser    Type = 2 // typ "user+jwt"
)

// Algorithm is a JWS algorithm callsign signs with. One per issuer, pinned by
// configuration, never read from a token.
type Algorithm string

// The supported algorithms.
const (
	EdDSA Algorithm = "EdDSA" // Ed25519, the default
	ES256 Algorithm = "ES256" // ECDSA P-256 with SHA-256, raw r||s signatures
)

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
	KID          string
	Type         Type
	signingInput string // header.payload as received
	signature    []byte
	payload      []byte
}

// Parse performs steps 1 and 2 of DESIGN.md §5 on raw (the token without the
// "Bearer " prefix). alg is the pinned algorithm; typ the expected type.
func Parse(raw string, alg Algorithm, typ Type) (*Parsed, error) {
	panic("token: not implemented yet")
}

// Lookup returns the key with the given kid.
func (s *KeySet) Lookup(kid string) (Key, bool) {
	panic("token: not implemented yet")
}

// Len is the number of keys in the set.
func (s *KeySet) Len() int {
	panic("token: not implemented yet")
}

// ParseJWKS parses and validates a JWK Set (RFC 7517): public members only,
// unique non-empty kid, alg equal to the pinned one, kty/crv matching it, exact
// key sizes and points on the curve. Any invalid key rejects the whole set.
func ParseJWKS(data []byte, alg Algorithm) (*KeySet, error) {
	panic("token: not implemented yet")
}

// MarshalJWKS encodes keys as a JWK Set of public keys (use "sig", alg, kid).
func MarshalJWKS(keys []Key) ([]byte, error) {
	panic("token: not implemented yet")
}

// VerifySignature checks the signature of p with k (step 4).
func (p *Parsed) VerifySignature(k Key) error {
	panic("token: not implemented yet")
}

// Claims decodes and checks the claims of p against exp (step 5): a JSON object
// without duplicate members; iss, sub, aud, exp, iat, jti required; NumericDates
// are JSON numbers; 0 < iat ≤ now+skew, nbf ≤ now+skew, now-skew < exp,
// exp-iat ≤ max lifetime; aud exactly exp.Audience; type-specific claims.
func (p *Parsed) Claims(exp Expect) (Claims, error) {
	panic("token: not implemented yet")
}

// Verify runs steps 1 to 5 with the key found in keys by the token's kid.
func Verify(raw string, alg Algorithm, keys *KeySet, exp Expect) (Claims, error) {
	panic("token: not implemented yet")
}

// Signer signs tokens with one private key.
type Signer struct {
	Key     Key           // the public half, with its kid and algorithm
	Private crypto.Signer // ed25519.PrivateKey or *ecdsa.PrivateKey
}

// Sign encodes c as a compact JWS with the header {alg, kid, typ} and nothing else.
func (s Signer) Sign(c Claims) (string, error) {
	panic("token: not implemented yet")
}

// NewID returns a fresh token id: 128 random bits, base64url without padding
// (22 characters).
func NewID() (string, error) {
	panic("token: not implemented yet")
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

// ParseAssertion performs the structural checks of [Parse] on a client
// assertion: header exactly alg (EdDSA), kid and optionally typ "JWT".
func ParseAssertion(raw string) (*Parsed, error) {
	panic("token: not implemented yet")
}

// AssertionClaims checks the claims of a client assertion: iss = sub, aud equal
// to audience, exp after now-skew and at most now+maxAhead, iat not after
// now+skew, jti of 16 to 128 characters of [A-Za-z0-9_-].
func (p *Parsed) AssertionClaims(audience string, now time.Time, skew, maxAhead time.Duration) (AssertionClaims, error) {
	panic("token: not implemented yet")
}

// SignAssertion creates a private_key_jwt client assertion for accountID,
// addressed to audience (callsignd's issuer id), valid for ttl from now, with a
// fresh jti, signed with priv under kid.
func SignAssertion(priv crypto.Signer, kid, accountID, audience string, now time.Time, ttl time.Duration) (string, error) {
	panic("token: not implemented yet")
}
