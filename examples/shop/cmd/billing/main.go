// Command billing is the shop's BillingService. It runs as service account
// "billing"; Charge may be called only by "orders", with scope billing.charge,
// on behalf of a user of a tenant (see
// examples/shop/proto/shop/v1/billing.proto).
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

type billing struct {
	shopv1.UnimplementedBillingServiceServer
	next atomic.Int64
}

// Charge charges the verified user in the verified tenant: who pays is never
// taken from the request.
func (b *billing) Charge(ctx context.Context, req *shopv1.ChargeRequest) (*shopv1.ChargeResponse, error) {
	user, ok := interceptor.UserFromContext(ctx)
	tenant, tok := interceptor.TenantFromContext(ctx)
	if !ok || !tok {
		// The rule requires both; the interceptor has refused the call otherwise.
		return nil, status.Error(codes.Internal, "no verified user")
	}
	if req.GetAmountCents() < 1 {
		return nil, status.Error(codes.InvalidArgument, "amount_cents must be positive")
	}
	id := fmt.Sprintf("ch-%d", b.next.Add(1))
	return &shopv1.ChargeResponse{ChargeId: id, UserId: user.ID, TenantId: tenant}, nil
}

func main() {
	var f kit.Flags
	f.Register(flag.CommandLine, "billing")
	flag.Parse()
	kit.Main("billing", func(ctx context.Context) error {
		svc, err := kit.Start(ctx, f)
		if err != nil {
			return err
		}
		defer svc.Close()
		gs, err := svc.NewServer(ctx, func(gs *grpc.Server) { shopv1.RegisterBillingServiceServer(gs, &billing{}) })
		if err != nil {
			return err
		}
		return svc.Serve(ctx, gs)
	})
	os.Exit(0)
}
