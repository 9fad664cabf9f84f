// Command server is callsign's quickstart server: the shop's PricingService,
// running as service account "pricing", with every call verified by callsign.
// Start callsignd --dev first (see README.md).
package main

import (
	"context"
	"flag"
	"log"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
)

type pricing struct {
	shopv1.UnimplementedPricingServiceServer
}

// Quote runs only for calls callsign allowed: a valid token for audience
// "pricing" with scope pricing.quote, as pricing.proto declares.
func (pricing) Quote(ctx context.Context, req *shopv1.QuoteRequest) (*shopv1.QuoteResponse, error) {
	caller, _ := interceptor.CallerFromContext(ctx)
	log.Printf("quote for %s: %d x %s", caller.ServiceID, req.GetQuantity(), req.GetSku())
	return &shopv1.QuoteResponse{UnitCents: 1999, TotalCents: 1999 * int64(req.GetQuantity())}, nil
}

func main() {
	callsignAddr := flag.String("callsign", "127.0.0.1:7443", "callsignd's gRPC address")
	listen := flag.String("listen", "127.0.0.1:8081", "address to serve on")
	flag.Parse()
	ctx := context.Background()

	// 1. Fetch callsignd's public keys and revocations; they are kept fresh.
	conn, err := grpc.NewClient(*callsignAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	keys, err := interceptor.NewLiveKeySource(ctx, callsignv1.NewAuthServiceClient(conn))
	if err != nil {
		log.Fatalf("fetch callsignd's keys: %v", err)
	}
	defer keys.Close()

	// 2. Verify every call: a token for audience "pricing" from issuer
	// "callsign", then the rule each method declares in its .proto file.
	auth, err := interceptor.NewServer(keys,
		interceptor.WithIssuer("callsign"),
		interceptor.WithAudience("pricing"))
	if err != nil {
		log.Fatal(err)
	}
	gs := grpc.NewServer(auth.GRPCServerOptions()...)
	shopv1.RegisterPricingServiceServer(gs, pricing{})

	// 3. Fail closed: refuse to start while a method has no callsign rule.
	if missing := auth.CheckServer(gs); len(missing) > 0 {
		log.Fatalf("methods without a callsign rule: %v", missing)
	}

	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("pricing serving on %s", ln.Addr())
	log.Fatal(gs.Serve(ln))
}
