package interceptor_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"

	"github.com/callsign-dev/callsign/interceptor"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// exampleIssuer stands in for callsignd: it publishes a JWKS and signs
// service tokens.
type exampleIssuer struct {
	signer token.Signer
	jwks   []byte
}

func newExampleIssuer() exampleIssuer {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	k := token.Key{ID: "2026-03", Algorithm: token.EdDSA, Public: priv.Public()}
	jwks, err := token.MarshalJWKS([]token.Key{k})
	if err != nil {
		log.Fatal(err)
	}
	return exampleIssuer{signer: token.Signer{Key: k, Private: priv}, jwks: jwks}
}

func (i exampleIssuer) token(caller string, scopes ...string) string {
	id, err := token.NewID()
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	tok, err := i.signer.Sign(token.Claims{
		Type: token.TypeService, Issuer: "callsign", Subject: caller, Audience: "inventory",
		IssuedAt: now, Expiry: now.Add(5 * time.Minute), ID: id, Scopes: scopes,
	})
	if err != nil {
		log.Fatal(err)
	}
	return tok
}

// inventory is a service whose handlers read the verified caller.
type inventory struct {
	testv1.UnimplementedTestServiceServer
}

// Scoped requires scope test.read (declared in its .proto file). The handler
// reads who called.
func (inventory) Scoped(ctx context.Context, _ *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	caller, _ := interceptor.CallerFromContext(ctx)
	return &testv1.ScopedResponse{Payload: "hello " + caller.ServiceID}, nil
}

// A server that verifies every call: the key set comes from callsignd (here a
// fixed JWKS), each method's rule from its .proto file, and health checks are
// exempted explicitly.
func ExampleNewServer() {
	issuer := newExampleIssuer()
	// In production: interceptor.NewLiveKeySource(ctx, callsignv1.NewAuthServiceClient(conn)).
	keys, err := interceptor.NewStaticKeySource(issuer.jwks, interceptor.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := interceptor.NewServer(keys,
		interceptor.WithIssuer("callsign"),
		interceptor.WithAudience("inventory"),
		interceptor.WithServiceRule("grpc.health.v1.Health", interceptor.Rule{Public: true}),
	)
	if err != nil {
		log.Fatal(err)
	}
	gs := grpc.NewServer(srv.GRPCServerOptions()...)
	testv1.RegisterTestServiceServer(gs, inventory{})
	healthpb.RegisterHealthServer(gs, health.NewServer())
	// TestService has methods without rules on purpose; a real server refuses
	// to start when this list is not empty.
	fmt.Println("methods without a rule:", len(srv.CheckServer(gs)))

	lis := bufconn.Listen(1 << 16)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := testv1.NewTestServiceClient(conn)

	call := func(tok string) {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
		resp, err := client.Scoped(ctx, &testv1.ScopedRequest{})
		if err != nil {
			reason, _ := interceptor.ReasonFromError(err)
			fmt.Println("refused:", interceptor.ReasonName(reason))
			return
		}
		fmt.Println(resp.GetPayload())
	}
	call(issuer.token("orders", "test.read"))
	call(issuer.token("orders", "test.write"))
	call("not-a-token")
	// Output:
	// methods without a rule: 3
	// hello orders
	// refused: SCOPE_MISSING
	// refused: TOKEN_MALFORMED
}

// Reading the verified caller in a handler, tested with a context built by
// NewContextWithIdentity.
func ExampleCallerFromContext() {
	handler := func(ctx context.Context) string {
		caller, ok := interceptor.CallerFromContext(ctx)
		if !ok {
			return "anonymous (public method)"
		}
		if user, ok := interceptor.UserFromContext(ctx); ok {
			return fmt.Sprintf("%s on behalf of %s (tenant %s)", caller.ServiceID, user.ID, user.TenantID)
		}
		return caller.ServiceID + " with scopes " + fmt.Sprint(caller.Scopes)
	}

	ctx := interceptor.NewContextWithIdentity(context.Background(), interceptor.Identity{
		Caller: &interceptor.Caller{ServiceID: "orders", Scopes: []string{"inventory.read"}},
	})
	fmt.Println(handler(ctx))
	ctx = interceptor.NewContextWithIdentity(context.Background(), interceptor.Identity{
		Caller: &interceptor.Caller{ServiceID: "gateway"},
		User:   &interceptor.User{ID: "u-42", TenantID: "acme"},
		Tenant: "acme",
	})
	fmt.Println(handler(ctx))
	fmt.Println(handler(context.Background()))
	// Output:
	// orders with scopes [inventory.read]
	// gateway on behalf of u-42 (tenant acme)
	// anonymous (public method)
}

// Installing the interceptors one at a time, in the style of
// go-grpc-middleware. NewServer shares the caches between them; these two
// constructors build one Server each.
func ExampleUnaryServerInterceptor() {
	issuer := newExampleIssuer()
	keys, err := interceptor.NewStaticKeySource(issuer.jwks, interceptor.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	opts := []interceptor.ServerOption{interceptor.WithIssuer("callsign"), interceptor.WithAudience("inventory")}
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(interceptor.UnaryServerInterceptor(keys, opts...)),
		grpc.ChainStreamInterceptor(interceptor.StreamServerInterceptor(keys, opts...)),
	)
	defer gs.Stop()
	fmt.Println("ready")
	// Output: ready
}
