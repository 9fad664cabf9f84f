package faults

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/callsign-dev/callsign/interceptor"
)

// TestVerifierStartedWhileCallsigndDown starts a verifier while nothing
// answers at callsignd's address: it reports not ready and refuses every call
// (Unavailable, KEYS_UNAVAILABLE), even one with a token callsignd really
// issued; when callsignd comes up at that address, it loads the keys by
// itself and accepts the same token.
func TestVerifierStartedWhileCallsigndDown(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "", "")
	cc := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	resp, err := d.issue(ctx, t, cc, callerAccount, verifierAudience, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := resp.GetToken()
	d.kill(t)

	addr := freeAddr(t)
	v := startVerifier(t, addr, verifierConfig{noWait: true, keyOpts: []interceptor.KeySourceOption{interceptor.WithRefreshInterval(time.Second)}})
	vc := v.client(t, nil)
	deadline := time.Now().Add(2 * time.Second)
	calls := 0
	for time.Now().Before(deadline) {
		if v.ready() {
			t.Fatal("the verifier reports ready without keys")
		}
		err := callWith(vc, tok)
		if status.Code(err) != codes.Unavailable || reasonOf(err) != "KEYS_UNAVAILABLE" {
			t.Fatalf("call while callsignd is down: %v", err)
		}
		calls++
		time.Sleep(50 * time.Millisecond)
	}
	if v.svc.runs.Load() != 0 {
		t.Fatalf("the handler ran %d times without keys", v.svc.runs.Load())
	}
	if v.fetcher.calls.Load() < 2 {
		t.Fatalf("the key source tried %d times in 2 s", v.fetcher.calls.Load())
	}

	// callsignd comes up where the verifier looks for it.
	d.args = []string{"--grpc-addr", addr}
	d.start(t)
	start := time.Now()
	if !waitFor(10*time.Second, v.ready) {
		t.Fatal("the verifier did not load keys after callsignd came up")
	}
	t.Logf("refused %d calls while down; ready %v after callsignd came up", calls, time.Since(start).Round(time.Millisecond))
	if err := callWith(vc, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// TestCallsigndDown stops callsignd under traffic: the client's cached token
// keeps working until it expires and the verifier keeps its last good keys;
// past the token's expiry the client fails closed (Unavailable); when
// callsignd returns, both recover by themselves.
func TestCallsigndDown(t *testing.T) {
	d := startDaemon(t, t.TempDir(), fastConfig, "")
	v := startVerifier(t, d.info.GRPCAddr, verifierConfig{})
	ts := d.tokenSource(t, d.dial(t), interceptor.WithBackoff(100*time.Millisecond, 500*time.Millisecond))
	vc := v.client(t, ts)
	if err := callWith(vc, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	tok, err := ts.Token(ctx, verifierAudience)
	if err != nil {
		t.Fatal(err)
	}
	exp := expiryOf(t, tok)
	d.kill(t)
	killedAt := time.Now()

	// Until shortly before the cached token expires, every call passes.
	ok := 0
	for time.Until(exp) > 1500*time.Millisecond {
		if err := callWith(vc, ""); err != nil {
			t.Fatalf("%v after callsignd went down (token expires in %v): %v", time.Since(killedAt).Round(time.Millisecond), time.Until(exp).Round(time.Millisecond), err)
		}
		ok++
		time.Sleep(50 * time.Millisecond)
	}
	if !v.ready() {
		t.Fatal("the verifier dropped its last good keys")
	}
	// Past the expiry the client has no token to send and fails closed.
	time.Sleep(time.Until(exp) + time.Second)
	err = callWith(vc, "")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("after the cached token expired with callsignd down: %v, want Unavailable", err)
	}
	runs := v.svc.runs.Load()

	d.restart(t)
	back := time.Now()
	if !waitFor(15*time.Second, func() bool { return callWith(vc, "") == nil }) {
		t.Fatalf("no recovery 15 s after callsignd returned: %v", callWith(vc, ""))
	}
	if v.svc.runs.Load() <= runs {
		t.Fatal("the handler did not run after recovery")
	}
	t.Logf("%d calls passed while callsignd was down; recovered %v after it returned", ok, time.Since(back).Round(time.Millisecond))
}
