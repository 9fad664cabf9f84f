// Command gateway is the shop's edge: an HTTP server that "authenticates" the
// end user (in this demo the X-Demo-User and X-Demo-Tenant headers stand in
// for a real login), obtains a user-context token for them from callsignd, and
// calls OrdersService on their behalf. It runs as service account "gateway",
// which callsignd allows to assert users of its tenants.
//
//	POST /v1/orders            {"sku": "sku-42", "quantity": 2}
//	GET  /v1/inventory/watch?sku=sku-42   (newline-delimited JSON until the stream ends)
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
	"github.com/callsign-dev/callsign/interceptor"
)

type gateway struct {
	users     *interceptor.UserTokenSource
	orders    shopv1.OrdersServiceClient
	inventory shopv1.InventoryServiceClient
}

// Failure is how the gateway reports a failed call: the gRPC code and the
// callsign reason.
type Failure struct {
	Code    string `json:"code"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

func failure(err error) *Failure {
	st := status.Convert(err)
	f := &Failure{Code: st.Code().String(), Message: st.Message()}
	if r, ok := interceptor.ReasonFromError(err); ok {
		f.Reason = interceptor.ReasonName(r)
	}
	return f
}

func httpStatus(c codes.Code) int {
	switch c {
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusBadGateway
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// login stands in for the edge's real authentication: it trusts the demo
// headers. A real edge verifies a session or an OIDC token here.
func login(r *http.Request) (interceptor.EdgeUser, bool) {
	u := interceptor.EdgeUser{ID: r.Header.Get("X-Demo-User"), TenantID: r.Header.Get("X-Demo-Tenant")}
	if roles := r.Header.Get("X-Demo-Roles"); roles != "" {
		u.Roles = strings.Split(roles, ",")
	}
	return u, u.ID != "" && u.TenantID != ""
}

// callContext starts a workflow: a correlation id (returned to the browser) on
// the outgoing context.
func callContext(w http.ResponseWriter, r *http.Request) context.Context {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	cid := "wf-" + hex.EncodeToString(b)
	w.Header().Set("X-Correlation-ID", cid)
	return metadata.AppendToOutgoingContext(r.Context(), interceptor.MDCorrelationID, cid)
}

func (g *gateway) placeOrder(w http.ResponseWriter, r *http.Request) {
	user, ok := login(r)
	if !ok {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": &Failure{Code: "Unauthenticated", Message: "sign in: send X-Demo-User and X-Demo-Tenant"}})
		return
	}
	var req struct {
		Sku      string `json:"sku"`
		Quantity int32  `json:"quantity"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": &Failure{Code: "InvalidArgument", Message: "body: {\"sku\": \"...\", \"quantity\": N}"}})
		return
	}
	ctx := callContext(w, r)
	// The user token asserts the signed-in user to every service behind the
	// edge; orders forwards it to pricing and billing.
	tok, err := g.users.UserToken(ctx, user)
	if err != nil {
		writeJSON(w, httpStatus(status.Code(err)), map[string]any{"error": failure(err)})
		return
	}
	resp, err := g.orders.PlaceOrder(interceptor.WithUserToken(ctx, tok), &shopv1.PlaceOrderRequest{Sku: req.Sku, Quantity: req.Quantity})
	if err != nil {
		writeJSON(w, httpStatus(status.Code(err)), map[string]any{"error": failure(err)})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"order": map[string]any{
		"order_id": resp.GetOrderId(), "total_cents": resp.GetTotalCents(), "user_id": resp.GetUserId(),
		"tenant_id": resp.GetTenantId(), "charge_id": resp.GetChargeId(),
	}})
}

// watch relays InventoryService.Watch as newline-delimited JSON: one line per
// update, then a last line {"end": ...} saying how the stream ended.
func (g *gateway) watch(w http.ResponseWriter, r *http.Request) {
	sku := r.URL.Query().Get("sku")
	ctx := callContext(w, r)
	start := time.Now()
	stream, err := g.inventory.Watch(ctx, &shopv1.WatchRequest{Sku: sku})
	if err != nil {
		writeJSON(w, httpStatus(status.Code(err)), map[string]any{"end": failure(err)})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for {
		u, err := stream.Recv()
		if err != nil {
			end := map[string]any{"elapsed_ms": time.Since(start).Milliseconds()}
			if !errors.Is(err, io.EOF) {
				end["end"] = failure(err)
			} else {
				end["end"] = &Failure{Code: "OK", Message: "stream closed by the server"}
			}
			_ = enc.Encode(end)
			return
		}
		_ = enc.Encode(map[string]any{"sku": u.GetSku(), "available": u.GetAvailable(), "sequence": u.GetSequence()})
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func main() {
	var f kit.Flags
	f.Register(flag.CommandLine, "gateway")
	ordersAddr := flag.String("orders", "127.0.0.1:7503", "OrdersService's address")
	inventoryAddr := flag.String("inventory", "127.0.0.1:7504", "InventoryService's address")
	flag.Parse()
	kit.Main("gateway", func(ctx context.Context) error {
		svc, err := kit.Start(ctx, f)
		if err != nil {
			return err
		}
		defer svc.Close()
		users, err := svc.UserTokens()
		if err != nil {
			return err
		}
		oc, err := svc.Dial(*ordersAddr)
		if err != nil {
			return err
		}
		ic, err := svc.Dial(*inventoryAddr)
		if err != nil {
			return err
		}
		g := &gateway{users: users, orders: shopv1.NewOrdersServiceClient(oc), inventory: shopv1.NewInventoryServiceClient(ic)}
		mux := http.NewServeMux()
		mux.HandleFunc("POST /v1/orders", g.placeOrder)
		mux.HandleFunc("GET /v1/inventory/watch", g.watch)
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		return svc.Run(ctx, hs.Serve, func() { _ = hs.Shutdown(context.Background()) }, func() { _ = hs.Close() })
	})
	os.Exit(0)
}
