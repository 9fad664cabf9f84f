package interceptor

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// cliWaitFor spins (yielding, never sleeping) until cond holds or the test's
// deadline passes.
func cliWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// cliAssertUnavailable checks the fail-closed answer of the calling side.
func cliAssertUnavailable(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("got a token, want Unavailable")
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable {
		t.Fatalf("code = %v (%v), want Unavailable", st.Code(), err)
	}
	if r, ok := callsignReason(st); !ok || r != callsignv1.Reason_REASON_TOKEN_UNAVAILABLE {
		t.Fatalf("reason = %v, %v; want TOKEN_UNAVAILABLE", r, ok)
	}
	if st.Message() != "callsign: token unavailable" {
		t.Fatalf("message = %q", st.Message())
	}
}

func TestTokenSourceCachesPerAudience(t *testing.T) {
	ts, fa, _ := cliNewSource(t, 0.5, WithScopes("billing", "billing.charge"), WithTenant("acme"), WithLifetime(120*time.Second))
	ctx := cliCtx(t)
	for range 3 {
		tok, err := ts.Token(ctx, "billing")
		if err != nil || tok != cliToken("billing", 1) {
			t.Fatalf("Token(billing) = %q, %v", tok, err)
		}
	}
	tok, err := ts.Token(ctx, "pricing")
	if err != nil || tok != cliToken("pricing", 2) {
		t.Fatalf("Token(pricing) = %q, %v", tok, err)
	}
	if n := fa.calls.Load(); n != 2 {
		t.Fatalf("IssueToken calls = %d, want 2", n)
	}
	reqs := fa.requests()
	if got := reqs[0]; got.GetAudience() != "billing" || strings.Join(got.GetScopes(), ",") != "billing.charge" ||
		got.GetTenantId() != "acme" || got.GetLifetime().AsDuration() != 120*time.Second ||
		got.GetClientSecret().GetAccountId() != "orders" || got.GetClientSecret().GetSecret() != "cs_secret" || got.GetUser() != nil {
		t.Fatalf("request 1 = %v", got)
	}
	if got := reqs[1]; got.GetAudience() != "pricing" || len(got.GetScopes()) != 0 {
		t.Fatalf("request 2 = %v", got)
	}
}

func TestTokenSourceRefreshSchedule(t *testing.T) {
	// Lifetime 300 s: refresh at 40 % + 20 %·r of it.
	for _, tc := range []struct {
		r    float64
		want time.Duration
	}{
		{0, 120 * time.Second},
		{0.5, 150 * time.Second},
		{0.75, 165 * time.Second},
	} {
		t.Run(fmt.Sprint(tc.r), func(t *testing.T) {
			done := make(chan string, 8)
			ts, fa, clk := cliNewSource(t, tc.r, withTokenSourceHook(func(a string) { done <- a }))
			ctx := cliCtx(t)
			first, err := ts.Token(ctx, "billing")
			if err != nil {
				t.Fatal(err)
			}
			<-done
			if _, err := ts.Token(ctx, "billing"); err != nil { // a use after the token was obtained
				t.Fatal(err)
			}
			clk.WaitForDeadline(t, cliEpoch.Add(tc.want))
			if d := clk.Deadlines(); len(d) != 1 {
				t.Fatalf("pending timers %v, want exactly one", cliRel(d))
			}
			clk.Advance(tc.want - time.Second)
			if tok, _ := ts.Token(ctx, "billing"); tok != first || fa.calls.Load() != 1 {
				t.Fatalf("refreshed early: %d calls", fa.calls.Load())
			}
			clk.Advance(time.Second)
			<-done
			if n := fa.calls.Load(); n != 2 {
				t.Fatalf("IssueToken calls = %d, want 2", n)
			}
			tok, err := ts.Token(ctx, "billing")
			if err != nil || tok != cliToken("billing", 2) {
				t.Fatalf("after refresh Token = %q, %v", tok, err)
			}
		})
	}
}

func TestTokenSourceIdleTokenIsNotRefreshed(t *testing.T) {
	done := make(chan string, 8)
	ts, fa, clk := cliNewSource(t, 0.5, withTokenSourceHook(func(a string) { done <- a }))
	ctx := cliCtx(t)
	first, err := ts.Token(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	<-done
	clk.WaitForDeadline(t, cliEpoch.Add(150*time.Second))
	clk.Advance(150 * time.Second)
	cliWaitFor(t, "the refresher to go idle", func() bool { return ts.idled.Load() == 1 })
	if n := fa.calls.Load(); n != 1 {
		t.Fatalf("an unused token was refreshed: %d calls", n)
	}
	// A use wakes it: the still valid token is served at once and renewed in
	// the background.
	tok, err := ts.Token(ctx, "billing")
	if err != nil || tok != first {
		t.Fatalf("Token = %q, %v; want the cached token", tok, err)
	}
	<-done
	if tok, _ := ts.Token(ctx, "billing"); tok != cliToken("billing", 2) {
		t.Fatalf("after the wake-up Token = %q", tok)
	}
}

func TestTokenSourceHotPathNeverWaitsForRefresh(t *testing.T) {
	done := make(chan string, 8)
	ts, fa, clk := cliNewSource(t, 0.5, withTokenSourceHook(func(a string) { done <- a }))
	ctx := cliCtx(t)
	first, err := ts.Token(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	<-done
	<-fa.started
	_, _ = ts.Token(ctx, "billing")
	gate := make(chan struct{})
	fa.setGate(gate)
	clk.WaitForDeadline(t, cliEpoch.Add(150*time.Second))
	clk.Advance(150 * time.Second)
	<-fa.started // the refresh is in progress and held

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for range 100 {
		tok, err := ts.Token(canceled, "billing")
		if err != nil || tok != first {
			t.Fatalf("during refresh Token = %q, %v; want the cached token at once", tok, err)
		}
	}
	close(gate)
	<-done
	if tok, _ := ts.Token(ctx, "billing"); tok != cliToken("billing", 2) {
		t.Fatalf("after refresh Token = %q", tok)
	}
}

func TestTokenSourceCoalescesFirstCalls(t *testing.T) {
	const callers = 1000
	ts, fa, _ := cliNewSource(t, 0.5)
	gate := make(chan struct{})
	fa.setGate(gate)
	ctx := cliCtx(t)

	var wg sync.WaitGroup
	toks := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { toks[i], errs[i] = ts.Token(ctx, "billing") })
	}
	cliWaitFor(t, "every caller to wait for the one IssueToken call", func() bool {
		e := (*ts.entries.Load())["billing"]
		return e != nil && e.waiters.Load() == callers
	})
	close(gate)
	wg.Wait()
	for i := range callers {
		if errs[i] != nil || toks[i] != cliToken("billing", 1) {
			t.Fatalf("caller %d: %q, %v", i, toks[i], errs[i])
		}
	}
	if n := fa.calls.Load(); n != 1 {
		t.Fatalf("IssueToken calls = %d, want exactly 1", n)
	}
}

func TestTokenSourceCallerDeadlineDoesNotCancelSharedCall(t *testing.T) {
	ts, fa, _ := cliNewSource(t, 0.5)
	gate := make(chan struct{})
	fa.setGate(gate)
	short, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := ts.Token(short, "billing")
		errc <- err
	}()
	<-fa.started
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("impatient caller: %v, want Canceled", err)
	}
	close(gate)
	tok, err := ts.Token(cliCtx(t), "billing")
	if err != nil || tok != cliToken("billing", 1) || fa.calls.Load() != 1 {
		t.Fatalf("Token = %q, %v after %d calls; want the shared call's token", tok, err, fa.calls.Load())
	}
}

func TestTokenSourceBacksOffAfterFailures(t *testing.T) {
	// r = 0.5 makes every wait exactly initial·2^(n-1).
	ts, fa, clk := cliNewSource(t, 0.5, WithBackoff(time.Second, 4*time.Second))
	ctx := cliCtx(t)
	fa.setFail(cliRefusal(codes.PermissionDenied, ErrorDomain, "AUDIENCE_NOT_GRANTED"))

	_, err := ts.Token(ctx, "billing")
	cliAssertUnavailable(t, err)
	var ie *IssueError
	if !errors.As(err, &ie) || ie.Code != codes.PermissionDenied || ie.Reason != callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED {
		t.Fatalf("cause = %#v", ie)
	}
	if strings.Contains(err.Error(), "refused") {
		t.Fatalf("the server's message reached the error: %v", err)
	}

	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second} {
		calls := fa.calls.Load()
		clk.Advance(wait - time.Millisecond)
		_, err := ts.Token(ctx, "billing")
		cliAssertUnavailable(t, err)
		if n := fa.calls.Load(); n != calls {
			t.Fatalf("failure %d: IssueToken called during the backoff (%d calls)", i+1, n)
		}
		cliWaitFor(t, "a quiet refresher", func() bool {
			e := (*ts.entries.Load())["billing"]
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.flight == nil
		})
		clk.Advance(time.Millisecond)
		_, err = ts.Token(ctx, "billing")
		cliAssertUnavailable(t, err)
		if n := fa.calls.Load(); n != calls+1 {
			t.Fatalf("failure %d: %d calls after the backoff, want %d", i+1, n, calls+1)
		}
	}

	fa.setFail(nil)
	clk.Advance(4 * time.Second)
	if tok, err := ts.Token(ctx, "billing"); err != nil || tok == "" {
		t.Fatalf("after recovery Token = %q, %v", tok, err)
	}
}

func TestTokenSourceFailsClosedWhenTokenExpires(t *testing.T) {
	done := make(chan string, 64)
	ts, fa, clk := cliNewSource(t, 0.5, WithBackoff(time.Hour, time.Hour), withTokenSourceHook(func(a string) { done <- a }))
	ctx := cliCtx(t)
	first, err := ts.Token(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	<-done
	fa.setFail(status.Error(codes.Unavailable, "down"))
	_, _ = ts.Token(ctx, "billing")
	clk.WaitForDeadline(t, cliEpoch.Add(150*time.Second))
	clk.Advance(150 * time.Second)
	<-done // the background refresh failed
	if fa.calls.Load() != 2 {
		t.Fatalf("calls = %d", fa.calls.Load())
	}
	// Lifetime 300 s, margin 10 s: served until 290 s, never after.
	clk.Advance(139 * time.Second)
	if tok, err := ts.Token(ctx, "billing"); err != nil || tok != first {
		t.Fatalf("at 289 s Token = %q, %v; want the still valid token", tok, err)
	}
	clk.Advance(time.Second)
	_, err = ts.Token(ctx, "billing")
	cliAssertUnavailable(t, err)
	var ie *IssueError
	if !errors.As(err, &ie) || ie.Code != codes.Unavailable {
		t.Fatalf("cause = %v", err)
	}
}

func TestTokenSourceRejectsHostileResponses(t *testing.T) {
	long := "a." + strings.Repeat("b", token.MaxTokenSize) + ".c"
	valid := cliToken("billing", 1)
	for _, tc := range []struct {
		name string
		resp func(now time.Time) *callsignv1.IssueTokenResponse
	}{
		{"user token for a service", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_USER, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"type unspecified", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"empty token", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"header injection", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: "a.b.c\r\nx-evil: 1", TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"padding", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: "a.b=.c", TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"two segments", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: "a.b", TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"empty segment", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: "a..c", TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"four segments", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: "a.b.c.d", TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"oversized", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: long, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute))}
		}},
		{"no expiry", func(time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE}
		}},
		{"invalid timestamp", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: &timestamppb.Timestamp{Seconds: now.Unix() + 60, Nanos: 2e9}}
		}},
		{"out of range timestamp", func(time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: &timestamppb.Timestamp{Seconds: 1 << 62}}
		}},
		{"already expired", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(-time.Minute))}
		}},
		{"oversized response", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(time.Minute)),
				Scopes: slices.Repeat([]string{strings.Repeat("s", 128)}, 1000)}
		}},
		{"expires at once", func(now time.Time) *callsignv1.IssueTokenResponse {
			return &callsignv1.IssueTokenResponse{Token: valid, TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(500 * time.Millisecond))}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, fa, clk := cliNewSource(t, 0.5)
			fa.respond = func(int32, *callsignv1.IssueTokenRequest) *callsignv1.IssueTokenResponse { return tc.resp(clk.Now()) }
			_, err := ts.Token(cliCtx(t), "billing")
			cliAssertUnavailable(t, err)
			var ie *IssueError
			if !errors.Is(err, errBadIssueResponse) && (!errors.As(err, &ie) || ie.Code != codes.ResourceExhausted) {
				t.Fatalf("cause = %v, want an unusable response", err)
			}
		})
	}
}

func TestTokenSourceCapsLongLifetimes(t *testing.T) {
	ts, fa, clk := cliNewSource(t, 0.5)
	fa.lifetime = 1000 * time.Hour
	if _, err := ts.Token(cliCtx(t), "billing"); err != nil {
		t.Fatal(err)
	}
	cur := (*ts.entries.Load())["billing"].cur.Load()
	if !cur.useUntil.Equal(cliEpoch.Add(time.Hour-10*time.Second)) || !cur.refreshAt.Equal(cliEpoch.Add(30*time.Minute)) {
		t.Fatalf("useUntil +%v, refreshAt +%v; want capped at an hour", cur.useUntil.Sub(clk.Now()), cur.refreshAt.Sub(clk.Now()))
	}
}

func TestTokenSourceInvalidate(t *testing.T) {
	ts, fa, clk := cliNewSource(t, 0.5)
	ctx := cliCtx(t)
	first, _ := ts.Token(ctx, "billing")

	ts.Invalidate("billing", first) // too young: kept
	if tok, _ := ts.Token(ctx, "billing"); tok != first {
		t.Fatalf("a token younger than the minimum age was dropped")
	}
	clk.Advance(DefaultMinInvalidateAge)
	ts.Invalidate("billing", "some.other.token") // not the cached one: kept
	ts.Invalidate("pricing", first)              // unknown audience: ignored
	if tok, _ := ts.Token(ctx, "billing"); tok != first || fa.calls.Load() != 1 {
		t.Fatalf("Invalidate dropped a token it was not given")
	}
	ts.Invalidate("billing", first)
	tok, err := ts.Token(ctx, "billing")
	if err != nil || tok != cliToken("billing", 2) || fa.calls.Load() != 2 {
		t.Fatalf("after Invalidate Token = %q, %v (%d calls); want a fresh token", tok, err, fa.calls.Load())
	}
}

func TestTokenSourceCloseStopsEverything(t *testing.T) {
	ts, fa, _ := cliNewSource(t, 0.5)
	ctx := cliCtx(t)
	for _, aud := range []string{"a", "b", "c"} {
		if _, err := ts.Token(ctx, aud); err != nil {
			t.Fatal(err)
		}
	}
	gate := make(chan struct{})
	fa.setGate(gate) // never opened: Close must cancel the call
	errc := make(chan error, 1)
	go func() {
		_, err := ts.Token(ctx, "d")
		errc <- err
	}()
	<-fa.started
	<-fa.started
	<-fa.started
	<-fa.started
	if ts.live.Load() < 4 {
		t.Fatalf("live goroutines = %d, want refreshers and a call", ts.live.Load())
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	cliAssertUnavailable(t, <-errc)
	if n := ts.live.Load(); n != 0 {
		t.Fatalf("%d goroutines still running after Close", n)
	}
	if g := cliOurGoroutines(); len(g) > 0 {
		t.Fatalf("goroutines left after Close:\n%s", strings.Join(g, "\n\n"))
	}
	_, err := ts.Token(ctx, "a")
	cliAssertUnavailable(t, err)
	if !errors.Is(err, errTokenSourceClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := ts.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTokenSourceBoundsAudiences(t *testing.T) {
	ts, _, _ := cliNewSource(t, 0.5)
	ctx := cliCtx(t)
	_, err := ts.Token(ctx, "")
	cliAssertUnavailable(t, err)
	_, err = ts.Token(ctx, strings.Repeat("a", maxAudienceLength+1))
	cliAssertUnavailable(t, err)
	// Fill the table without IssueToken calls.
	ts.mu.Lock()
	full := make(map[string]*tsEntry, MaxAudiences)
	for i := range MaxAudiences {
		full[fmt.Sprint("aud", i)] = &tsEntry{}
	}
	ts.entries.Store(&full)
	ts.mu.Unlock()
	_, err = ts.Token(ctx, "one-too-many")
	cliAssertUnavailable(t, err)
	if !errors.Is(err, errTooManyAudiences) {
		t.Fatalf("cause = %v", err)
	}
}

func TestNewTokenSourceRefusesBadArguments(t *testing.T) {
	fa := newCliFakeAuth(SystemClock)
	cred := ClientSecret("orders", "cs_x")
	for name, f := range map[string]func() (TokenSource, error){
		"nil client":     func() (TokenSource, error) { return NewTokenSource(nil, cred) },
		"nil credential": func() (TokenSource, error) { return NewTokenSource(cliStartAuth(t, fa), nil) },
		"fractional": func() (TokenSource, error) {
			return NewTokenSource(cliStartAuth(t, fa), cred, WithLifetime(1500*time.Millisecond))
		},
		"backoff inverted": func() (TokenSource, error) {
			return NewTokenSource(cliStartAuth(t, fa), cred, WithBackoff(time.Minute, time.Second))
		},
		"zero timeout": func() (TokenSource, error) { return NewTokenSource(cliStartAuth(t, fa), cred, WithIssueTimeout(0)) },
		"negative lifetime": func() (TokenSource, error) {
			return NewTokenSource(cliStartAuth(t, fa), cred, WithLifetime(-time.Second))
		},
	} {
		if ts, err := f(); err == nil {
			_ = ts.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPrivateKeyJWTCredential(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := newCliFakeClock()
	clk.now = time.Now().Truncate(time.Second) // assertions are checked against a real-looking time
	fa := newCliFakeAuth(clk)
	ts, err := NewTokenSource(cliStartAuth(t, fa), PrivateKeyJWT("orders", priv, "k1", "https://callsign.example"), WithTokenSourceClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ts.Close() })
	ctx := cliCtx(t)
	for _, aud := range []string{"billing", "pricing"} {
		if _, err := ts.Token(ctx, aud); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, req := range fa.requests() {
		a := req.GetClientAssertion()
		p, err := token.ParseAssertion(a)
		if err != nil {
			t.Fatalf("ParseAssertion: %v", err)
		}
		if err := p.VerifySignature(token.Key{ID: "k1", Algorithm: token.EdDSA, Public: pub}); err != nil {
			t.Fatalf("signature: %v", err)
		}
		c, err := p.AssertionClaims("https://callsign.example", clk.Now(), 0, 60*time.Second)
		if err != nil {
			t.Fatalf("claims: %v", err)
		}
		if c.Subject != "orders" || c.Expiry.Sub(c.IssuedAt) > 60*time.Second || seen[c.ID] {
			t.Fatalf("assertion claims %+v (jti seen before: %v)", c, seen[c.ID])
		}
		seen[c.ID] = true
	}
	if len(seen) != 2 {
		t.Fatalf("%d assertions, want one per call", len(seen))
	}
}

func TestCredentialsNeverShowSecrets(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	for _, c := range []Credential{ClientSecret("orders", "cs_topsecret"), PrivateKeyJWT("orders", priv, "k1", "iss")} {
		leaks := []string{"topsecret", hex.EncodeToString(priv.Seed()), strings.Trim(fmt.Sprintf("%d", priv.Seed()[:8]), "[]")}
		for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %x", c, c, c, c, c)} {
			if slices.ContainsFunc(leaks, func(l string) bool { return strings.Contains(s, l) }) || !strings.Contains(s, "orders") {
				t.Fatalf("credential printed as %q", s)
			}
		}
	}
}

func TestBadCredentialFailsClosed(t *testing.T) {
	fa := newCliFakeAuth(SystemClock)
	for name, cred := range map[string]Credential{
		"short key":     PrivateKeyJWT("orders", make([]byte, 10), "k1", "iss"),
		"no kid":        PrivateKeyJWT("orders", make([]byte, ed25519.PrivateKeySize), "", "iss"),
		"empty secret":  ClientSecret("orders", ""),
		"huge secret":   ClientSecret("orders", strings.Repeat("x", maxSecretLength+1)),
		"empty account": ClientSecret("", "cs_x"),
	} {
		ts, err := NewTokenSource(cliStartAuth(t, fa), cred)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ts.Token(cliCtx(t), "billing")
		_ = ts.Close()
		cliAssertUnavailable(t, err)
		if !errors.Is(err, errBadCredential) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if n := fa.calls.Load(); n != 0 {
		t.Fatalf("IssueToken was called %d times with a bad credential", n)
	}
}

func TestStaticTokenSource(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"billing": "a.b.c"})
	if tok, err := ts.Token(context.Background(), "billing"); err != nil || tok != "a.b.c" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	_, err := ts.Token(context.Background(), "pricing")
	cliAssertUnavailable(t, err)
	ts.Invalidate("billing", "a.b.c")
	if tok, _ := ts.Token(context.Background(), "billing"); tok != "a.b.c" {
		t.Fatal("Invalidate changed a static source")
	}
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBackoffWait(t *testing.T) {
	for _, tc := range []struct {
		n    int
		r    float64
		want time.Duration
	}{
		{1, 0.5, time.Second},
		{2, 0.5, 2 * time.Second},
		{3, 0.5, 4 * time.Second},
		{10, 0.5, 30 * time.Second},
		{1000, 0.5, 30 * time.Second},
		{1, 0, 800 * time.Millisecond},
		{2, 0.999999, 2399999 * time.Microsecond},
		{10, 0.999999, 30 * time.Second}, // never above the cap
	} {
		got := backoffWait(tc.n, time.Second, 30*time.Second, tc.r)
		if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("backoffWait(%d, r=%v) = %v, want %v", tc.n, tc.r, got, tc.want)
		}
	}
}

func TestTokenSourceHerd(t *testing.T) {
	// 1,000 first calls released together, without holding IssueToken: the
	// calls that find the flight finished must not start another.
	const herd, rounds = 1000, 50
	fa := newCliFakeAuth(SystemClock)
	client := cliStartAuth(t, fa)
	ctx := cliCtx(t)
	for round := range rounds {
		ts, err := NewTokenSource(client, ClientSecret("orders", "cs_secret"))
		if err != nil {
			t.Fatal(err)
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range herd {
			wg.Go(func() {
				<-start
				if _, err := ts.Token(ctx, "billing"); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		_ = ts.Close()
		if n := fa.calls.Load(); n != int32(round+1) {
			t.Fatalf("round %d: %d IssueToken calls in all, want %d", round, n, round+1)
		}
	}
}

// cliMetric reads one counter sample of reg (0 when absent).
func cliMetric(t *testing.T, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestTokenSourceMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	done := make(chan string, 8)
	ts, fa, clk := cliNewSource(t, 0.5, WithTokenSourceMetrics(reg), WithBackoff(time.Hour, time.Hour),
		withTokenSourceHook(func(a string) { done <- a }))
	ctx := cliCtx(t)
	first, _ := ts.Token(ctx, "billing")
	<-done
	_, _ = ts.Token(ctx, "billing")
	clk.WaitForDeadline(t, cliEpoch.Add(150*time.Second))
	clk.Advance(150 * time.Second)
	<-done
	ts.Invalidate("billing", first) // no longer cached: not counted
	second, _ := ts.Token(ctx, "billing")
	clk.Advance(DefaultMinInvalidateAge)
	ts.Invalidate("billing", second)
	fa.setFail(status.Error(codes.Unavailable, "down"))
	_, err := ts.Token(ctx, "billing")
	cliAssertUnavailable(t, err)
	<-done
	_, err = ts.Token(ctx, "billing") // backing off
	cliAssertUnavailable(t, err)

	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{MetricTokenFetches, []string{"trigger", "call", "result", "ok"}, 1},
		{MetricTokenFetches, []string{"trigger", "refresh", "result", "ok"}, 1},
		{MetricTokenFetches, []string{"trigger", "call", "result", "error"}, 1},
		{MetricTokenFetches, []string{"trigger", "refresh", "result", "error"}, 0},
		{MetricTokenInvalidations, nil, 1},
		{MetricTokenUnavailable, nil, 2},
	} {
		if got := cliMetric(t, reg, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, err := NewTokenSource(cliStartAuth(t, fa), ClientSecret("orders", "cs_x"), WithTokenSourceMetrics(reg)); err == nil {
		t.Fatal("registering the metrics twice was accepted")
	}
}

func TestCheckIssuedUsesWallClock(t *testing.T) {
	now := time.Now() // carries a monotonic reading
	tok, ok := checkIssued(&callsignv1.IssueTokenResponse{
		Token: cliToken("billing", 1), TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE,
		ExpireTime: timestamppb.New(now.Add(5 * time.Minute)),
	}, callsignv1.TokenType_TOKEN_TYPE_SERVICE, now, 0.5)
	if !ok {
		t.Fatal("rejected")
	}
	for _, at := range []time.Time{tok.useUntil, tok.refreshAt, tok.obtained} {
		if at != at.Round(0) {
			t.Fatalf("%v carries a monotonic reading: a sleeping machine would serve an expired token", at)
		}
	}
}

func TestTokenSourceConcurrentChurn(t *testing.T) {
	// Callers, invalidations, refreshes, failures and the clock all move at
	// once; run under -race. Every answer is a well-formed token or the
	// fail-closed error, and Close leaves nothing running.
	ts, fa, clk := cliNewSource(t, 0.5, WithBackoff(time.Second, 4*time.Second), WithMinInvalidateAge(0))
	ctx := cliCtx(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var answers, failures atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			aud := []string{"a", "b", "c"}[g%3]
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok, err := ts.Token(ctx, aud)
				answers.Add(1)
				if err != nil {
					failures.Add(1)
				}
				switch {
				case err == nil && !wellFormedJWS(tok):
					t.Errorf("malformed token %q", tok)
				case err != nil && status.Code(err) != codes.Unavailable:
					t.Errorf("error %v", err)
				case err == nil && g%2 == 0:
					ts.Invalidate(aud, tok)
				}
				runtime.Gosched()
			}
		})
	}
	for i := range 200 {
		if i%50 == 10 {
			fa.setFail(status.Error(codes.Unavailable, "down"))
		}
		if i%50 == 20 {
			fa.setFail(nil)
		}
		clk.Advance(7 * time.Second)
		seen := answers.Load()
		cliWaitFor(t, "callers to make progress", func() bool { return answers.Load() >= seen+16 })
	}
	close(stop)
	wg.Wait()
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	if n := ts.live.Load(); n != 0 {
		t.Fatalf("%d goroutines left", n)
	}
	if fa.calls.Load() < 100 || failures.Load() == 0 {
		t.Fatalf("%d IssueToken calls, %d failed answers: the churn did not happen", fa.calls.Load(), failures.Load())
	}
}

func TestTokenSourceLogsFailuresWithoutSecrets(t *testing.T) {
	var buf strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(cliLockedWriter{&mu, &buf}, nil))
	ts, fa, _ := cliNewSource(t, 0.5, WithTokenSourceLogger(logger))
	fa.setFail(cliRefusal(codes.PermissionDenied, ErrorDomain, "AUDIENCE_NOT_GRANTED"))
	_, err := ts.Token(cliCtx(t), "billing")
	cliAssertUnavailable(t, err)
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, want := range []string{"audience=billing", "code=PermissionDenied", "reason=AUDIENCE_NOT_GRANTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "cs_secret") || strings.Contains(out, "refused") {
		t.Errorf("log %q holds the secret or the server's message", out)
	}
}

type cliLockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (w cliLockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
