package attack

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/callsign-dev/callsign/interceptor"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestCatalogue runs every attack of the catalogue against a real grpc-go
// server, once on a unary RPC and once on a streaming RPC, and checks the
// code, the reason, that the handler did not run, exactly one audit record,
// and that nothing the attacker sent comes back in the status or appears in
// the log or the audit record. A loopback HTTP listener, named in jku and x5u
// headers, proves that no key is ever fetched from a token's say-so.
func TestCatalogue(t *testing.T) {
	var fetches atomic.Int64
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		http.Error(w, "no", http.StatusNotFound)
	}))
	t.Cleanup(hs.Close)

	e := newEnv(t)
	e.kit.fetchURL = hs.URL + "/jwks.json"
	rows := catalogue()
	names := map[string]bool{}
	for _, row := range rows {
		if names[row.name] {
			t.Fatalf("two rows named %q", row.name)
		}
		names[row.name] = true
		if row.on == (target{}) {
			row.on = onScoped
		}
		for _, stream := range []bool{false, true} {
			kind := "unary"
			if stream {
				kind = "stream"
			}
			t.Run(row.name+"/"+kind, func(t *testing.T) {
				md := row.md(e.kit)
				var out outcome
				if row.raw {
					out = e.rawOutcome(row.on, stream, md)
				} else {
					out = e.call(row.on, stream, md)
				}
				checkOutcome(t, e, row, stream, md, out)
			})
		}
	}
	if n := fetches.Load(); n != 0 {
		t.Errorf("the jku/x5u listener was fetched %d times", n)
	}
	if len(rows) < 150 {
		t.Errorf("the catalogue has %d rows", len(rows))
	}
}

// rawOutcome sends md through the raw HTTP/2 client.
func (e *env) rawOutcome(tg target, stream bool, md metadata.MD) outcome {
	e.rec.take()
	before := e.svc.runs.Load()
	var hdrs [][2]string
	for k, vs := range md {
		for _, v := range vs {
			hdrs = append(hdrs, [2]string{k, v})
		}
	}
	path := svcPath + tg.unary
	if stream {
		path = svcPath + tg.stream
	}
	st, err := rawCall(e.addr, path, hdrs)
	if err == nil {
		err = st.Err()
	}
	return e.finish(before, "", err)
}

func checkOutcome(t *testing.T, e *env, row attack, stream bool, md metadata.MD, out outcome) {
	t.Helper()
	if row.transport {
		// Refused below the interceptors: no handler, no audit record, and
		// no echo in whatever the transport answered.
		if out.err == nil {
			t.Fatal("the call succeeded")
		}
		if st, ok := status.FromError(out.err); ok && st.Code() == codes.OK {
			t.Fatal("the call succeeded")
		}
		if out.runs != 0 {
			t.Errorf("the handler ran %d times", out.runs)
		}
		if len(out.recs) != 0 {
			t.Errorf("%d audit records for a request the transport refused", len(out.recs))
		}
		t.Logf("refused by the transport: %v", out.err)
		secrets := secretsOf(md, nil)
		assertNoEcho(t, "the answer", out.err.Error(), secrets)
		assertNoEcho(t, "the log", out.log, secrets)
		return
	}
	code, reason, text := reasonOf(t, out.err)
	if code != row.code || reason != row.reason {
		t.Fatalf("got %v %s, want %v %s (%v)", code, reason, row.code, row.reason, out.err)
	}
	if len(out.recs) != 1 {
		t.Fatalf("%d audit records, want exactly 1: %+v", len(out.recs), out.recs)
	}
	rec := out.recs[0]
	if rec.Stream != stream {
		t.Errorf("audit record Stream = %v", rec.Stream)
	}
	if row.code == codes.OK {
		if out.runs != 1 || out.payload == "" {
			t.Fatalf("the handler ran %d times, answered %q", out.runs, out.payload)
		}
		if rec.Decision != interceptor.DecisionAllow {
			t.Errorf("audit decision %v", rec.Decision)
		}
		if got := e.svc.lastTenant(); got != row.tenant {
			t.Errorf("the handler saw tenant %q, want %q", got, row.tenant)
		}
		return
	}
	if out.runs != 0 {
		t.Errorf("the handler ran %d times", out.runs)
	}
	if rec.Decision != interceptor.DecisionDeny || interceptor.ReasonName(rec.Reason) != row.reason || rec.Code != row.code {
		t.Errorf("audit record %v %s %v, want deny %s %v", rec.Decision, interceptor.ReasonName(rec.Reason), rec.Code, row.reason, row.code)
	}
	if !strings.Contains(out.log, `"reason":"`+row.reason+`"`) {
		t.Errorf("the log has no denial with reason %s: %s", row.reason, out.log)
	}
	secrets := secretsOf(md, nil)
	assertNoEcho(t, "the status", text, secrets)
	assertNoEcho(t, "the log", out.log, secrets)
	assertNoEcho(t, "the audit record", fmt.Sprintf("%+v", rec), secrets)
}

// TestEchoCheckerCatches shows that the echo check can fail: an allowed call
// logs its verified caller and jti, and the checker finds them.
func TestEchoCheckerCatches(t *testing.T) {
	e := newEnv(t)
	md := metadata.Pairs("authorization", "Bearer "+e.kit.sign(svcHeader, svcClaims("echo-check-service").String()))
	out := e.call(onScoped, false, md)
	if out.err != nil {
		t.Fatal(out.err)
	}
	if !strings.Contains(out.log, "echo-check-service") {
		t.Fatalf("the captured log does not show the allowed call's caller: %s", out.log)
	}
}

// TestCachedTokenStillChecked shows that a verified token served from the
// cache is still checked against revocation, disabled accounts and the
// published keys on every call.
func TestCachedTokenStillChecked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *env, jti string)
		reason string
	}{
		{"revoked-jti", func(e *env, jti string) {
			rev := baseRevocation()
			rev.TokenIDs = append(rev.TokenIDs, jti)
			e.keys.set(t, e.kit.jwks, interceptor.EdDSA, rev)
		}, "TOKEN_REVOKED"},
		{"account-disabled", func(e *env, _ string) {
			rev := baseRevocation()
			rev.DisabledAccounts = append(rev.DisabledAccounts, "orders")
			e.keys.set(t, e.kit.jwks, interceptor.EdDSA, rev)
		}, "ACCOUNT_DISABLED"},
		{"account-tokens-revoked", func(e *env, _ string) {
			rev := baseRevocation()
			rev.RevokedBefore["orders"] = t0.Add(time.Second)
			e.keys.set(t, e.kit.jwks, interceptor.EdDSA, rev)
		}, "TOKEN_REVOKED"},
		{"key-removed", func(e *env, _ string) {
			other := newKit(t)
			other.priv = seededKey(9)
			jwks, err := token.MarshalJWKS([]token.Key{{ID: "k9", Algorithm: token.EdDSA, Public: other.priv.Public()}})
			if err != nil {
				t.Fatal(err)
			}
			e.keys.set(t, jwks, interceptor.EdDSA, baseRevocation())
		}, "KEY_UNKNOWN"},
	} {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tc.name, stream), func(t *testing.T) {
				e := newEnv(t)
				c := svcClaims("orders")
				jti := strings.Trim(c[5][1], `"`)
				md := metadata.Pairs("authorization", "Bearer "+e.kit.sign(svcHeader, c.String()))
				for range 2 { // the second call is a cache hit
					if out := e.call(onScoped, stream, md); out.err != nil || out.runs != 1 {
						t.Fatalf("before the change: %v, %d runs", out.err, out.runs)
					}
				}
				tc.change(e, jti)
				out := e.call(onScoped, stream, md)
				checkOutcome(t, e, attack{name: tc.name, code: codes.Unauthenticated, reason: tc.reason}, stream, md, out)
			})
		}
	}
}
