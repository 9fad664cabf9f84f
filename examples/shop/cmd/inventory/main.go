// Command inventory is the shop's InventoryService. It runs as service account
// "inventory"; Watch is a server stream that needs scope inventory.watch. The
// stream ends with Unauthenticated / TOKEN_EXPIRED when the token that opened
// it expires (see examples/shop/proto/shop/v1/inventory.proto).
package main

import (
	"context"
	"flag"
	"hash/fnv"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
)

type inventory struct {
	shopv1.UnimplementedInventoryServiceServer
	every time.Duration
}

// Watch sends the stock level of an article every interval until the stream
// ends.
func (inv inventory) Watch(req *shopv1.WatchRequest, stream grpc.ServerStreamingServer[shopv1.WatchResponse]) error {
	if req.GetSku() == "" {
		return status.Error(codes.InvalidArgument, "sku required")
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(req.GetSku()))
	level := int32(h.Sum32()%200) + 50
	t := time.NewTicker(inv.every)
	defer t.Stop()
	for seq := int64(1); ; seq++ {
		if err := stream.Send(&shopv1.WatchResponse{Sku: req.GetSku(), Available: level, Sequence: seq}); err != nil {
			return err
		}
		select {
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-t.C:
		}
		if seq%3 == 0 && level > 0 {
			level--
		}
	}
}

func main() {
	var f kit.Flags
	f.Register(flag.CommandLine, "inventory")
	every := flag.Duration("interval", time.Second, "time between two stock level updates")
	flag.Parse()
	kit.Main("inventory", func(ctx context.Context) error {
		svc, err := kit.Start(ctx, f)
		if err != nil {
			return err
		}
		defer svc.Close()
		gs, err := svc.NewServer(ctx, func(gs *grpc.Server) {
			shopv1.RegisterInventoryServiceServer(gs, inventory{every: *every})
		})
		if err != nil {
			return err
		}
		return svc.Serve(ctx, gs)
	})
	os.Exit(0)
}
