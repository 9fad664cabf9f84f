package interceptor

import (
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo detail that carries
// the reason of every status the interceptors return.
const ErrorDomain = "callsign.dev"

// The one place where a reason becomes a status code and a fixed message
// (DESIGN.md §2). Nothing the caller sent ever reaches a message.
var reasonStatus = map[callsignv1.Reason]struct {
	code codes.Code
	msg  string
}{
	callsignv1.Reason_REASON_TOKEN_MISSING:           {codes.Unauthenticated, "callsign: service token missing"},
	callsignv1.Reason_REASON_TOKEN_MALFORMED:         {codes.Unauthenticated, "callsign: service token malformed"},
	callsignv1.Reason_REASON_SIGNATURE_INVALID:       {codes.Unauthenticated, "callsign: signature invalid"},
	callsignv1.Reason_REASON_TOKEN_EXPIRED:           {codes.Unauthenticated, "callsign: token expired"},
	callsignv1.Reason_REASON_TOKEN_NOT_YET_VALID:     {codes.Unauthenticated, "callsign: token not yet valid"},
	callsignv1.Reason_REASON_LIFETIME_TOO_LONG:       {codes.Unauthenticated, "callsign: token lifetime too long"},
	callsignv1.Reason_REASON_KEY_UNKNOWN:             {codes.Unauthenticated, "callsign: signing key unknown"},
	callsignv1.Reason_REASON_ISSUER_MISMATCH:         {codes.Unauthenticated, "callsign: issuer mismatch"},
	callsignv1.Reason_REASON_AUDIENCE_MISMATCH:       {codes.Unauthenticated, "callsign: audience mismatch"},
	callsignv1.Reason_REASON_TYPE_MISMATCH:           {codes.Unauthenticated, "callsign: token type mismatch"},
	callsignv1.Reason_REASON_TOKEN_REVOKED:           {codes.Unauthenticated, "callsign: token revoked"},
	callsignv1.Reason_REASON_ACCOUNT_DISABLED:        {codes.Unauthenticated, "callsign: account disabled"},
	callsignv1.Reason_REASON_USER_TOKEN_MISSING:      {codes.Unauthenticated, "callsign: user token missing"},
	callsignv1.Reason_REASON_USER_TOKEN_INVALID:      {codes.Unauthenticated, "callsign: user token invalid"},
	callsignv1.Reason_REASON_SCOPE_MISSING:           {codes.PermissionDenied, "callsign: scope missing"},
	callsignv1.Reason_REASON_CALLER_NOT_ALLOWED:      {codes.PermissionDenied, "callsign: caller not allowed"},
	callsignv1.Reason_REASON_TENANT_MISSING:          {codes.PermissionDenied, "callsign: tenant missing"},
	callsignv1.Reason_REASON_TENANT_MISMATCH:         {codes.PermissionDenied, "callsign: tenant mismatch"},
	callsignv1.Reason_REASON_NO_POLICY:               {codes.PermissionDenied, "callsign: method has no policy"},
	callsignv1.Reason_REASON_POLICY_INVALID:          {codes.Internal, "callsign: method policy invalid"},
	callsignv1.Reason_REASON_KEYS_UNAVAILABLE:        {codes.Unavailable, "callsign: verification keys unavailable"},
	callsignv1.Reason_REASON_TOKEN_UNAVAILABLE:       {codes.Unavailable, "callsign: token unavailable"},
	callsignv1.Reason_REASON_IDEMPOTENCY_KEY_MISSING: {codes.InvalidArgument, "callsign: idempotency key missing"},
	callsignv1.Reason_REASON_CREDENTIAL_INVALID:      {codes.Unauthenticated, "callsign: credential invalid"},
	callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED:    {codes.PermissionDenied, "callsign: audience not granted"},
	callsignv1.Reason_REASON_SCOPE_NOT_GRANTED:       {codes.PermissionDenied, "callsign: scope not granted"},
	callsignv1.Reason_REASON_USER_ASSERTION_DENIED:   {codes.PermissionDenied, "callsign: user assertion denied"},
	callsignv1.Reason_REASON_TENANT_NOT_ALLOWED:      {codes.PermissionDenied, "callsign: tenant not allowed"},
	callsignv1.Reason_REASON_REQUEST_INVALID:         {codes.InvalidArgument, "callsign: request invalid"},
}

// statusErrors holds one immutable status error per reason, built once: a
// denial costs no allocation to describe.
type statusErrors map[callsignv1.Reason]error

// newStatusErrors builds the status errors of a server. When audience is set,
// each ErrorInfo names it in its metadata ([ErrorInfoAudience]), so that a
// client can tell this server's refusals from errors that a handler passes on
// from calls of its own. The audience is the server's configuration, never
// anything the caller sent.
func newStatusErrors(audience string) statusErrors {
	m := make(statusErrors, len(reasonStatus))
	for r, cs := range reasonStatus {
		info := &errdetails.ErrorInfo{Reason: ReasonName(r), Domain: ErrorDomain}
		if audience != "" {
			info.Metadata = map[string]string{ErrorInfoAudience: audience}
		}
		st, err := status.New(cs.code, cs.msg).WithDetails(info)
		if err != nil {
			panic("interceptor: building status details: " + err.Error())
		}
		m[r] = st.Err()
	}
	return m
}

// anonymousStatusErrors name no audience.
var anonymousStatusErrors = newStatusErrors("")

// get returns the status error for a reason. A reason without an entry (never
// expected) fails closed as an unauthenticated malformed token.
func (m statusErrors) get(r callsignv1.Reason) error {
	if err, ok := m[r]; ok {
		return err
	}
	return m[callsignv1.Reason_REASON_TOKEN_MALFORMED]
}

// statusError returns the status error for a reason, naming no audience.
func statusError(r callsignv1.Reason) error { return anonymousStatusErrors.get(r) }

// codeOf returns the status code that a reason maps to.
func codeOf(r callsignv1.Reason) codes.Code {
	if cs, ok := reasonStatus[r]; ok {
		return cs.code
	}
	return codes.Unauthenticated
}

// ReasonName is the name of a reason as sent in ErrorInfo.reason: the enum
// value name without its "REASON_" prefix, for example "TOKEN_EXPIRED".
func ReasonName(r callsignv1.Reason) string {
	return strings.TrimPrefix(r.String(), "REASON_")
}

// ReasonFromError returns the callsign reason carried by a status error's
// ErrorInfo detail (domain [ErrorDomain]), and false when err carries none.
func ReasonFromError(err error) (callsignv1.Reason, bool) {
	st, ok := status.FromError(err)
	if !ok || st == nil {
		return callsignv1.Reason_REASON_UNSPECIFIED, false
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != ErrorDomain {
			continue
		}
		v, ok := callsignv1.Reason_value["REASON_"+info.GetReason()]
		if !ok || v == 0 {
			return callsignv1.Reason_REASON_UNSPECIFIED, false
		}
		return callsignv1.Reason(v), true
	}
	return callsignv1.Reason_REASON_UNSPECIFIED, false
}

// tokenReason returns the reason of a verification error from the token core,
// TOKEN_MALFORMED for anything else (fail closed).
func tokenReason(err error) callsignv1.Reason {
	var te *token.Error
	if errors.As(err, &te) && te.Reason != callsignv1.Reason_REASON_UNSPECIFIED {
		return te.Reason
	}
	return callsignv1.Reason_REASON_TOKEN_MALFORMED
}
