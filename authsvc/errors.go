package authsvc

import (
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// ErrorDomain is the domain of every google.rpc.ErrorInfo callsign sends.
const ErrorDomain = "callsign.dev"

// Client-facing errors: fixed messages, a reason in ErrorInfo, nothing echoed.
// They are built once; a *status.Status error is immutable and safe to share.
var (
	errRequestInvalid     = reasonError(codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID, "callsign: invalid request")
	errCredentialInvalid  = reasonError(codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID, "callsign: credential not accepted")
	errAudienceNotGranted = reasonError(codes.PermissionDenied, callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED, "callsign: audience not granted")
	errScopeNotGranted    = reasonError(codes.PermissionDenied, callsignv1.Reason_REASON_SCOPE_NOT_GRANTED, "callsign: scope not granted")
	errLifetimeTooLong    = reasonError(codes.PermissionDenied, callsignv1.Reason_REASON_LIFETIME_TOO_LONG, "callsign: lifetime too long")
	errUserAssertion      = reasonError(codes.PermissionDenied, callsignv1.Reason_REASON_USER_ASSERTION_DENIED, "callsign: user assertion not allowed")
	errTenantNotAllowed   = reasonError(codes.PermissionDenied, callsignv1.Reason_REASON_TENANT_NOT_ALLOWED, "callsign: tenant not allowed")
	errNoSigningKey       = reasonError(codes.Unavailable, callsignv1.Reason_REASON_KEYS_UNAVAILABLE, "callsign: no signing key available")
	errNotFound           = status.Error(codes.NotFound, "callsign: not found")
	errAlreadyExists      = status.Error(codes.AlreadyExists, "callsign: already exists")
	errInternal           = status.Error(codes.Internal, "callsign: internal error")
	errUnavailable        = status.Error(codes.Unavailable, "callsign: storage unavailable")
)

// reasonError builds a status error with a fixed message and an ErrorInfo whose
// reason is the enum name without its REASON_ prefix.
func reasonError(c codes.Code, r callsignv1.Reason, msg string) error {
	st := status.New(c, msg)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: ReasonString(r),
		Domain: ErrorDomain,
	})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// ReasonString is the wire form of a reason: its enum name without "REASON_".
func ReasonString(r callsignv1.Reason) string {
	return strings.TrimPrefix(r.String(), "REASON_")
}
