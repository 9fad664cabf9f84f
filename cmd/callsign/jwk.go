package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"

	"github.com/callsign-dev/callsign/internal/token"
)

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
	priv, kid, err := token.ParseAccountKey(data)
	if err != nil {
		return accountKey{}, fmt.Errorf("%w: pass the private key file written by 'callsign keys keygen' or callsignd --dev", err)
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
		kid = token.Thumbprint(priv.Public().(ed25519.PublicKey)) //nolint:forcetypeassert // always for ed25519
	}
	return accountKey{kid: kid, priv: priv}, nil
}

func (k accountKey) public() ed25519.PublicKey {
	return k.priv.Public().(ed25519.PublicKey) //nolint:forcetypeassert // always for ed25519
}

// privateJSON is the private JWK document (with d): keep it secret.
func (k accountKey) privateJSON() ([]byte, error) {
	return token.MarshalAccountKey(k.priv, k.kid)
}

// publicJSON is the public JWK (kty, crv, kid, x) to register with callsignd.
func (k accountKey) publicJSON() string {
	return token.MarshalAccountPublicKey(k.public(), k.kid)
}
