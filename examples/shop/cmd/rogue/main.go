// Command rogue is a service that tries what it must not. It runs as service
// account "rogue", which callsignd knows, so its tokens are genuine; what it
// asks for is not allowed. Each attack makes one call and prints one JSON line
// with the outcome (the gRPC code and callsign's reason); the demo checks it.
//
//	rogue no-scope     call PricingService.Quote with a token that lacks pricing.quote
//	rogue not-caller   call BillingService.Charge, which only orders may call
//	rogue no-user      call OrdersService.PlaceOrder without a user token
//	rogue tamper       add pricing.quote to its own token's claims and call Quote
//	rogue forge        sign a token for "orders" with its own key and call Quote
//	rogue replay       call Quote with a token read from --token-file (a stolen one)
package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	shopv1 "github.com/callsign-dev/callsign/examples/shop/gen/shop/v1"
	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
	"github.com/callsign-dev/callsign/interceptor"
)

// Outcome is what rogue prints for an attack.
type Outcome struct {
	Attack  string `json:"attack"`
	Method  string `json:"method"`
	Code    string `json:"code"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

func main() {
	var f kit.Flags
	f.Register(flag.CommandLine, "rogue")
	pricingAddr := flag.String("pricing", "127.0.0.1:7501", "PricingService's address")
	billingAddr := flag.String("billing", "127.0.0.1:7502", "BillingService's address")
	ordersAddr := flag.String("orders", "127.0.0.1:7503", "OrdersService's address")
	tokenFile := flag.String("token-file", "", "replay: the token to send")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: rogue [flags] no-scope|not-caller|no-user|tamper|forge|replay")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	attack := flag.Arg(0)
	kit.Main("rogue", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		svc, err := kit.Start(ctx, f)
		if err != nil {
			return err
		}
		defer svc.Close()
		out := Outcome{Attack: attack}
		var callErr error
		switch attack {
		case "no-scope":
			conn, err := svc.Dial(*pricingAddr)
			if err != nil {
				return err
			}
			out.Method = shopv1.PricingService_Quote_FullMethodName
			_, callErr = shopv1.NewPricingServiceClient(conn).Quote(ctx, &shopv1.QuoteRequest{Sku: "sku-42", Quantity: 1})
		case "not-caller":
			conn, err := svc.Dial(*billingAddr)
			if err != nil {
				return err
			}
			out.Method = shopv1.BillingService_Charge_FullMethodName
			_, callErr = shopv1.NewBillingServiceClient(conn).Charge(ctx, &shopv1.ChargeRequest{AmountCents: 100000, Description: "free money"})
		case "no-user":
			conn, err := svc.Dial(*ordersAddr)
			if err != nil {
				return err
			}
			out.Method = shopv1.OrdersService_PlaceOrder_FullMethodName
			_, callErr = shopv1.NewOrdersServiceClient(conn).PlaceOrder(ctx, &shopv1.PlaceOrderRequest{Sku: "sku-42", Quantity: 1})
		case "tamper":
			tok, err := svc.Tokens.Token(ctx, "pricing")
			if err != nil {
				return fmt.Errorf("get a token for pricing: %w", err)
			}
			forged, err := addScope(tok, "pricing.quote")
			if err != nil {
				return err
			}
			out.Method = shopv1.PricingService_Quote_FullMethodName
			callErr = quoteWith(ctx, *pricingAddr, forged)
		case "forge":
			forged, err := selfSigned(f.Issuer)
			if err != nil {
				return err
			}
			out.Method = shopv1.PricingService_Quote_FullMethodName
			callErr = quoteWith(ctx, *pricingAddr, forged)
		case "replay":
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return fmt.Errorf("replay needs --token-file: %w", err)
			}
			out.Method = shopv1.PricingService_Quote_FullMethodName
			callErr = quoteWith(ctx, *pricingAddr, strings.TrimSpace(string(b)))
		default:
			flag.Usage()
			os.Exit(2)
		}
		st := status.Convert(callErr)
		out.Code, out.Message = st.Code().String(), st.Message()
		if r, ok := interceptor.ReasonFromError(callErr); ok {
			out.Reason = interceptor.ReasonName(r)
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	})
	os.Exit(0)
}

// quoteWith calls Quote with a raw token of rogue's choosing, without
// callsign's client interceptor.
func quoteWith(ctx context.Context, addr, tok string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, interceptor.MDAuthorization, "Bearer "+tok)
	_, err = shopv1.NewPricingServiceClient(conn).Quote(ctx, &shopv1.QuoteRequest{Sku: "sku-42", Quantity: 1})
	return err
}

// addScope rewrites the claims of a genuine token to carry scope, keeping the
// header and the signature.
func addScope(tok, scope string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		return "", err
	}
	s, _ := claims["scope"].(string)
	claims["scope"] = strings.TrimSpace(s + " " + scope)
	raw, err = json.Marshal(claims)
	if err != nil {
		return "", err
	}
	parts[1] = base64.RawURLEncoding.EncodeToString(raw)
	return strings.Join(parts, "."), nil
}

// selfSigned mints a service token that claims to be orders, signed with a key
// callsignd never published.
func selfSigned(issuer string) (string, error) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return "", err
	}
	now := time.Now().Unix()
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	head := enc(map[string]string{"alg": "EdDSA", "kid": "rogue-made-this-up", "typ": "svc+jwt"})
	body := enc(map[string]any{
		"iss": issuer, "sub": "orders", "aud": "pricing", "scope": "pricing.quote",
		"iat": now, "nbf": now, "exp": now + 60, "jti": "AAAAAAAAAAAAAAAAAAAAAA",
	})
	sig := ed25519.Sign(priv, []byte(head+"."+body))
	return head + "." + body + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
