// Command pricing is the shop's PricingService. It runs as service account
// "pricing"; Quote needs a caller token with scope pricing.quote (see
// examples/shop/proto/shop/v1/pricing.proto).
package main

import (
	"context"
	"flag"
	"hash/fnv"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
)

type pricing struct {
	shopv1.UnimplementedPricingServiceServer
}

// Quote prices an article. The interceptor has already checked the caller's
// token and scope; a handler only sees allowed calls.
func (pricing) Quote(_ context.Context, req *shopv1.QuoteRequest) (*shopv1.QuoteResponse, error) {
	if req.GetSku() == "" || req.GetQuantity() < 1 || req.GetQuantity() > 1000 {
		return nil, status.Error(codes.InvalidArgument, "sku required, quantity 1 to 1000")
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(req.GetSku()))
	unit := int64(h.Sum32()%9000) + 500 // 5.00 to 94.99
	return &shopv1.QuoteResponse{UnitCents: unit, TotalCents: unit * int64(req.GetQuantity())}, nil
}

func main() {
	var f kit.Flags
	f.Register(flag.CommandLine, "pricing")
	flag.Parse()
	kit.Main("pricing", func(ctx context.Context) error {
		svc, err := kit.Start(ctx, f)
		if err != nil {
			return err
		}
		defer svc.Close()
		gs, err := svc.NewServer(ctx, func(gs *grpc.Server) { shopv1.RegisterPricingServiceServer(gs, pricing{}) })
		if err != nil {
			return err
		}
		return svc.Serve(ctx, gs)
	})
	os.Exit(0)
}
