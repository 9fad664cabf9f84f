package interceptor

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestReasonCodes pins the code of every reason to DESIGN.md §2 and the
// comments of enum Reason.
func TestReasonCodes(t *testing.T) {
	want := map[codes.Code][]string{
		codes.Unauthenticated: {"TOKEN_MISSING", "TOKEN_MALFORMED", "SIGNATURE_INVALID", "TOKEN_EXPIRED", "TOKEN_NOT_YET_VALID",
			"LIFETIME_TOO_LONG", "KEY_UNKNOWN", "ISSUER_MISMATCH", "AUDIENCE_MISMATCH", "TYPE_MISMATCH", "TOKEN_REVOKED",
			"ACCOUNT_DISABLED", "USER_TOKEN_MISSING", "USER_TOKEN_INVALID", "CREDENTIAL_INVALID"},
		codes.PermissionDenied: {"SCOPE_MISSING", "CALLER_NOT_ALLOWED", "TENANT_MISSING", "TENANT_MISMATCH", "NO_POLICY",
			"AUDIENCE_NOT_GRANTED", "SCOPE_NOT_GRANTED", "USER_ASSERTION_DENIED", "TENANT_NOT_ALLOWED"},
		codes.Unavailable:     {"KEYS_UNAVAILABLE", "TOKEN_UNAVAILABLE"},
		codes.Internal:        {"POLICY_INVALID"},
		codes.InvalidArgument: {"IDEMPOTENCY_KEY_MISSING", "REQUEST_INVALID"},
	}
	seen := 0
	for code, names := range want {
		for _, n := range names {
			r := srvParseReason(n)
			if r == 0 {
				t.Fatalf("no reason %s", n)
			}
			seen++
			err := statusError(r)
			st := status.Convert(err)
			if st.Code() != code || codeOf(r) != code {
				t.Errorf("%s: code %v, want %v", n, st.Code(), code)
			}
			got, ok := ReasonFromError(err)
			if !ok || got != r || ReasonName(got) != n {
				t.Errorf("%s: ReasonFromError = %v, %v", n, got, ok)
			}
		}
	}
	if seen != len(callsignv1.Reason_name)-1 {
		t.Fatalf("%d reasons pinned, the enum has %d", seen, len(callsignv1.Reason_name)-1)
	}
	if !errors.Is(statusError(callsignv1.Reason(999)), statusError(callsignv1.Reason_REASON_TOKEN_MALFORMED)) {
		t.Fatal("an unknown reason does not fail closed")
	}
}

func TestReasonFromError(t *testing.T) {
	if _, ok := ReasonFromError(nil); ok {
		t.Error("reason from nil")
	}
	if _, ok := ReasonFromError(errors.New("x")); ok {
		t.Error("reason from a plain error")
	}
	if _, ok := ReasonFromError(status.Error(codes.Unauthenticated, "x")); ok {
		t.Error("reason without details")
	}
	foreign, _ := status.New(codes.Unauthenticated, "x").WithDetails(&errdetails.ErrorInfo{Reason: "TOKEN_EXPIRED", Domain: "example.com"})
	if _, ok := ReasonFromError(foreign.Err()); ok {
		t.Error("reason from another domain")
	}
	odd, _ := status.New(codes.Unauthenticated, "x").WithDetails(&errdetails.ErrorInfo{Reason: "NOT_A_REASON", Domain: ErrorDomain})
	if _, ok := ReasonFromError(odd.Err()); ok {
		t.Error("unknown reason name accepted")
	}
}

func TestTokenReason(t *testing.T) {
	if r := tokenReason(&token.Error{Reason: callsignv1.Reason_REASON_TOKEN_EXPIRED}); r != callsignv1.Reason_REASON_TOKEN_EXPIRED {
		t.Fatal(r)
	}
	for _, err := range []error{errors.New("x"), &token.Error{}} {
		if r := tokenReason(err); r != callsignv1.Reason_REASON_TOKEN_MALFORMED {
			t.Fatalf("%v: %v", err, r)
		}
	}
}
