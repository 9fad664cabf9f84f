package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
)

func TestAccountKeyRoundTrip(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := priv.Public().(ed25519.PublicKey)
	doc, err := MarshalAccountKey(priv, "orders-1")
	if err != nil {
		t.Fatal(err)
	}
	got, kid, err := ParseAccountKey(doc)
	if err != nil || kid != "orders-1" || !got.Equal(priv) {
		t.Fatalf("round trip: kid %q, equal %v, %v", kid, got.Equal(priv), err)
	}
	// Without a kid, the thumbprint names the key.
	noKid, err := MarshalAccountKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, kid, err := ParseAccountKey(noKid); err != nil || kid != Thumbprint(pub) {
		t.Fatalf("kid %q, want the thumbprint, %v", kid, err)
	}
	// The public JWK loads as a key set member would.
	if !strings.Contains(MarshalAccountPublicKey(pub, "orders-1"), `"kid":"orders-1"`) {
		t.Fatal("public JWK lost its kid")
	}
}

// TestThumbprintRFC8037 checks the thumbprint against RFC 8037 Appendix A.3.
func TestThumbprintRFC8037(t *testing.T) {
	pub := mustB64(t, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := Thumbprint(pub); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint %s", got)
	}
}

func TestParseAccountKeyRefuses(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	good := b64url(priv.Seed())
	x := b64url(priv.Public().(ed25519.PublicKey))
	otherX := b64url(other.Public().(ed25519.PublicKey))
	for name, doc := range map[string]string{
		"not json":     `{"kty":`,
		"rsa":          `{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}`,
		"x25519":       `{"kty":"OKP","crv":"X25519","x":"` + x + `","d":"` + good + `"}`,
		"public only":  `{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`,
		"short seed":   `{"kty":"OKP","crv":"Ed25519","d":"AAAA"}`,
		"padded seed":  `{"kty":"OKP","crv":"Ed25519","d":"` + good + `="}`,
		"x mismatch":   `{"kty":"OKP","crv":"Ed25519","x":"` + otherX + `","d":"` + good + `"}`,
		"kid charset":  `{"kty":"OKP","crv":"Ed25519","kid":"../etc","d":"` + good + `"}`,
		"kid too long": `{"kty":"OKP","crv":"Ed25519","kid":"` + strings.Repeat("k", 129) + `","d":"` + good + `"}`,
	} {
		if _, _, err := ParseAccountKey([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), good) {
			t.Errorf("%s: the error repeats the seed", name)
		}
	}
}
