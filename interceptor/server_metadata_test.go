package interceptor

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// srvDirect is a Server called directly, without a transport, so that
// metadata a grpc client would refuse to send can be tried.
type srvDirect struct {
	clock  *srvClock
	server *Server
	audit  *srvAudit
	keys   srvKeys
	unary  grpc.UnaryServerInterceptor
}

// srvFixedKeys is a key derived from a fixed seed: Ed25519 signatures are
// deterministic, so tokens signed with it at srvT0 are the same in every run
// and can live in a fuzz corpus.
func srvFixedKeys(t testing.TB) srvKeys {
	t.Helper()
	priv := ed25519.NewKeyFromSeed([]byte("callsign interceptor fuzz seed.."))
	k := token.Key{ID: "k1", Algorithm: token.EdDSA, Public: priv.Public()}
	jwks, err := token.MarshalJWKS([]token.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	return srvKeys{signer: token.Signer{Key: k, Private: priv}, jwks: jwks}
}

// srvFixedTokens are the one valid service token and user token of
// srvFixedKeys at srvT0.
func srvFixedTokens(t testing.TB, k srvKeys) (svc, user string) {
	t.Helper()
	c := srvSvcClaims(srvT0, "orders", "test.read", "test.write")
	c.ID = "AAAAAAAAAAAAAAAAAAAAAA"
	u := srvUserClaims(srvT0, "u1", "t1")
	u.ID = "BBBBBBBBBBBBBBBBBBBBBB"
	return k.sign(t, c), k.sign(t, u)
}

func newSrvDirect(t testing.TB, keys srvKeys, opts ...ServerOption) *srvDirect {
	t.Helper()
	d := &srvDirect{clock: newSrvClock(), audit: &srvAudit{}, keys: keys}
	src, err := NewStaticKeySource(keys.jwks, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]ServerOption{WithIssuer(srvIssuer), WithAudience(srvAudience), WithClock(d.clock), WithAuditSink(d.audit)}, opts...)
	d.server, err = NewServer(src, opts...)
	if err != nil {
		t.Fatal(err)
	}
	d.unary = d.server.UnaryServerInterceptor()
	return d
}

// call runs the unary interceptor for method with md as incoming metadata and
// reports whether the handler ran.
func (d *srvDirect) call(method string, md metadata.MD) (bool, error) {
	ctx := metadata.NewIncomingContext(context.Background(), md)
	ran := false
	_, err := d.unary(ctx, "req", &grpc.UnaryServerInfo{FullMethod: srvTestSvc + method}, func(context.Context, any) (any, error) {
		ran = true
		return "resp", nil
	})
	return ran, err
}

func TestBearerToken(t *testing.T) {
	const tok = "aaa.bbb.ccc"
	tests := []struct {
		name string
		vals []string
		want callsignv1.Reason
		tok  string
	}{
		{"none", nil, callsignv1.Reason_REASON_TOKEN_MISSING, ""},
		{"one", []string{"Bearer " + tok}, 0, tok},
		{"lower", []string{"bearer " + tok}, 0, tok},
		{"mixed", []string{"bEaReR " + tok}, 0, tok},
		{"two", []string{"Bearer " + tok, "Bearer " + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"empty", []string{""}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"scheme only", []string{"Bearer"}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"scheme and space", []string{"Bearer "}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"two spaces", []string{"Bearer  " + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"tab", []string{"Bearer\t" + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"no space", []string{"Bearer" + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"basic", []string{"Basic " + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"bearerx", []string{"Bearerx " + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"non-ASCII scheme", []string{"Beärer " + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"long s folds in Unicode only", []string{"Bearer" + "\u017f" + tok}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
		{"at the cap", []string{"Bearer " + strings.Repeat("a", token.MaxTokenSize)}, 0, strings.Repeat("a", token.MaxTokenSize)},
		{"over the cap", []string{"Bearer " + strings.Repeat("a", token.MaxTokenSize+1)}, callsignv1.Reason_REASON_TOKEN_MALFORMED, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, r := bearerToken(tt.vals)
			if r != tt.want || got != tt.tok {
				t.Fatalf("bearerToken = %q, %v; want %q, %v", got, r, tt.tok, tt.want)
			}
		})
	}
}

// TestServerHostileMetadata sends metadata that a grpc-go client refuses to
// produce, straight to the interceptor.
func TestServerHostileMetadata(t *testing.T) {
	keys := srvFixedKeys(t)
	svc, user := srvFixedTokens(t, keys)
	d := newSrvDirect(t, keys)
	tests := []struct {
		name string
		md   metadata.MD
		want string
	}{
		{"valid", metadata.MD{MDAuthorization: {"Bearer " + svc}}, ""},
		{"tab", metadata.MD{MDAuthorization: {"Bearer\t" + svc}}, "TOKEN_MALFORMED"},
		{"non-ASCII in token", metadata.MD{MDAuthorization: {"Bearer " + svc[:20] + "é" + svc[20:]}}, "TOKEN_MALFORMED"},
		{"NUL", metadata.MD{MDAuthorization: {"Bearer " + svc + "\x00"}}, "TOKEN_MALFORMED"},
		{"newline", metadata.MD{MDAuthorization: {"Bearer " + svc + "\n"}}, "TOKEN_MALFORMED"},
		{"CRLF injection", metadata.MD{MDAuthorization: {"Bearer " + svc + "\r\nx-user-token: " + user}}, "TOKEN_MALFORMED"},
		{"padding", metadata.MD{MDAuthorization: {"Bearer " + svc + "="}}, "TOKEN_MALFORMED"},
		{"three values", metadata.MD{MDAuthorization: {"Bearer " + svc, "", ""}}, "TOKEN_MALFORMED"},
		{"empty list", metadata.MD{MDAuthorization: {}}, "TOKEN_MISSING"},
		{"upper-case key", metadata.MD{"Authorization": {"Bearer " + svc}}, ""},
		{"user token NUL", metadata.MD{MDAuthorization: {"Bearer " + svc}, MDUserToken: {user + "\x00"}}, "USER_TOKEN_INVALID"},
		{"user token oversized", metadata.MD{MDAuthorization: {"Bearer " + svc}, MDUserToken: {strings.Repeat("a", token.MaxTokenSize+1)}}, "USER_TOKEN_INVALID"},
		{"user token empty", metadata.MD{MDAuthorization: {"Bearer " + svc}, MDUserToken: {""}}, "USER_TOKEN_INVALID"},
		{"user token list empty", metadata.MD{MDAuthorization: {"Bearer " + svc}, MDUserToken: {}}, ""},
		{"header list over 64 KiB", metadata.MD{MDAuthorization: {"Bearer " + svc}, "x-filler": {strings.Repeat("f", MaxHeaderListSize)}}, "TOKEN_MALFORMED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fresh server each time, so that no case is answered from the
			// cache filled by another.
			d = newSrvDirect(t, keys)
			ran, err := d.call("Scoped", tt.md)
			_, reason := srvReason(t, err)
			if reason != tt.want {
				t.Fatalf("reason %q, want %q", reason, tt.want)
			}
			if ran != (tt.want == "") {
				t.Fatalf("handler ran = %v", ran)
			}
			if recs := d.audit.take(); len(recs) != 1 {
				t.Fatalf("%d audit records", len(recs))
			}
		})
	}
}

// TestServerCacheStillChecks shows that a cache hit does not skip revocation,
// key removal or the rule.
func TestServerCacheStillChecks(t *testing.T) {
	keys := srvFixedKeys(t)
	svc, _ := srvFixedTokens(t, keys)
	src := &srvSwapSource{}
	snap, err := NewKeySnapshot(keys.jwks, EdDSA, Revocation{})
	if err != nil {
		t.Fatal(err)
	}
	src.set(snap)
	clock := newSrvClock()
	s, err := NewServer(src, WithIssuer(srvIssuer), WithAudience(srvAudience), WithClock(clock), WithAuditSink(&srvAudit{}))
	if err != nil {
		t.Fatal(err)
	}
	unary := s.UnaryServerInterceptor()
	call := func(method string) string {
		ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{MDAuthorization: {"Bearer " + svc}})
		_, err := unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: srvTestSvc + method}, func(context.Context, any) (any, error) { return nil, nil })
		_, r := srvReason(t, err)
		return r
	}
	if r := call("Scoped"); r != "" {
		t.Fatalf("first call: %s", r)
	}
	if s.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens", s.cache.len())
	}
	if r := call("NoRule"); r != "NO_POLICY" {
		t.Fatalf("cached token on a method without rule: %s", r)
	}
	revoked, _ := NewKeySnapshot(keys.jwks, EdDSA, Revocation{TokenIDs: []string{"AAAAAAAAAAAAAAAAAAAAAA"}})
	src.set(revoked)
	if r := call("Scoped"); r != "TOKEN_REVOKED" {
		t.Fatalf("revoked after caching: %s", r)
	}
	disabled, _ := NewKeySnapshot(keys.jwks, EdDSA, Revocation{DisabledAccounts: []string{"orders"}})
	src.set(disabled)
	if r := call("Scoped"); r != "ACCOUNT_DISABLED" {
		t.Fatalf("disabled after caching: %s", r)
	}
	other := newSrvKeys(t, "k2")
	rotated, _ := NewKeySnapshot(other.jwks, EdDSA, Revocation{})
	src.set(rotated)
	if r := call("Scoped"); r != "KEY_UNKNOWN" {
		t.Fatalf("key removed after caching: %s", r)
	}
	src.set(snap)
	if r := call("Scoped"); r != "" {
		t.Fatalf("restored: %s", r)
	}
	clock.Advance(5*time.Minute + DefaultSkew)
	if r := call("Scoped"); r != "TOKEN_EXPIRED" {
		t.Fatalf("after expiry: %s", r)
	}
	src.fail = true
	if r := call("Scoped"); r != "KEYS_UNAVAILABLE" {
		t.Fatalf("no keys: %s", r)
	}
}

// srvSwapSource is a KeySource whose snapshot tests replace.
type srvSwapSource struct {
	snap *KeySnapshot
	fail bool
}

func (s *srvSwapSource) set(k *KeySnapshot) { s.snap = k }

func (s *srvSwapSource) KeySnapshot() (*KeySnapshot, error) {
	if s.fail {
		return nil, ErrKeysUnavailable
	}
	return s.snap, nil
}

// FuzzBearerFromMetadata checks the metadata step on arbitrary values
// (separated by newlines in the input): it never panics, and whatever it
// accepts is exactly one value of the form "Bearer" (any case), one space,
// then a non-empty token starting with something other than a space, within
// the size cap.
func FuzzBearerFromMetadata(f *testing.F) {
	for _, s := range []string{"", "Bearer a.b.c", "bearer a.b.c\nBearer a.b.c", "Bearer  a.b.c", "BEARER x", "Basic x", "Bearer", "Bearer ", "Beärer x"} {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, in string, split bool) {
		var vals []string
		if split {
			vals = strings.Split(in, "\n")
			if in == "" {
				vals = nil
			}
		} else {
			vals = []string{in}
		}
		tok, r := bearerToken(vals)
		switch r {
		case callsignv1.Reason_REASON_UNSPECIFIED:
			v := vals[0]
			if len(vals) != 1 || !strings.EqualFold(v[:6], "bearer") || v[6] != ' ' || tok != v[7:] ||
				tok == "" || tok[0] == ' ' || len(v) > MaxAuthorizationSize {
				t.Fatalf("accepted %q as %q", vals, tok)
			}
			for i := range 6 {
				if v[i] >= 0x80 {
					t.Fatalf("accepted a non-ASCII scheme %q", v)
				}
			}
		case callsignv1.Reason_REASON_TOKEN_MISSING:
			if len(vals) != 0 {
				t.Fatalf("missing for %q", vals)
			}
		case callsignv1.Reason_REASON_TOKEN_MALFORMED:
			if tok != "" {
				t.Fatalf("token returned with an error")
			}
		default:
			t.Fatalf("reason %v", r)
		}
	})
}

// FuzzInterceptor sends random metadata through the unary interceptor: the
// handler runs only for the one valid service token (with, optionally, the
// one valid user token), and every refusal is a status with a callsign reason.
func FuzzInterceptor(f *testing.F) {
	keys := srvFixedKeys(f)
	svc, user := srvFixedTokens(f, keys)
	f.Add("Bearer "+svc, "", "", "")
	f.Add("bearer "+svc, user, "x-correlation-id", "c1")
	f.Add("Bearer "+svc+"x", user, "", "")
	f.Add("Bearer "+svc[:len(svc)-2], "", "", "")
	f.Add("", user, "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("Bearer a.b.c", "a.b.c", "idempotency-key", "k")
	d := newSrvDirect(f, keys)
	methods := []string{"Scoped", "Public", "NoRule", "BrokenRule", "UserRequired", "Idempotent", "MultiScoped"}
	f.Fuzz(func(t *testing.T, authz, userTok, key, value string) {
		if len(authz)+len(userTok)+len(key)+len(value) > 3*token.MaxTokenSize {
			t.Skip("oversized input: covered by TestServerHostileMetadata")
		}
		md := metadata.MD{}
		if authz != "" {
			md[MDAuthorization] = strings.Split(authz, "\n")
		}
		if userTok != "" {
			md[MDUserToken] = strings.Split(userTok, "\n")
		}
		if key != "" {
			md[strings.ToLower(key)] = append(md[strings.ToLower(key)], value)
		}
		for _, m := range methods {
			ran, err := d.call(m, md)
			if ran {
				vals := md[MDAuthorization]
				okSvc := len(vals) == 1 && len(vals[0]) > 7 && vals[0][7:] == svc
				okUser := len(md[MDUserToken]) == 0 || (len(md[MDUserToken]) == 1 && md[MDUserToken][0] == user)
				okPublic := m == "Public" && len(vals) == 0
				if !okUser || (!okSvc && !okPublic) {
					t.Fatalf("%s: handler ran for %q", m, md)
				}
				continue
			}
			if _, ok := status.FromError(err); !ok {
				t.Fatalf("%s: not a status: %v", m, err)
			}
			if _, ok := ReasonFromError(err); !ok {
				t.Fatalf("%s: no reason: %v", m, err)
			}
		}
		d.audit.take()
	})
}
