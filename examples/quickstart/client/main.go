// Command client is callsign's quickstart client: it calls the quickstart
// server's PricingService.Quote as service account "orders", with a token
// from callsignd attached to the call. Start callsignd --dev and the server
// first (see README.md).
package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
)

func main() {
	callsignAddr := flag.String("callsign", "127.0.0.1:7443", "callsignd's gRPC address")
	target := flag.String("pricing", "127.0.0.1:8081", "the quickstart server's address")
	account := flag.String("account", "orders", "the service account to call as")
	keyFile := flag.String("key", ".callsign-dev/credentials/orders.jwk", "the account's private key (JWK)")
	flag.Parse()
	ctx := context.Background()

	// The account's Ed25519 private key; callsignd holds only the public half.
	data, err := os.ReadFile(*keyFile)
	if err != nil {
		log.Fatal(err)
	}
	jk, err := jwk.ParseKey(data)
	if err != nil {
		log.Fatal(err)
	}
	var key ed25519.PrivateKey
	if err := jk.Raw(&key); err != nil {
		log.Fatal(err)
	}

	// 1. A token source: proves the account to callsignd (private_key_jwt) and
	// keeps one short-lived token per audience, renewed in the background.
	conn, err := grpc.NewClient(*callsignAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	tokens, err := interceptor.NewTokenSource(callsignv1.NewAuthServiceClient(conn),
		interceptor.PrivateKeyJWT(*account, key, jk.KeyID(), "callsign"))
	if err != nil {
		log.Fatal(err)
	}
	defer tokens.Close()

	// 2. The client interceptors attach a token for the target's audience,
	// read from the callsign.v1.service option of pricing.proto.
	pc, err := grpc.NewClient(*target,
		grpc.WithTransportCredentials(insecure.NewCredentials()), // loopback only; use TLS or a mesh
		grpc.WithUnaryInterceptor(interceptor.UnaryClientInterceptor(tokens)),
		grpc.WithStreamInterceptor(interceptor.StreamClientInterceptor(tokens)))
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()

	resp, err := shopv1.NewPricingServiceClient(pc).Quote(ctx, &shopv1.QuoteRequest{Sku: "sku-42", Quantity: 3})
	if err != nil {
		reason, _ := interceptor.ReasonFromError(err)
		log.Fatalf("Quote: %v (reason %s)", err, interceptor.ReasonName(reason))
	}
	fmt.Printf("3 x sku-42 cost %d cents\n", resp.GetTotalCents())
}
