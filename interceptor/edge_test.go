package interceptor

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

func cliNewUserSource(t *testing.T, opts ...UserTokenOption) (*UserTokenSource, *cliFakeAuth, *cliFakeClock) {
	t.Helper()
	clk := newCliFakeClock()
	fa := newCliFakeAuth(clk)
	opts = append([]UserTokenOption{WithUserTokenClock(clk)}, opts...)
	us, err := NewUserTokenSource(cliStartAuth(t, fa), ClientSecret("gateway", "cs_gw"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = us.Close() })
	return us, fa, clk
}

func TestUserTokenSourceCachesPerUser(t *testing.T) {
	us, fa, _ := cliNewUserSource(t, WithUserTokenLifetime(60*time.Second))
	ctx := cliCtx(t)
	alice := EdgeUser{ID: "alice", TenantID: "acme", Roles: []string{"buyer", "admin", "buyer"}}
	tok, err := us.UserToken(ctx, alice)
	if err != nil || tok != cliToken("user:alice", 1) {
		t.Fatalf("UserToken = %q, %v", tok, err)
	}
	same := EdgeUser{ID: "alice", TenantID: "acme", Roles: []string{"admin", "buyer"}}
	if tok2, _ := us.UserToken(ctx, same); tok2 != tok {
		t.Fatal("the same user with the same roles in another order was not served from the cache")
	}
	for i, other := range []EdgeUser{
		{ID: "alice", TenantID: "acme", Roles: []string{"admin"}},
		{ID: "alice", TenantID: "globex", Roles: []string{"admin", "buyer"}},
		{ID: "bob", TenantID: "acme", Roles: []string{"admin", "buyer"}},
		{ID: "alice", TenantID: "acme"},
	} {
		if _, err := us.UserToken(ctx, other); err != nil {
			t.Fatal(err)
		}
		if n := fa.calls.Load(); n != int32(i+2) {
			t.Fatalf("user %d: %d IssueToken calls, want %d", i, n, i+2)
		}
	}
	req := fa.requests()[0]
	if req.GetAudience() != "" || req.GetUser().GetUserId() != "alice" || req.GetUser().GetTenantId() != "acme" ||
		!slices.Equal(req.GetUser().GetRoles(), []string{"admin", "buyer"}) || req.GetLifetime().AsDuration() != 60*time.Second ||
		req.GetClientSecret().GetAccountId() != "gateway" {
		t.Fatalf("request = %v", req)
	}
}

func TestUserTokenSourceKeyHasNoCollisions(t *testing.T) {
	a := userCacheKey("a:b", "c", nil)
	b := userCacheKey("a", "b:c", nil)
	c := userCacheKey("a", "b", []string{"c"})
	if a == b || b == c || a == c {
		t.Fatalf("keys collide: %q %q %q", a, b, c)
	}
}

func TestUserTokenSourceExpiresEntries(t *testing.T) {
	// Lifetime 300 s, r = 0.5 would give 150 s; the maximum age of 60 s wins.
	us, fa, clk := cliNewUserSource(t)
	ctx := cliCtx(t)
	u := EdgeUser{ID: "alice", TenantID: "acme"}
	first, _ := us.UserToken(ctx, u)
	clk.Advance(59 * time.Second)
	if tok, _ := us.UserToken(ctx, u); tok != first {
		t.Fatal("expired before its maximum age")
	}
	clk.Advance(time.Second)
	if tok, _ := us.UserToken(ctx, u); tok == first || fa.calls.Load() != 2 {
		t.Fatal("reused beyond its maximum age")
	}

	// A short-lived token is reused for at most 60 % of its lifetime.
	us2, fa2, clk2 := cliNewUserSource(t, WithUserTokenMaxAge(time.Hour))
	fa2.lifetime = 20 * time.Second
	first, _ = us2.UserToken(ctx, u)
	clk2.Advance(12 * time.Second)
	if tok, _ := us2.UserToken(ctx, u); tok == first {
		t.Fatal("reused beyond 60 % of its lifetime")
	}
}

func TestUserTokenSourceIsBounded(t *testing.T) {
	us, fa, _ := cliNewUserSource(t, WithUserTokenCacheSize(2))
	ctx := cliCtx(t)
	get := func(id string) {
		t.Helper()
		if _, err := us.UserToken(ctx, EdgeUser{ID: id, TenantID: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	get("a")
	get("b")
	get("a") // a is now the most recent
	get("c") // evicts b
	if us.Len() != 2 || fa.calls.Load() != 3 {
		t.Fatalf("len %d, calls %d", us.Len(), fa.calls.Load())
	}
	get("a")
	if fa.calls.Load() != 3 {
		t.Fatal("the most recently used entry was evicted")
	}
	get("b")
	if fa.calls.Load() != 4 {
		t.Fatal("the least recently used entry was kept")
	}

	off, fa0, _ := cliNewUserSource(t, WithUserTokenCacheSize(0))
	for range 3 {
		if _, err := off.UserToken(ctx, EdgeUser{ID: "a", TenantID: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	if fa0.calls.Load() != 3 || off.Len() != 0 {
		t.Fatalf("cache off: %d calls, len %d", fa0.calls.Load(), off.Len())
	}
}

func TestUserTokenSourceRejectsInvalidUsers(t *testing.T) {
	us, fa, _ := cliNewUserSource(t)
	many := make([]string, maxUserRoles+1)
	for i := range many {
		many[i] = "r"
	}
	for name, u := range map[string]EdgeUser{
		"no id":           {TenantID: "acme"},
		"no tenant":       {ID: "alice"},
		"space in id":     {ID: "al ice", TenantID: "acme"},
		"newline in id":   {ID: "alice\n", TenantID: "acme"},
		"non-ASCII id":    {ID: "alicé", TenantID: "acme"},
		"long id":         {ID: strings.Repeat("a", maxUserIDLength+1), TenantID: "acme"},
		"bad role":        {ID: "alice", TenantID: "acme", Roles: []string{"admin role"}},
		"empty role":      {ID: "alice", TenantID: "acme", Roles: []string{""}},
		"long role":       {ID: "alice", TenantID: "acme", Roles: []string{strings.Repeat("r", maxRoleLength+1)}},
		"too many roles":  {ID: "alice", TenantID: "acme", Roles: many},
		"control in role": {ID: "alice", TenantID: "acme", Roles: []string{"a\x00"}},
	} {
		_, err := us.UserToken(cliCtx(t), u)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
		if err != nil && (strings.Contains(err.Error(), "alic") || strings.Contains(err.Error(), "admin role")) {
			t.Errorf("%s: the input reached the error: %v", name, err)
		}
	}
	if n := fa.calls.Load(); n != 0 {
		t.Fatalf("%d IssueToken calls for invalid users", n)
	}
	if _, err := us.UserToken(cliCtx(t), EdgeUser{ID: strings.Repeat("a", maxUserIDLength), TenantID: "t", Roles: []string{"a.b_c:d/e-F9"}}); err != nil {
		t.Fatalf("a user at the limits was refused: %v", err)
	}
}

func TestUserTokenSourceCoalescesAndFailsClosed(t *testing.T) {
	us, fa, clk := cliNewUserSource(t)
	gate := make(chan struct{})
	fa.setGate(gate)
	ctx := cliCtx(t)
	u := EdgeUser{ID: "alice", TenantID: "acme"}
	var wg sync.WaitGroup
	toks := make([]string, 100)
	for i := range toks {
		wg.Go(func() { toks[i], _ = us.UserToken(ctx, u) })
	}
	<-fa.started
	close(gate)
	wg.Wait()
	for i, tok := range toks {
		if tok != cliToken("user:alice", 1) {
			t.Fatalf("caller %d got %q", i, tok)
		}
	}
	if n := fa.calls.Load(); n != 1 {
		t.Fatalf("%d IssueToken calls for 100 concurrent requests, want 1", n)
	}

	// A refusal is not cached, and a service token is not a user token.
	fa.setFail(cliRefusal(codes.PermissionDenied, ErrorDomain, "TENANT_NOT_ALLOWED"))
	_, err := us.UserToken(ctx, EdgeUser{ID: "bob", TenantID: "other"})
	cliAssertUnavailable(t, err)
	var ie *IssueError
	if !errors.As(err, &ie) || ie.Reason != callsignv1.Reason_REASON_TENANT_NOT_ALLOWED {
		t.Fatalf("cause = %v", err)
	}
	fa.setFail(nil)
	if _, err := us.UserToken(ctx, EdgeUser{ID: "bob", TenantID: "other"}); err != nil {
		t.Fatalf("a failure was cached: %v", err)
	}
	fa.respond = func(n int32, _ *callsignv1.IssueTokenRequest) *callsignv1.IssueTokenResponse {
		return &callsignv1.IssueTokenResponse{Token: cliToken("x", n), TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(clk.Now().Add(time.Minute))}
	}
	_, err = us.UserToken(ctx, EdgeUser{ID: "carol", TenantID: "acme"})
	cliAssertUnavailable(t, err)
	if !errors.Is(err, errBadIssueResponse) {
		t.Fatalf("a service token was accepted as a user token: %v", err)
	}
}

func TestUserTokenSourceClose(t *testing.T) {
	us, fa, _ := cliNewUserSource(t)
	fa.setGate(make(chan struct{}))
	errc := make(chan error, 1)
	go func() {
		_, err := us.UserToken(cliCtx(t), EdgeUser{ID: "alice", TenantID: "acme"})
		errc <- err
	}()
	<-fa.started
	if err := us.Close(); err != nil {
		t.Fatal(err)
	}
	cliAssertUnavailable(t, <-errc)
	if g := cliOurGoroutines(); len(g) > 0 {
		t.Fatalf("goroutines left after Close:\n%s", strings.Join(g, "\n\n"))
	}
	_, err := us.UserToken(cliCtx(t), EdgeUser{ID: "alice", TenantID: "acme"})
	cliAssertUnavailable(t, err)
}

// cliRelay is a TestService whose Scoped handler calls the next service.
type cliRelay struct {
	testv1.UnimplementedTestServiceServer
	next testv1.TestServiceClient
}

func (r *cliRelay) Scoped(ctx context.Context, req *testv1.ScopedRequest) (*testv1.ScopedResponse, error) {
	return r.next.Scoped(ctx, req)
}

func TestEdgeUserTokenTravelsThroughTheChain(t *testing.T) {
	// edge --> middle --> back: the edge obtains a user token and puts it on
	// its call; the middle service's client interceptor forwards it.
	us, _, _ := cliNewUserSource(t)
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	back, backClient := cliStartTarget(t, cliClientDial(ts)...)
	middle := grpc.NewServer()
	testv1.RegisterTestServiceServer(middle, &cliRelay{next: backClient})
	edgeClient := testv1.NewTestServiceClient(cliServe(t, middle, cliClientDial(ts)...))

	ctx := cliCtx(t)
	ut, err := us.UserToken(ctx, EdgeUser{ID: "alice", TenantID: "acme", Roles: []string{"buyer"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := edgeClient.Scoped(WithUserToken(ctx, ut), &testv1.ScopedRequest{Payload: "p"}); err != nil {
		t.Fatal(err)
	}
	md := back.calls()[0]
	if got := cliOne(t, md, MDUserToken); got != ut {
		t.Fatalf("x-user-token at the back = %q, want the edge's token", got)
	}
	if got := cliOne(t, md, MDAuthorization); got != "Bearer "+cliStaticTok {
		t.Fatalf("authorization at the back = %q", got)
	}
	if len(cliOne(t, md, MDCorrelationID)) != 22 {
		t.Fatal("no correlation id created at the edge")
	}
}
