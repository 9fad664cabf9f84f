package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
)

// privateJWK is an Ed25519 key as a JWK (RFC 8037): the file format of a
// service account's private key (callsignd --dev writes the same format).
type privateJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
}

// accountKey is a loaded private key with the kid its assertions carry.
type accountKey struct {
	kid  string
	priv ed25519.PrivateKey
}

// maxJWKFileSize bounds what is read from a key file.
const maxJWKFileSize = 64 << 10

// loadAccountKey reads an Ed25519 private JWK from path. The kid is the JWK's
// kid, else its RFC 7638 thumbprint (what callsignd assumes when a key is added
// without one).
func loadAccountKey(path string) (accountKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return accountKey{}, fmt.Errorf("key file: %w", err)
	}
	if fi.Size() > maxJWKFileSize {
		return accountKey{}, fmt.Errorf("key file %s is larger than %d bytes: pass a private JWK file", path, maxJWKFileSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return accountKey{}, fmt.Errorf("key file: %w", err)
	}
	k, err := parsePrivateJWK(data)
	if err != nil {
		return accountKey{}, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// parsePrivateJWK decodes an Ed25519 private JWK and checks that its x matches
// its d.
func parsePrivateJWK(data []byte) (accountKey, error) {
	var j privateJWK
	if err := json.Unmarshal(data, &j); err != nil {
		return accountKey{}, errors.New("not a JSON JWK: pass the private key file written by 'callsign keys keygen' or callsignd --dev")
	}
	if j.Kty != "OKP" || j.Crv != "Ed25519" {
		return accountKey{}, errors.New("not an Ed25519 JWK (kty OKP, crv Ed25519)")
	}
	if j.D == "" {
		return accountKey{}, errors.New("holds no private key (member d): pass the private JWK, not the public one")
	}
	seed, err := base64.RawURLEncoding.Strict().DecodeString(j.D)
	if err != nil || len(seed) != ed25519.SeedSize {
		return accountKey{}, errors.New("member d is not a 32-byte base64url Ed25519 seed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub, _ := priv.Public().(ed25519.PublicKey)
	if j.X != "" && b64(pub) != j.X {
		return accountKey{}, errors.New("member x does not match member d")
	}
	kid := j.Kid
	if kid == "" {
		kid = thumbprint(pub)
	}
	return accountKey{kid: kid, priv: priv}, nil
}

// newAccountKey generates an Ed25519 key; its kid is the RFC 7638 thumbprint
// unless kid is given.
func newAccountKey(kid string) (accountKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return accountKey{}, err
	}
	if kid == "" {
		kid = thumbprint(priv.Public().(ed25519.PublicKey)) //nolint:forcetypeassert // always for ed25519
	}
	return accountKey{kid: kid, priv: priv}, nil
}

func (k accountKey) public() ed25519.PublicKey {
	return k.priv.Public().(ed25519.PublicKey) //nolint:forcetypeassert // always for ed25519
}

// privateJSON is the private JWK document (with d): keep it secret.
func (k accountKey) privateJSON() ([]byte, error) {
	b, err := json.MarshalIndent(privateJWK{Kty: "OKP", Crv: "Ed25519", Kid: k.kid, Alg: "EdDSA", X: b64(k.public()), D: b64(k.priv.Seed())}, "", "  ")
	return append(b, '\n'), err
}

// publicJSON is the public JWK (kty, crv, kid, x) to register with callsignd.
func (k accountKey) publicJSON() string {
	b, _ := json.Marshal(privateJWK{Kty: "OKP", Crv: "Ed25519", Kid: k.kid, X: b64(k.public())})
	return string(b)
}

// thumbprint is the RFC 7638 thumbprint of an Ed25519 public key.
func thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
