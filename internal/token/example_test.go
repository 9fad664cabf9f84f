package token_test

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/callsign-dev/callsign/internal/token"
)

// Sign a service token with an Ed25519 key, publish the key as a JWK Set, and
// verify the token on the receiving side.
func Example() {
	// The issuer's key (from a fixed seed, for a stable example).
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	signer := token.Signer{
		Key:     token.Key{ID: "2027-01-key", Algorithm: token.EdDSA, Public: priv.Public()},
		Private: priv,
	}
	now := time.Date(2027, 1, 15, 8, 0, 0, 0, time.UTC)
	id, err := token.NewID()
	if err != nil {
		panic(err)
	}
	raw, err := signer.Sign(token.Claims{
		Type:     token.TypeService,
		Issuer:   "callsign.example",
		Subject:  "orders",
		Audience: "billing",
		IssuedAt: now,
		Expiry:   now.Add(5 * time.Minute),
		ID:       id,
		Scopes:   []string{"billing.charge"},
	})
	if err != nil {
		panic(err)
	}

	// The verifier loads the published key set, pinned to EdDSA.
	jwks, err := token.MarshalJWKS([]token.Key{signer.Key})
	if err != nil {
		panic(err)
	}
	keys, err := token.ParseJWKS(jwks, token.EdDSA)
	if err != nil {
		panic(err)
	}
	claims, err := token.Verify(raw, token.EdDSA, keys, token.Expect{
		Issuer:   "callsign.example",
		Audience: "billing",
		Type:     token.TypeService,
		Now:      now.Add(time.Minute),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(claims.Subject, claims.Scopes, claims.Expiry.Format(time.RFC3339))

	// The same token presented to another service, and later.
	_, err = token.Verify(raw, token.EdDSA, keys, token.Expect{
		Issuer: "callsign.example", Audience: "shipping", Type: token.TypeService, Now: now,
	})
	fmt.Println(token.ReasonOf(err))
	_, err = token.Verify(raw, token.EdDSA, keys, token.Expect{
		Issuer: "callsign.example", Audience: "billing", Type: token.TypeService, Now: now.Add(time.Hour),
	})
	fmt.Println(err)
	// Output:
	// orders [billing.charge] 2027-01-15T08:05:00Z
	// REASON_AUDIENCE_MISMATCH
	// token: REASON_TOKEN_EXPIRED
}
