package authsvc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/callsign-dev/callsign/internal/token"
)

// Limits of the request fields (proto/callsign/v1/auth.proto and admin.proto).
const (
	MaxRequestSize     = 64 << 10 // a whole request
	MaxIDLength        = 2048     // a SPIFFE id
	MaxPlainIDLength   = 63       // a plain service name
	MaxScopeLength     = 128
	MaxScopes          = 32
	MaxUserIDLength    = 256 // user and tenant ids
	MaxRoleLength      = 128
	MaxRoles           = 32
	MaxTenants         = 1024 // per user assertion rule
	MaxDescriptionSize = 256
	MaxJWKSize         = 4096
	MaxKeyIDLength     = 128
	MaxTokenIDLength   = 128
	MaxSecretSize      = 256
	MaxAccountKeys     = 16  // public keys per account
	MaxAccountSecrets  = 16  // client secrets per account
	MaxGrants          = 256 // grants per account
	MaxPageSize        = 1000
	DefaultPageSize    = 100
	maxPageTokenLength = MaxIDLength * 2
)

// validServiceID reports whether s is a plain name [a-z0-9][a-z0-9._-]{0,62} or
// a SPIFFE id spiffe://<trust domain>/<path> of at most 2048 bytes.
func validServiceID(s string) bool {
	if strings.HasPrefix(s, "spiffe://") {
		return validSPIFFEID(s)
	}
	if len(s) == 0 || len(s) > MaxPlainIDLength {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// validSPIFFEID follows the SPIFFE ID specification: a lowercase trust domain of
// [a-z0-9._-] and a path of segments of [A-Za-z0-9._-], none empty, "." or "..".
func validSPIFFEID(s string) bool {
	if len(s) > MaxIDLength {
		return false
	}
	rest := s[len("spiffe://"):]
	td, path, _ := strings.Cut(rest, "/")
	if td == "" || len(td) > 255 {
		return false
	}
	for i := range len(td) {
		if !lowerIDChar(td[i]) {
			return false
		}
	}
	if !strings.Contains(rest, "/") {
		return true // the trust domain itself
	}
	for seg := range strings.SplitSeq(path, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := range len(seg) {
			if !idChar(seg[i]) {
				return false
			}
		}
	}
	return true
}

// validScope: 1 to 128 characters of [A-Za-z0-9._:/-].
func validScope(s string) bool {
	if len(s) == 0 || len(s) > MaxScopeLength {
		return false
	}
	for i := range len(s) {
		if !scopeChar(s[i]) {
			return false
		}
	}
	return true
}

func scopeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '/' || c == '-'
}

// validScopes: at most 32 valid, distinct scopes.
func validScopes(ss []string) bool {
	if len(ss) > MaxScopes {
		return false
	}
	for i, s := range ss {
		if !validScope(s) {
			return false
		}
		if slices.Contains(ss[:i], s) {
			return false
		}
	}
	return true
}

// validRoles: at most 32 valid roles (same charset as scopes), distinct.
func validRoles(rs []string) bool {
	if len(rs) > MaxRoles {
		return false
	}
	for i, r := range rs {
		if len(r) > MaxRoleLength || !validScope(r) {
			return false
		}
		if slices.Contains(rs[:i], r) {
			return false
		}
	}
	return true
}

// validUserID: 1 to 256 printable ASCII characters without spaces (user and
// tenant ids).
func validUserID(s string) bool {
	if len(s) == 0 || len(s) > MaxUserIDLength {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// validTenantList: at most 1024 distinct tenant ids, or "*".
func validTenantList(ts []string) bool {
	if len(ts) > MaxTenants {
		return false
	}
	seen := make(map[string]struct{}, len(ts))
	for _, t := range ts {
		if !validUserID(t) {
			return false
		}
		if _, dup := seen[t]; dup {
			return false
		}
		seen[t] = struct{}{}
	}
	return true
}

// validDescription: at most 256 bytes of UTF-8 without control characters.
func validDescription(s string) bool {
	if len(s) > MaxDescriptionSize || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// validKeyID: 1 to 128 characters of [A-Za-z0-9._-].
func validKeyID(s string) bool {
	if len(s) == 0 || len(s) > MaxKeyIDLength {
		return false
	}
	for i := range len(s) {
		if !idChar(s[i]) {
			return false
		}
	}
	return true
}

// lowerIDChar: [a-z0-9._-].
func lowerIDChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// idChar: [A-Za-z0-9._-].
func idChar(c byte) bool {
	return lowerIDChar(c) || c >= 'A' && c <= 'Z'
}

// validTokenID: 1 to 128 characters of [A-Za-z0-9_-] (a jti or a secret id).
func validTokenID(s string) bool {
	if len(s) == 0 || len(s) > MaxTokenIDLength {
		return false
	}
	for i := range len(s) {
		if c := s[i]; c == '.' || !idChar(c) {
			return false
		}
	}
	return true
}

// validCompactJWS: at most 8192 bytes of [A-Za-z0-9_.-] with exactly two dots.
// The full structural check is [token.Parse]; this is the request-level limit.
func validCompactJWS(s string) bool {
	if len(s) == 0 || len(s) > token.MaxTokenSize {
		return false
	}
	dots := 0
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '.':
			dots++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return dots == 2
}

// parseAlgorithm maps the configured algorithm name.
func parseAlgorithm(s string) (token.Algorithm, error) {
	switch s {
	case string(token.EdDSA):
		return token.EdDSA, nil
	case string(token.ES256):
		return token.ES256, nil
	default:
		return "", errors.New("unsupported algorithm")
	}
}

var (
	errJWKInvalid = errors.New("jwk: must be a JSON object with kty OKP, crv Ed25519, x, at most kid, alg EdDSA and use sig; no private members")
	errKIDInvalid = errors.New("kid: 1 to 128 characters of [A-Za-z0-9._-], matching the JWK's kid")
)

// parseAccountJWK parses an account's public key: a JSON object of at most 4096
// bytes, without duplicate members, with exactly kty "OKP", crv "Ed25519" and x
// (32 bytes, canonical base64url, a point of the curve not of small order), and
// optionally kid, alg "EdDSA" and use "sig". Every other member (in particular the private "d") is refused. The kid
// is kid when set (and must equal the JWK's kid when both are), else the JWK's
// kid, else the RFC 7638 thumbprint.
func parseAccountJWK(jwk, kid string) (string, ed25519.PublicKey, error) {
	if len(jwk) == 0 || len(jwk) > MaxJWKSize {
		return "", nil, errJWKInvalid
	}
	members, err := flatJSONObject([]byte(jwk))
	if err != nil {
		return "", nil, errJWKInvalid
	}
	for name, v := range members {
		switch name {
		case "kty":
			if v != "OKP" {
				return "", nil, errJWKInvalid
			}
		case "crv":
			if v != "Ed25519" {
				return "", nil, errJWKInvalid
			}
		case "alg":
			if v != "EdDSA" {
				return "", nil, errJWKInvalid
			}
		case "use":
			if v != "sig" {
				return "", nil, errJWKInvalid
			}
		case "x", "kid":
		default:
			return "", nil, errJWKInvalid
		}
	}
	if members["kty"] != "OKP" || members["crv"] != "Ed25519" {
		return "", nil, errJWKInvalid
	}
	x := members["x"]
	pub, err := base64.RawURLEncoding.Strict().DecodeString(x)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return "", nil, errJWKInvalid
	}
	jwkKID, hasKID := members["kid"]
	switch {
	case kid != "" && hasKID && kid != jwkKID:
		return "", nil, errKIDInvalid
	case kid == "" && hasKID:
		kid = jwkKID
	case kid == "":
		kid = token.Thumbprint(pub)
	}
	if !validKeyID(kid) {
		return "", nil, errKIDInvalid
	}
	// x must be a point of the curve, and not of small order: under a key of
	// small order (the identity, for one) anyone can forge an assertion. The
	// key set rules of the verifiers check exactly that.
	if _, err := token.NewKeySet(token.EdDSA, []token.Key{{ID: kid, Algorithm: token.EdDSA, Public: ed25519.PublicKey(pub)}}); err != nil {
		return "", nil, errJWKInvalid
	}
	return kid, ed25519.PublicKey(pub), nil
}

// flatJSONObject decodes a JSON object whose members are all strings, refusing
// duplicate members, nesting and trailing data.
func flatJSONObject(data []byte) (map[string]string, error) {
	errShape := errors.New("not a flat JSON object of strings")
	if !utf8.Valid(data) {
		return nil, errShape
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	t, err := dec.Token()
	if err != nil || t != json.Delim('{') {
		return nil, errShape
	}
	out := map[string]string{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, errShape
		}
		k, ok := kt.(string)
		if !ok {
			return nil, errShape
		}
		vt, err := dec.Token()
		if err != nil {
			return nil, errShape
		}
		v, ok := vt.(string)
		if !ok {
			return nil, errShape
		}
		if _, dup := out[k]; dup {
			return nil, errShape
		}
		out[k] = v
		if len(out) > 16 {
			return nil, errShape
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, errShape
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errShape
	}
	return out, nil
}
