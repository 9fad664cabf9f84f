// Command orders is the shop's OrdersService. It runs as service account
// "orders"; PlaceOrder needs scope orders.place and a user. It calls pricing
// and billing on the user's behalf: callsign's client interceptors attach
// orders' own service token for each audience and forward the user token of
// the incoming call.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
	"github.com/callsign-dev/callsign/interceptor"
)

type orders struct {
	shopv1.UnimplementedOrdersServiceServer
	pricing shopv1.PricingServiceClient
	billing shopv1.BillingServiceClient
	next    atomic.Int64
}

// PlaceOrder quotes the price, then charges the user. Both calls are made with
// the handler's context, so that they carry the user and the correlation id.
func (o *orders) PlaceOrder(ctx context.Context, req *shopv1.PlaceOrderRequest) (*shopv1.PlaceOrderResponse, error) {
	user, ok := interceptor.UserFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Internal, "no verified user") // the rule requires one
	}
	q, err := o.pricing.Quote(ctx, &shopv1.QuoteRequest{Sku: req.GetSku(), Quantity: req.GetQuantity()})
	if err != nil {
		return nil, err
	}
	id := fmt.Sprintf("ord-%d", o.next.Add(1))
	ch, err := o.billing.Charge(ctx, &shopv1.ChargeRequest{AmountCents: q.GetTotalCents(), Description: id})
	if err != nil {
		return nil, err
	}
	return &shopv1.PlaceOrderResponse{
		OrderId: id, TotalCents: q.GetTotalCents(),
		UserId: user.ID, TenantId: user.TenantID, ChargeId: ch.GetChargeId(),
	}, nil
}

func main() {
	var f kit.Flags
	f.Register(flag.CommandLine, "orders")
	pricingAddr := flag.String("pricing", "127.0.0.1:7501", "PricingService's address")
	billingAddr := flag.String("billing", "127.0.0.1:7502", "BillingService's address")
	flag.Parse()
	kit.Main("orders", func(ctx context.Context) error {
		svc, err := kit.Start(ctx, f)
		if err != nil {
			return err
		}
		defer svc.Close()
		pc, err := svc.Dial(*pricingAddr)
		if err != nil {
			return err
		}
		bc, err := svc.Dial(*billingAddr)
		if err != nil {
			return err
		}
		impl := &orders{pricing: shopv1.NewPricingServiceClient(pc), billing: shopv1.NewBillingServiceClient(bc)}
		gs, err := svc.NewServer(ctx, func(gs *grpc.Server) { shopv1.RegisterOrdersServiceServer(gs, impl) })
		if err != nil {
			return err
		}
		return svc.Serve(ctx, gs)
	})
	os.Exit(0)
}
