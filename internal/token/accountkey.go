package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
)

// A service account's private key travels as an Ed25519 private JWK (RFC 8037):
// callsignd --dev writes its example accounts' keys in this format, `callsign
// keys keygen` writes new ones, and services, examples and the CLI read them.

// accountJWK is the file format of an account key.
type accountJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key: the
// SHA-256 of its required members in lexicographic order, base64url. It is the
// kid of an account key that names none.
func Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64url(pub) + `"}`))
	return b64url(sum[:])
}

// ParseAccountKey decodes an Ed25519 private JWK: kty OKP, crv Ed25519, d a
// 32-byte seed, x (when present) its public half. The kid is the JWK's kid,
// else the key's [Thumbprint]. Error texts never repeat the input.
func ParseAccountKey(data []byte) (ed25519.PrivateKey, string, error) {
	var j accountJWK
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, "", errors.New("not a JSON JWK")
	}
	if j.Kty != "OKP" || j.Crv != "Ed25519" {
		return nil, "", errors.New("not an Ed25519 JWK (kty OKP, crv Ed25519)")
	}
	if j.D == "" {
		return nil, "", errors.New("holds no private key (member d): a public JWK was given")
	}
	seed, err := base64.RawURLEncoding.Strict().DecodeString(j.D)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, "", errors.New("member d is not a 32-byte base64url Ed25519 seed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey) //nolint:forcetypeassert // always for ed25519
	if j.X != "" && b64url(pub) != j.X {
		return nil, "", errors.New("member x does not match member d")
	}
	kid := j.Kid
	if kid == "" {
		kid = Thumbprint(pub)
	}
	if !ValidKID(kid) {
		return nil, "", errors.New("member kid is not 1 to 128 characters of [A-Za-z0-9._-]")
	}
	return priv, kid, nil
}

// MarshalAccountKey encodes priv as a private JWK with kid (alg EdDSA): the
// file callsign services read their key from. Keep it secret.
func MarshalAccountKey(priv ed25519.PrivateKey, kid string) ([]byte, error) {
	pub := priv.Public().(ed25519.PublicKey) //nolint:forcetypeassert // always for ed25519
	b, err := json.MarshalIndent(accountJWK{Kty: "OKP", Crv: "Ed25519", Kid: kid, Alg: "EdDSA", X: b64url(pub), D: b64url(priv.Seed())}, "", "  ")
	return append(b, '\n'), err
}

// MarshalAccountPublicKey encodes pub as the public JWK (kty, crv, kid, x)
// that AdminService.AddPublicKey and callsignd's configuration take.
func MarshalAccountPublicKey(pub ed25519.PublicKey, kid string) string {
	b, _ := json.Marshal(accountJWK{Kty: "OKP", Crv: "Ed25519", Kid: kid, X: b64url(pub)})
	return string(b)
}

func b64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
