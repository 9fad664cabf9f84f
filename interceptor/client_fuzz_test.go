package interceptor

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// FuzzCheckIssued feeds arbitrary IssueToken responses, as received off the
// wire, to the response check.
func FuzzCheckIssued(f *testing.F) {
	now := cliEpoch
	for _, r := range []*callsignv1.IssueTokenResponse{
		{Token: cliToken("billing", 1), TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: timestamppb.New(now.Add(5 * time.Minute))},
		{Token: cliToken("user", 1), TokenType: callsignv1.TokenType_TOKEN_TYPE_USER, ExpireTime: timestamppb.New(now.Add(time.Hour * 99))},
		{Token: "a.b.c", TokenType: callsignv1.TokenType_TOKEN_TYPE_SERVICE, ExpireTime: &timestamppb.Timestamp{Seconds: -1 << 40}},
		{Token: "a.b.c\n", TokenType: 7, ExpireTime: &timestamppb.Timestamp{Nanos: -1}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, byte(1), 0.5)
		f.Add(b, byte(2), 0.0)
	}
	f.Fuzz(func(t *testing.T, data []byte, want byte, r float64) {
		var resp callsignv1.IssueTokenResponse
		if proto.Unmarshal(data, &resp) != nil {
			return
		}
		typ := callsignv1.TokenType(want % 3)
		tok, ok := checkIssued(&resp, typ, now, r)
		if !ok {
			return
		}
		switch {
		case !wellFormedJWS(tok.token), tok.bearer != "Bearer "+tok.token:
			t.Fatalf("accepted token %q", tok.token)
		case resp.GetTokenType() != typ || typ == callsignv1.TokenType_TOKEN_TYPE_UNSPECIFIED:
			t.Fatalf("accepted type %v for %v", resp.GetTokenType(), typ)
		case !tok.useUntil.After(now), tok.useUntil.After(now.Add(time.Hour)), tok.useUntil.After(tok.expiry):
			t.Fatalf("served until +%v (expiry +%v)", tok.useUntil.Sub(now), tok.expiry.Sub(now))
		case !tok.refreshAt.After(now), !tok.refreshAt.Before(tok.useUntil):
			t.Fatalf("refresh at +%v, served until +%v", tok.refreshAt.Sub(now), tok.useUntil.Sub(now))
		}
	})
}

// FuzzCallsignReason feeds arbitrary google.rpc.Status messages, as a server
// may send them, to the reason parser that decides on a retry.
func FuzzCallsignReason(f *testing.F) {
	for _, err := range []error{
		cliRefusal(codes.Unauthenticated, ErrorDomain, "TOKEN_EXPIRED"),
		cliRefusal(codes.Unauthenticated, ErrorDomain, "UNSPECIFIED"),
		cliRefusal(codes.Unauthenticated, "x", "KEY_UNKNOWN"),
		status.Error(codes.Unauthenticated, "plain"),
	} {
		st, _ := status.FromError(err)
		b, _ := proto.Marshal(st.Proto())
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var p spb.Status
		if proto.Unmarshal(data, &p) != nil {
			return
		}
		r, _, ok := callsignReasonProto(&p)
		_ = retryableRefusal(status.FromProto(&p).Err(), "test")
		if !ok {
			return
		}
		if r == callsignv1.Reason_REASON_UNSPECIFIED || callsignv1.Reason_name[int32(r)] == "" {
			t.Fatalf("reason %v", r)
		}
		found := false
		for i, d := range p.GetDetails() {
			if i >= maxDetailsInspected {
				break
			}
			var ei errdetails.ErrorInfo
			if d.GetTypeUrl() == errorInfoTypeURL && proto.Unmarshal(d.GetValue(), &ei) == nil &&
				ei.GetDomain() == ErrorDomain && "REASON_"+ei.GetReason() == r.String() {
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("reason %v not in the inspected details", r)
		}
	})
}

// FuzzClientTarget feeds arbitrary method names to the audience resolution.
func FuzzClientTarget(f *testing.F) {
	for _, m := range []string{"/callsign.test.v1.TestService/Scoped", "/callsign.v1.AuthService/IssueToken", "//", "/a/b/c", "/callsign.test.v1.TestService.Scoped/x"} {
		f.Add(m)
	}
	c := newClientAttacher(StaticTokenSource(nil), nil)
	f.Fuzz(func(t *testing.T, m string) {
		tg := c.target(m)
		if tg.err == nil && tg.audience == "" && !tg.public {
			t.Fatalf("%q: no audience and no error", m)
		}
		if tg.err != nil && !errors.Is(tg.err, errNoAudience) {
			t.Fatalf("%q: error %v, want the fixed one", m, tg.err)
		}
	})
}

// FuzzWellFormedJWS compares the token shape check with a plain restatement.
func FuzzWellFormedJWS(f *testing.F) {
	for _, s := range []string{"a.b.c", "a..c", ".b.c", "a.b.", "a.b", "a.b.c.d", "a.b=.c", "a.b.c\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= token.MaxTokenSize
		parts := strings.Split(s, ".")
		if len(parts) != 3 {
			want = false
		}
		for _, p := range parts {
			if p == "" || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
				want = false
			}
		}
		if got := wellFormedJWS(s); got != want {
			t.Fatalf("wellFormedJWS(%q) = %v, want %v", s, got, want)
		}
	})
}
