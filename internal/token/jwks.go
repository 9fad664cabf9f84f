package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"slices"
	"strings"
)

// ErrKeySet is wrapped by every error of [ParseJWKS], [NewKeySet] and
// [MarshalJWKS]. The texts are fixed and never repeat the input.
var ErrKeySet = errors.New("token: invalid key set")

func newKeySetError(detail string) error { return &keySetError{detail} }

// keySetError is a fixed key set error that wraps ErrKeySet.
type keySetError struct{ detail string }

func (e *keySetError) Error() string { return ErrKeySet.Error() + ": " + e.detail }
func (e *keySetError) Unwrap() error { return ErrKeySet }

// Fixed key set errors.
var (
	errSetAlgorithm = newKeySetError("unsupported algorithm")
	errSetSize      = newKeySetError("larger than 64 KiB")
	errSetSyntax    = newKeySetError("not strict JSON")
	errSetNoKeys    = newKeySetError("no keys array")
	errSetTooMany   = newKeySetError("more than 64 keys")
	errSetDupKID    = newKeySetError("duplicate kid")
	errSetPrivate   = newKeySetError("private key member present")
	errSetKID       = newKeySetError("missing or invalid kid")
	errSetAlg       = newKeySetError("alg missing or not the pinned algorithm")
	errSetUse       = newKeySetError("use is not sig")
	errSetKeyOps    = newKeySetError("key_ops other than verify")
	errSetKeyType   = newKeySetError("kty or crv does not match the algorithm")
	errSetKeyValue  = newKeySetError("invalid public key")
)

// Lookup returns the key with the given kid. The key's Public value is shared
// and must not be modified. A nil set holds no keys.
func (s *KeySet) Lookup(kid string) (Key, bool) {
	if s == nil {
		return Key{}, false
	}
	k, ok := s.keys[kid]
	return k, ok
}

// Len is the number of keys in the set.
func (s *KeySet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// Keys returns the keys of the set, sorted by kid.
func (s *KeySet) Keys() []Key {
	if s == nil {
		return nil
	}
	out := make([]Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// NewKeySet builds a key set from keys that are already in memory (the
// issuer's own), under the same rules as [ParseJWKS]: every key valid, of the
// algorithm alg, with a unique kid.
func NewKeySet(alg Algorithm, keys []Key) (*KeySet, error) {
	if !alg.Valid() {
		return nil, errSetAlgorithm
	}
	set := &KeySet{keys: make(map[string]Key, len(keys))}
	for _, k := range keys {
		if k.Algorithm != alg {
			return nil, errSetAlg
		}
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if _, dup := set.keys[k.ID]; dup {
			return nil, errSetDupKID
		}
		set.keys[k.ID] = k
	}
	return set, nil
}

// checkKey validates one key: a valid kid, a supported algorithm, and a public
// key of that algorithm: a 32-byte Ed25519 key that is a point of the curve
// and not of small order, or a P-256 point on the curve.
func checkKey(k Key) error {
	if !validKID(k.ID) {
		return errSetKID
	}
	switch k.Algorithm {
	case EdDSA:
		pub, ok := k.Public.(ed25519.PublicKey)
		if !ok {
			return errSetKeyType
		}
		if len(pub) != ed25519.PublicKeySize || !ed25519PointValid(pub) {
			return errSetKeyValue
		}
	case ES256:
		pub, ok := k.Public.(*ecdsa.PublicKey)
		if !ok || pub == nil || pub.Curve != elliptic.P256() {
			return errSetKeyType
		}
		// Bytes panics on a key without coordinates, so look at them first.
		if pub.X == nil || pub.Y == nil { //nolint:staticcheck // SA1019: the only way to see a key Bytes would panic on
			return errSetKeyValue
		}
		if _, err := pub.Bytes(); err != nil {
			return errSetKeyValue
		}
	default:
		return errSetAlg
	}
	return nil
}

// JWK members, as bits.
const (
	jwkKty = 1 << iota
	jwkCrv
	jwkX
	jwkY
	jwkKID
	jwkAlg
	jwkUse
	jwkKeyOps
)

// ParseJWKS parses and validates a JWK Set (RFC 7517): public members only,
// unique non-empty kid, alg equal to the pinned one, kty/crv matching it, exact
// key sizes and points on the curve. Any invalid key rejects the whole set.
//
// The document is at most [MaxJWKSSize] bytes of strict JSON (as for claims:
// no duplicate members at any depth, bounded depth); it is an object with a
// "keys" array of at most [MaxKeys] objects; other top-level members are
// ignored. In each key: kid (the charset of [ValidKID]) and alg (equal to alg)
// are required; for EdDSA kty "OKP", crv "Ed25519" and x of exactly 32 bytes,
// a point of the curve not of small order, and no y; for ES256 kty "EC", crv
// "P-256", and x and y of exactly 32 bytes each, a point on the curve; "use",
// when present, is "sig"; "key_ops", when present, is exactly ["verify"];
// any private member (d, p, q, dp, dq, qi, k, oth) rejects the set; other
// members are ignored. An empty "keys" array gives an empty set. The errors
// wrap [ErrKeySet].
func ParseJWKS(data []byte, alg Algorithm) (*KeySet, error) {
	if !alg.Valid() {
		return nil, errSetAlgorithm
	}
	if len(data) > MaxJWKSSize {
		return nil, errSetSize
	}
	s := scanner{b: data}
	if !s.consume('{') {
		return nil, errSetSyntax
	}
	var nameBuf [4][]byte
	seen := names(nameBuf[:0])
	var set *KeySet
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return nil, errSetSyntax
		}
		if done {
			break
		}
		if seen, ok = seen.add(name); !ok {
			return nil, errSetSyntax
		}
		if string(name) != "keys" {
			if !s.value(2) {
				return nil, errSetSyntax
			}
			continue
		}
		if !s.consume('[') {
			return nil, errSetNoKeys
		}
		set = &KeySet{keys: make(map[string]Key)}
		for first := true; ; first = false {
			done, ok := s.element(first)
			if !ok {
				return nil, errSetSyntax
			}
			if done {
				break
			}
			if len(set.keys) == MaxKeys {
				return nil, errSetTooMany
			}
			k, err := parseJWK(&s, alg)
			if err != nil {
				return nil, err
			}
			if _, dup := set.keys[k.ID]; dup {
				return nil, errSetDupKID
			}
			set.keys[k.ID] = k
		}
	}
	if !s.end() {
		return nil, errSetSyntax
	}
	if set == nil {
		return nil, errSetNoKeys
	}
	return set, nil
}

// parseJWK reads and validates one key object of a set (depth 3).
func parseJWK(s *scanner, alg Algorithm) (Key, error) {
	if !s.consume('{') {
		return Key{}, errSetSyntax
	}
	var nameBuf [8][]byte
	seen := names(nameBuf[:0])
	var kty, crv, x, y, kid, kalg, use []byte
	has := 0
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return Key{}, errSetSyntax
		}
		if done {
			break
		}
		if seen, ok = seen.add(name); !ok {
			return Key{}, errSetSyntax
		}
		var dst *[]byte
		var bit int
		switch string(name) {
		case "kty":
			dst, bit = &kty, jwkKty
		case "crv":
			dst, bit = &crv, jwkCrv
		case "x":
			dst, bit = &x, jwkX
		case "y":
			dst, bit = &y, jwkY
		case "kid":
			dst, bit = &kid, jwkKID
		case "alg":
			dst, bit = &kalg, jwkAlg
		case "use":
			dst, bit = &use, jwkUse
		case "key_ops":
			has |= jwkKeyOps
			if !s.consume('[') {
				return Key{}, errSetKeyOps
			}
			// Exactly one element, "verify" (duplicates are not allowed by
			// RFC 7517 §4.3, so one is the only possible length).
			done, ok := s.element(true)
			if !ok || done {
				return Key{}, errSetKeyOps
			}
			op, ok := s.str()
			if !ok || string(op) != "verify" {
				return Key{}, errSetKeyOps
			}
			if done, ok := s.element(false); !ok || !done {
				return Key{}, errSetKeyOps
			}
			continue
		case "d", "p", "q", "dp", "dq", "qi", "k", "oth":
			return Key{}, errSetPrivate
		default:
			if !s.value(4) {
				return Key{}, errSetSyntax
			}
			continue
		}
		v, ok := s.str()
		if !ok {
			return Key{}, errSetSyntax
		}
		*dst, has = v, has|bit
	}
	if has&jwkKID == 0 || !validKID(kid) {
		return Key{}, errSetKID
	}
	if has&jwkAlg == 0 || string(kalg) != string(alg) {
		return Key{}, errSetAlg
	}
	if has&jwkUse != 0 && string(use) != "sig" {
		return Key{}, errSetUse
	}
	k := Key{ID: string(kid), Algorithm: alg}
	switch alg {
	case EdDSA:
		if string(kty) != "OKP" || string(crv) != "Ed25519" || has&jwkY != 0 {
			return Key{}, errSetKeyType
		}
		pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
		if !decode32(pub, x) || !ed25519PointValid(pub) {
			return Key{}, errSetKeyValue
		}
		k.Public = pub
	case ES256:
		if string(kty) != "EC" || string(crv) != "P-256" {
			return Key{}, errSetKeyType
		}
		var point [65]byte
		point[0] = 4
		if !decode32(point[1:33], x) || !decode32(point[33:], y) {
			return Key{}, errSetKeyValue
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point[:])
		if err != nil {
			return Key{}, errSetKeyValue
		}
		k.Public = pub
	}
	return k, nil
}

// decode32 decodes v, strict base64url of exactly 32 bytes, into dst. (The
// charset is checked first: the base64 decoder skips CR and LF, which a JSON
// escape could have put there.)
func decode32(dst, v []byte) bool {
	if len(v) != 43 || !allIn(&idChars, v) {
		return false
	}
	n, err := b64.Decode(dst, v)
	return err == nil && n == 32
}

// MarshalJWKS encodes keys as a JWK Set of public keys (use "sig", alg, kid):
// {"keys":[{"kty","crv","x",("y"),"kid","alg","use":"sig"}]}, in the order
// given. Every key must be valid, with a unique kid, and there may be at most
// [MaxKeys] of them, so that [ParseJWKS] accepts the result. The errors wrap
// [ErrKeySet].
func MarshalJWKS(keys []Key) ([]byte, error) {
	if len(keys) > MaxKeys {
		return nil, errSetTooMany
	}
	b := make([]byte, 0, 16+len(keys)*(200+MaxKIDLength))
	b = append(b, `{"keys":[`...)
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		for _, prev := range keys[:i] {
			if prev.ID == k.ID {
				return nil, errSetDupKID
			}
		}
		if i > 0 {
			b = append(b, ',')
		}
		switch k.Algorithm {
		case EdDSA:
			pub, ok := k.Public.(ed25519.PublicKey)
			if !ok {
				return nil, errSetKeyType
			}
			b = append(b, `{"kty":"OKP","crv":"Ed25519","x":"`...)
			b = b64.AppendEncode(b, pub)
		case ES256:
			pub, ok := k.Public.(*ecdsa.PublicKey)
			if !ok {
				return nil, errSetKeyType
			}
			point, err := pub.Bytes()
			if err != nil || len(point) != 65 {
				return nil, errSetKeyValue
			}
			b = append(b, `{"kty":"EC","crv":"P-256","x":"`...)
			b = b64.AppendEncode(b, point[1:33])
			b = append(b, `","y":"`...)
			b = b64.AppendEncode(b, point[33:])
		}
		b = append(b, `","kid":"`...)
		b = append(b, k.ID...)
		b = append(b, `","alg":"`...)
		b = append(b, k.Algorithm...)
		b = append(b, `","use":"sig"}`...)
	}
	b = append(b, "]}"...)
	return b, nil
}
