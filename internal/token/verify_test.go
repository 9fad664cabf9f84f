package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/asn1"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

// edGroupOrder is L, the order of the Ed25519 base point.
var edGroupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// resign replaces the signature of tok.
func resign(tok string, sig []byte) string {
	return tok[:strings.LastIndexByte(tok, '.')+1] + b64Plain.EncodeToString(sig)
}

func sigOf(t *testing.T, tok string) []byte {
	t.Helper()
	sig, err := b64Plain.DecodeString(tok[strings.LastIndexByte(tok, '.')+1:])
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestVerifySignatureEdDSA(t *testing.T) {
	good := signToken(t, edKey, serviceClaims())
	sig := sigOf(t, good)

	// S + L: the same signature with a non-canonical scalar (malleability).
	sPlusL := make([]byte, 64)
	copy(sPlusL, sig[:32])
	s := new(big.Int).SetBytes(reverse(sig[32:]))
	s.Add(s, edGroupOrder)
	copy(sPlusL[32:], reverse(s.FillBytes(make([]byte, 32))))

	// The payload changed by one claim, signature kept.
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + enc(servicePayload().set("sub", `"admin"`).String()) + "." + parts[2]

	runAttacks(t, []attack{
		{"valid", good, rOK},
		{"tampered payload", tampered, rSignature},
		{"header re-encoded, signature kept", enc(`{"typ":"svc+jwt","kid":"ed-1","alg":"EdDSA"}`) + "." + parts[1] + "." + parts[2], rSignature},
		{"signed by another key under the same kid", signToken(t, edOther, serviceClaims()), rSignature},
		{"zero signature", resign(good, make([]byte, 64)), rSignature},
		{"signature truncated to 63 bytes", resign(good, sig[:63]), rSignature},
		{"signature extended to 65 bytes", resign(good, append(append([]byte(nil), sig...), 0)), rSignature},
		{"signature doubled", resign(good, append(append([]byte(nil), sig...), sig...)), rSignature},
		{"signature of one byte", resign(good, sig[:1]), rSignature},
		{"non-canonical S (S+L)", resign(good, sPlusL), rSignature},
		{"R and S swapped", resign(good, append(append([]byte(nil), sig[32:]...), sig[:32]...)), rSignature},
	})
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i := range b {
		out[len(b)-1-i] = b[i]
	}
	return out
}

func TestVerifySignatureES256(t *testing.T) {
	keys := testKeySet(t, ES256)
	good := signToken(t, ecKey, serviceClaims())
	sig := sigOf(t, good)
	n := elliptic.P256().Params().N
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	raw := func(r, s *big.Int) []byte {
		out := make([]byte, 64)
		r.FillBytes(out[:32])
		s.FillBytes(out[32:])
		return out
	}
	der, err := asn1.Marshal(struct{ R, S *big.Int }{r, s})
	if err != nil {
		t.Fatal(err)
	}
	ones := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	zero := new(big.Int)
	cases := []attack{
		{"valid", good, rOK},
		// ECDSA signatures are malleable: (r, n-s) verifies too. The profile
		// accepts it, as ECDSA does; nothing in callsign keys on the signature
		// bytes (revocation and caches key on jti and the whole token).
		{"high s (n-s) is a valid ECDSA signature", resign(good, raw(r, new(big.Int).Sub(n, s))), rOK},
		{"DER signature", resign(good, der), rSignature},
		{"r zero", resign(good, raw(zero, s)), rSignature},
		{"s zero", resign(good, raw(r, zero)), rSignature},
		{"both zero", resign(good, make([]byte, 64)), rSignature},
		{"r = n", resign(good, raw(n, s)), rSignature},
		{"s = n", resign(good, raw(r, n)), rSignature},
		{"r + n (fits 256 bits or wraps)", resign(good, raw(new(big.Int).Mod(new(big.Int).Add(r, n), new(big.Int).Lsh(big.NewInt(1), 256)), s)), rSignature},
		{"r = s = 2^256-1", resign(good, raw(ones, ones)), rSignature},
		{"r and s swapped", resign(good, raw(s, r)), rSignature},
		{"63 bytes", resign(good, sig[:63]), rSignature},
		{"66 bytes (P-521 style padding)", resign(good, append([]byte{0}, append(append([]byte{0}, sig[:32]...), sig[32:]...)...)), rSignature},
		{"signed by another key", resign(good, signRaw(newECSigner("ec-1", 9), good[:strings.LastIndexByte(good, '.')])), rSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.raw, ES256, keys, serviceExpect())
			wantReason(t, err, tc.want, tc.raw)
		})
	}
}

// TestVerifySignatureKeys: VerifySignature never trusts a Key it is handed;
// a wrong kind of key is a signature failure, never a panic.
func TestVerifySignatureKeys(t *testing.T) {
	edTok := signToken(t, edKey, serviceClaims())
	ecTok := signToken(t, ecKey, serviceClaims())
	edPub := edKey.Key.Public.(ed25519.PublicKey)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tok  string
		alg  Algorithm
		key  Key
	}{
		{"ES256 key for an EdDSA token", edTok, EdDSA, ecKey.Key},
		{"EdDSA key labelled ES256", edTok, EdDSA, Key{ID: "ed-1", Algorithm: ES256, Public: edPub}},
		{"EdDSA key for an ES256 token", ecTok, ES256, edKey.Key},
		{"ES256 key labelled EdDSA", ecTok, ES256, Key{ID: "ec-1", Algorithm: EdDSA, Public: ecKey.Key.Public}},
		{"nil public key", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA}},
		{"Ed25519 key of 31 bytes", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA, Public: edPub[:31]}},
		{"Ed25519 key of 33 bytes", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA, Public: append(append(ed25519.PublicKey(nil), edPub...), 0)}},
		{"Ed25519 private key as public", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA, Public: ed25519.PublicKey(edKey.Private.(ed25519.PrivateKey))}},
		{"Ed25519 key as []byte", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA, Public: []byte(edPub)}},
		{"Ed25519 key by pointer", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA, Public: &edPub}},
		{"private key value", edTok, EdDSA, Key{ID: "ed-1", Algorithm: EdDSA, Public: edKey.Private}},
		{"P-384 key", ecTok, ES256, Key{ID: "ec-1", Algorithm: ES256, Public: &p384.PublicKey}},
		{"nil *ecdsa.PublicKey", ecTok, ES256, Key{ID: "ec-1", Algorithm: ES256, Public: (*ecdsa.PublicKey)(nil)}},
		{"empty ecdsa.PublicKey", ecTok, ES256, Key{ID: "ec-1", Algorithm: ES256, Public: &ecdsa.PublicKey{}}},
		{"P-256 key without coordinates", ecTok, ES256, Key{ID: "ec-1", Algorithm: ES256, Public: &ecdsa.PublicKey{Curve: elliptic.P256()}}},
		{"ecdsa.PublicKey by value", ecTok, ES256, Key{ID: "ec-1", Algorithm: ES256, Public: *ecKey.Key.Public.(*ecdsa.PublicKey)}},
		{"unsupported algorithm on both", edTok, EdDSA, Key{ID: "ed-1", Algorithm: "none", Public: edPub}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse(tc.tok, tc.alg, TypeService)
			if err != nil {
				t.Fatal(err)
			}
			wantReason(t, p.VerifySignature(tc.key), rSignature, tc.tok)
		})
	}

	var nilParsed *Parsed
	wantReason(t, nilParsed.VerifySignature(edKey.Key), rSignature, "")
	_, err = nilParsed.Claims(serviceExpect())
	wantReason(t, err, rMalformed, "")
	var zero Parsed
	wantReason(t, zero.VerifySignature(edKey.Key), rSignature, "")
}

func TestVerifyKeyLookup(t *testing.T) {
	tok := signToken(t, edKey, serviceClaims())
	_, err := Verify(tok, EdDSA, nil, serviceExpect())
	wantReason(t, err, rKeyUnknown, tok)
	_, err = Verify(tok, EdDSA, &KeySet{}, serviceExpect())
	wantReason(t, err, rKeyUnknown, tok)
	other, err := NewKeySet(EdDSA, []Key{newEdSigner("ed-2", 1).Key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Verify(tok, EdDSA, other, serviceExpect())
	wantReason(t, err, rKeyUnknown, tok)
	// Structural failures come before the key: a malformed token with an
	// unknown kid is malformed.
	bad := forge(edKey, `{"alg":"none","kid":"nope","typ":"svc+jwt"}`, "{}")
	_, err = Verify(bad, EdDSA, other, serviceExpect())
	wantReason(t, err, rMalformed, bad)
	// The signature comes before the claims: an expired token signed by
	// another key is a signature failure.
	c := serviceClaims()
	c.IssuedAt, c.Expiry = testNow.Add(-10*time.Minute), testNow.Add(-5*time.Minute)
	expired := signToken(t, edOther, c)
	_, err = Verify(expired, EdDSA, testKeySet(t, EdDSA), serviceExpect())
	wantReason(t, err, rSignature, expired)
}

func TestReasonOf(t *testing.T) {
	_, err := Parse("x", EdDSA, TypeService)
	if got := ReasonOf(err); got != rMalformed {
		t.Fatalf("ReasonOf = %v", got)
	}
	if got := ReasonOf(nil); got != rOK {
		t.Fatalf("ReasonOf(nil) = %v", got)
	}
	if got := ReasonOf(ErrKeySet); got != rOK {
		t.Fatalf("ReasonOf(other) = %v", got)
	}
	// Each error is a fresh value: changing one changes no other.
	_, err2 := Parse("x", EdDSA, TypeService)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal("not an *Error")
	}
	e.Reason = rExpired
	if ReasonOf(err2) != rMalformed {
		t.Fatal("errors share state")
	}
}
