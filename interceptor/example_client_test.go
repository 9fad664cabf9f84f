package interceptor_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"net"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// exampleCallsignd stands in for callsignd: it accepts the client secret of
// account "orders" and signs tokens for the audience asked for.
type exampleCallsignd struct {
	callsignv1.UnimplementedAuthServiceServer
	signer token.Signer
	jwks   []byte
	issued atomic.Int32
}

func newExampleCallsignd() *exampleCallsignd {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	k := token.Key{ID: "2026-03", Algorithm: token.EdDSA, Public: priv.Public()}
	jwks, err := token.MarshalJWKS([]token.Key{k})
	if err != nil {
		log.Fatal(err)
	}
	return &exampleCallsignd{signer: token.Signer{Key: k, Private: priv}, jwks: jwks}
}

func (d *exampleCallsignd) IssueToken(_ context.Context, req *callsignv1.IssueTokenRequest) (*callsignv1.IssueTokenResponse, error) {
	if cs := req.GetClientSecret(); cs.GetAccountId() != "orders" || cs.GetSecret() != "cs_example" {
		return nil, status.Error(codes.Unauthenticated, "callsign: credential invalid")
	}
	now := time.Now().Truncate(time.Second)
	id, err := token.NewID()
	if err != nil {
		return nil, status.Error(codes.Internal, "callsign: internal error")
	}
	c := token.Claims{Type: token.TypeService, Issuer: "callsign", Subject: "orders", Audience: req.GetAudience(),
		IssuedAt: now, Expiry: now.Add(5 * time.Minute), ID: id, Scopes: []string{"test.read"}}
	typ := callsignv1.TokenType_TOKEN_TYPE_SERVICE
	if u := req.GetUser(); u != nil {
		c = token.Claims{Type: token.TypeUser, Issuer: "callsign", Subject: u.GetUserId(), Audience: "callsign",
			IssuedAt: now, Expiry: now.Add(5 * time.Minute), ID: id, TenantID: u.GetTenantId(), Roles: u.GetRoles(), Actor: "orders"}
		typ = callsignv1.TokenType_TOKEN_TYPE_USER
	}
	tok, err := d.signer.Sign(c)
	if err != nil {
		return nil, status.Error(codes.Internal, "callsign: internal error")
	}
	d.issued.Add(1)
	return &callsignv1.IssueTokenResponse{Token: tok, TokenType: typ, ExpireTime: timestamppb.New(c.Expiry), TokenId: id, KeyId: "2026-03"}, nil
}

// exampleGreeter answers with the name of the verified caller.
type exampleGreeter struct {
	testv1.UnimplementedTestServiceServer
}

func (exampleGreeter) Scoped(ctx context.Context, _ *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	caller, _ := interceptor.CallerFromContext(ctx)
	return &testv1.ScopedResponse{Payload: "hello " + caller.ServiceID}, nil
}

// exampleServe serves gs in process and returns a connection to it made with
// the given dial options.
func exampleServe(gs *grpc.Server, dial ...grpc.DialOption) *grpc.ClientConn {
	lis := bufconn.Listen(1 << 16)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet", append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, dial...)...)
	if err != nil {
		log.Fatal(err)
	}
	return conn
}

// A client whose every call carries a service token: the token source
// obtains one token per audience from callsignd and renews it in the
// background; the interceptors attach it, picking the audience from the
// target service's callsign.v1.service option ("test" for TestService).
func ExampleUnaryClientInterceptor() {
	// callsignd, and a service (audience "test") that verifies every call.
	callsignd := newExampleCallsignd()
	authServer := grpc.NewServer()
	callsignv1.RegisterAuthServiceServer(authServer, callsignd)
	defer authServer.Stop()
	keys, err := interceptor.NewStaticKeySource(callsignd.jwks, interceptor.EdDSA)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := interceptor.NewServer(keys, interceptor.WithIssuer("callsign"), interceptor.WithAudience("test"))
	if err != nil {
		log.Fatal(err)
	}
	greeter := grpc.NewServer(srv.GRPCServerOptions()...)
	testv1.RegisterTestServiceServer(greeter, exampleGreeter{})
	defer greeter.Stop()

	// The calling side. In production the credential is usually
	// interceptor.PrivateKeyJWT, and the connections use TLS.
	authConn := exampleServe(authServer)
	defer authConn.Close()
	ts, err := interceptor.NewTokenSource(callsignv1.NewAuthServiceClient(authConn), interceptor.ClientSecret("orders", "cs_example"))
	if err != nil {
		log.Fatal(err)
	}
	defer ts.Close()
	conn := exampleServe(greeter,
		grpc.WithChainUnaryInterceptor(interceptor.UnaryClientInterceptor(ts)),
		grpc.WithChainStreamInterceptor(interceptor.StreamClientInterceptor(ts)),
	)
	defer conn.Close()
	client := testv1.NewTestServiceClient(conn)

	for range 3 {
		resp, err := client.Scoped(context.Background(), &testv1.ScopedRequest{})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(resp.GetPayload())
	}
	fmt.Println("IssueToken calls:", callsignd.issued.Load())
	// Output:
	// hello orders
	// hello orders
	// hello orders
	// IssueToken calls: 1
}

// At the edge: the gateway has authenticated a user with whatever it already
// uses, obtains a user-context token for that user and puts it on the calls
// it makes on the user's behalf; the services behind forward it unchanged.
func ExampleUserTokenSource() {
	callsignd := newExampleCallsignd()
	authServer := grpc.NewServer()
	callsignv1.RegisterAuthServiceServer(authServer, callsignd)
	defer authServer.Stop()
	authConn := exampleServe(authServer)
	defer authConn.Close()

	users, err := interceptor.NewUserTokenSource(callsignv1.NewAuthServiceClient(authConn), interceptor.ClientSecret("orders", "cs_example"))
	if err != nil {
		log.Fatal(err)
	}
	defer users.Close()

	alice := interceptor.EdgeUser{ID: "alice", TenantID: "acme", Roles: []string{"buyer"}}
	ctx := context.Background()
	for range 2 {
		tok, err := users.UserToken(ctx, alice)
		if err != nil {
			log.Fatal(err)
		}
		ctx := interceptor.WithUserToken(ctx, tok)
		md, _ := metadata.FromOutgoingContext(ctx)
		fmt.Println("x-user-token values on the call:", len(md.Get(interceptor.MDUserToken)))
	}
	fmt.Println("IssueToken calls:", callsignd.issued.Load())
	// Output:
	// x-user-token values on the call: 1
	// x-user-token values on the call: 1
	// IssueToken calls: 1
}

// Per-RPC credentials require transport security unless told otherwise.
func ExamplePerRPCCredentials() {
	ts := interceptor.StaticTokenSource(map[string]string{"test": "aaa.bbb.ccc"})
	fmt.Println(interceptor.PerRPCCredentials(ts, "test").RequireTransportSecurity())
	fmt.Println(interceptor.PerRPCCredentials(ts, "test", interceptor.AllowInsecure()).RequireTransportSecurity())
	// Output:
	// true
	// false
}
