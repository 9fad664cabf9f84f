package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"
)

func TestNewSignerChecksOnce(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := Key{ID: "k1", Algorithm: EdDSA, Public: pub}
	if _, err := NewSigner(key, other); err == nil {
		t.Error("NewSigner accepted a private key of another public key")
	}
	if _, err := NewSigner(Key{ID: "k1", Algorithm: EdDSA, Public: make(ed25519.PublicKey, 31)}, priv); err == nil {
		t.Error("NewSigner accepted a 31-byte public key")
	}
	s, err := NewSigner(key, priv)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1772366400, 0)
	tok, err := s.Sign(Claims{
		Type: TypeService, Issuer: "callsign", Subject: "orders", Audience: "billing",
		Expiry: now.Add(5 * time.Minute), IssuedAt: now, ID: "AAAAAAAAAAAAAAAAAAAAAA",
	})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := NewKeySet(EdDSA, []Key{key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(tok, EdDSA, ks, Expect{Issuer: "callsign", Audience: "billing", Type: TypeService, Now: now}); err != nil {
		t.Errorf("token from NewSigner does not verify: %v", err)
	}
}
