package authsvc_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func ExampleParseConfig() {
	cfg, err := authsvc.ParseConfig([]byte(`
issuer: callsign
token_lifetime: 2m
accounts:
  - id: orders
    grants:
      - audience: billing
        scopes: [billing.charge]
`))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Issuer, cfg.Algorithm, cfg.TokenLifetime, cfg.MaxTokenLifetime)
	fmt.Println(cfg.Accounts[0].ID, cfg.Accounts[0].Grants[0].Audience, cfg.Accounts[0].Grants[0].Scopes)

	_, err = authsvc.ParseConfig([]byte("issuer: callsign\ncolour: blue\n"))
	fmt.Println(err != nil)
	// Output:
	// callsign EdDSA 2m0s 15m0s
	// orders billing [billing.charge]
	// true
}

// ExampleNew builds a Service on the in-memory store, gives an account a client
// secret and issues a service token, calling the AuthService and AdminService
// implementations directly (a server registers them on a grpc.Server).
func ExampleNew() {
	ctx := context.Background()
	cfg := authsvc.DefaultConfig()
	cfg.Accounts = []authsvc.AccountConfig{{
		ID:     "orders",
		Grants: []authsvc.GrantConfig{{Audience: "billing", Scopes: []string{"billing.charge"}}},
	}}
	kek := make([]byte, authsvc.KEKSize) // use LoadKEK in production
	svc, err := authsvc.New(ctx, authsvc.NewMemoryStore(), kek, cfg,
		authsvc.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	sec, err := svc.AdminServer().RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "orders"})
	if err != nil {
		log.Fatal(err)
	}
	resp, err := svc.AuthServer().IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{
			AccountId: "orders", Secret: sec.GetSecret(),
		}},
		Audience: "billing",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetTokenType(), resp.GetScopes(), strings.Count(resp.GetToken(), "."))
	fmt.Println(time.Until(resp.GetExpireTime().AsTime()).Round(time.Minute))

	v, err := svc.AuthServer().Verify(ctx, &callsignv1.VerifyRequest{Token: resp.GetToken(), Audience: "billing"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v.GetActive(), v.GetClaims().GetSubject())
	// Output:
	// TOKEN_TYPE_SERVICE [billing.charge] 2
	// 5m0s
	// true orders
}

func ExampleGenerateAccountKey() {
	priv, jwk, err := authsvc.GenerateAccountKey()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(priv), strings.HasPrefix(jwk, `{"kty":"OKP","crv":"Ed25519","kid":"`))
	// Output: 64 true
}
