package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"math/big"
)

// signatureSize is the size of both supported signatures: an Ed25519
// signature, or an ES256 signature as raw r||s (RFC 7518 §3.4).
const signatureSize = 64

// p256Order is the order n of the P-256 group.
var p256Order = elliptic.P256().Params().N

// VerifySignature checks the signature of p with k (step 4), over the compact
// signing input exactly as received. k.Algorithm must be the algorithm p was
// parsed with; an Ed25519 key must be exactly 32 bytes; an ES256 signature is
// exactly 64 bytes of r||s with 0 < r, s < n (DER and other lengths are
// refused). Every failure, including a key of the wrong kind, is
// REASON_SIGNATURE_INVALID.
func (p *Parsed) VerifySignature(k Key) error {
	if p == nil || k.Algorithm != p.alg || len(p.signature) != signatureSize {
		return fail(reasonSignature)
	}
	switch p.alg {
	case EdDSA:
		pub, ok := k.Public.(ed25519.PublicKey)
		if ok && len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, p.message, p.signature) {
			return nil
		}
	case ES256:
		pub, ok := k.Public.(*ecdsa.PublicKey)
		if !ok || pub == nil || pub.Curve != elliptic.P256() ||
			pub.X == nil || pub.Y == nil { //nolint:staticcheck // SA1019: a key without coordinates must not reach ecdsa.Verify
			break
		}
		r := new(big.Int).SetBytes(p.signature[:32])
		s := new(big.Int).SetBytes(p.signature[32:])
		if r.Sign() == 0 || s.Sign() == 0 || r.Cmp(p256Order) >= 0 || s.Cmp(p256Order) >= 0 {
			break
		}
		digest := sha256.Sum256(p.message)
		if ecdsa.Verify(pub, digest[:], r, s) {
			return nil
		}
	}
	return fail(reasonSignature)
}

// Verify runs steps 1 to 5 of DESIGN.md §5 with the key found in keys by the
// token's kid: [Parse] with exp.Type, then the key (REASON_KEY_UNKNOWN when the
// kid is not in keys or keys is nil), then [Parsed.VerifySignature], then
// [Parsed.Claims]. A caller that refreshes its key set on an unknown kid calls
// those steps itself.
func Verify(raw string, alg Algorithm, keys *KeySet, exp Expect) (Claims, error) {
	p, err := Parse(raw, alg, exp.Type)
	if err != nil {
		return Claims{}, err
	}
	k, ok := keys.Lookup(p.KID)
	if !ok {
		return Claims{}, fail(reasonKeyUnknown)
	}
	if err := p.VerifySignature(k); err != nil {
		return Claims{}, err
	}
	return p.Claims(exp)
}
