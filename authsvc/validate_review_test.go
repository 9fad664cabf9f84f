package authsvc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// identityPoint is the encoding of the neutral element of edwards25519: a
// public key of small order, under which anyone can forge a signature.
var identityPoint = func() []byte {
	b := make([]byte, ed25519.PublicKeySize)
	b[0] = 1
	return b
}()

// forgingSigner "signs" under the identity public key without any secret:
// R = identity, S = 0 satisfies [S]B = R + [k]A for every message.
type forgingSigner struct{}

func (forgingSigner) Public() crypto.PublicKey { return ed25519.PublicKey(identityPoint) }

func (forgingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	sig := make([]byte, ed25519.SignatureSize)
	sig[0] = 1
	return sig, nil
}

func TestAccountKeyOfSmallOrderRefused(t *testing.T) {
	x := base64.RawURLEncoding.EncodeToString(identityPoint)
	jwk := `{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`
	if _, _, err := parseAccountJWK(jwk, "weak-1"); err == nil {
		t.Error("parseAccountJWK accepted a public key of small order")
	}
	// A point that is not on the curve is refused too.
	bad := make([]byte, 32)
	bad[0] = 2
	if _, _, err := parseAccountJWK(`{"kty":"OKP","crv":"Ed25519","x":"`+base64.RawURLEncoding.EncodeToString(bad)+`"}`, "bad-1"); err == nil {
		t.Error("parseAccountJWK accepted a point off the curve")
	}

	e := newEnv(t)
	ctx := context.Background()
	_, err := e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "orders", Jwk: jwk, KeyId: "weak-1"})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("AddPublicKey of a small-order key: %v, want InvalidArgument", err)
	}

	// Whatever the admin API said, a forged assertion must not get a token.
	a, err := token.SignAssertion(forgingSigner{}, "weak-1", "orders", e.cfg.Issuer, e.clock.Now(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.IssueToken(ctx, issueReq(a, "billing")); err == nil {
		t.Fatal("a token was issued on an assertion forged for a small-order key")
	}
}
