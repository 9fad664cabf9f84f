package interceptor

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// maxIssueResponseSize bounds an IssueToken response as received: a token
// of at most 8 KiB and a few short fields fit many times over.
const maxIssueResponseSize = 64 << 10

// tsIssuer makes IssueToken calls and checks their answers.
type tsIssuer struct {
	client  IssueTokenClient
	cred    Credential
	clock   Clock
	rand    func() float64
	timeout time.Duration
}

// issue completes req with the credential, calls IssueToken and checks the
// response. Errors are *IssueError.
func (i *tsIssuer) issue(ctx context.Context, req *callsignv1.IssueTokenRequest, want callsignv1.TokenType) (*cachedToken, error) {
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	if err := i.cred.applyCredential(req, i.clock.Now()); err != nil {
		return nil, &IssueError{Code: codes.Internal, err: err}
	}
	resp, err := i.client.IssueToken(ctx, req, grpc.MaxCallRecvMsgSize(maxIssueResponseSize))
	if err != nil {
		return nil, issueErrorFrom(err)
	}
	tok, ok := checkIssued(resp, want, i.clock.Now(), i.rand())
	if !ok {
		return nil, &IssueError{Code: codes.Internal, err: errBadIssueResponse}
	}
	return tok, nil
}

// checkIssued validates an IssueToken response and schedules the token: the
// token is a well-formed compact JWS of the wanted type (never unspecified:
// a caller that asks for no type gets nothing), expire_time a valid
// timestamp at least a second ahead of now. The lifetime counted from now is
// capped at an hour; the token is handed out until a tenth of it (at most
// 10 s) before the expiry, and renewed from 40 % + 20 %·r of it on.
func checkIssued(resp *callsignv1.IssueTokenResponse, want callsignv1.TokenType, now time.Time, r float64) (*cachedToken, bool) {
	if resp == nil || want == callsignv1.TokenType_TOKEN_TYPE_UNSPECIFIED || resp.GetTokenType() != want || !wellFormedJWS(resp.GetToken()) {
		return nil, false
	}
	et := resp.GetExpireTime()
	if et == nil || et.CheckValid() != nil {
		return nil, false
	}
	exp := et.AsTime()
	life := exp.Sub(now)
	if life < minIssuedLifetime {
		return nil, false
	}
	life = min(life, maxCachedLifetime)
	margin := min(life/10, maxExpiryMargin)
	if r < 0 || r >= 1 {
		r = 0.5
	}
	// Wall-clock instants (Round(0) drops the monotonic reading): expiry is a
	// wall-clock matter, and the monotonic clock stands still while a machine
	// sleeps, which would keep an expired token in use after a resume.
	now = now.Round(0)
	return &cachedToken{
		token:     resp.GetToken(),
		bearer:    "Bearer " + resp.GetToken(),
		expiry:    exp,
		obtained:  now,
		useUntil:  now.Add(life - margin),
		refreshAt: now.Add(time.Duration(float64(life) * (0.4 + 0.2*r))),
	}, true
}

// wellFormedJWS reports whether s looks like a compact JWS: at most
// [token.MaxTokenSize] bytes of [A-Za-z0-9_.-], three non-empty segments.
func wellFormedJWS(s string) bool {
	if len(s) == 0 || len(s) > token.MaxTokenSize {
		return false
	}
	dots, segLen := 0, 0
	for i := range len(s) {
		c := s[i]
		switch {
		case c == '.':
			if segLen == 0 {
				return false
			}
			dots++
			segLen = 0
			continue
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
		segLen++
	}
	return dots == 2 && segLen > 0
}

// IssueError tells why callsignd did not issue a token. It keeps only the
// gRPC code and the documented reason of the answer (or a local cause),
// never text sent by the server. The Unavailable error that
// [TokenSource.Token] returns wraps it: use errors.As to read it.
type IssueError struct {
	// Code is the gRPC code of the IssueToken call (Internal for a local
	// cause: an unusable credential or response).
	Code codes.Code
	// Reason is the callsign reason of the answer (for example
	// AUDIENCE_NOT_GRANTED), REASON_UNSPECIFIED when it carried none.
	Reason callsignv1.Reason

	err error // local cause, if any
}

// Error names the code, the reason and the local cause; never text the server
// sent.
func (e *IssueError) Error() string {
	s := "interceptor: IssueToken failed: " + e.Code.String()
	if e.Reason != callsignv1.Reason_REASON_UNSPECIFIED {
		s += " " + ReasonName(e.Reason)
	}
	if e.err != nil {
		s += ": " + e.err.Error()
	}
	return s
}

// Unwrap returns the local cause, if any.
func (e *IssueError) Unwrap() error { return e.err }

// issueErrorFrom keeps the code and the callsign reason of an IssueToken
// failure.
func issueErrorFrom(err error) *IssueError {
	st, _ := status.FromError(err)
	ie := &IssueError{Code: st.Code()}
	if r, ok := callsignReason(st); ok {
		ie.Reason = r
	}
	return ie
}

// maxDetailsInspected bounds the details read from one status.
const maxDetailsInspected = 8

var errorInfoTypeURL = "type.googleapis.com/" + string((&errdetails.ErrorInfo{}).ProtoReflect().Descriptor().FullName())

// callsignReason returns the reason of the first ErrorInfo of domain
// callsign.dev in st that names a known [callsignv1.Reason]. Anything else in
// the status is ignored.
func callsignReason(st *status.Status) (callsignv1.Reason, bool) {
	if st == nil {
		return 0, false
	}
	r, _, ok := callsignReasonProto(st.Proto())
	return r, ok
}

// ErrorInfoAudience is the ErrorInfo metadata key under which a server may
// name its own audience when it refuses a token. A client retries a refused
// call only when the refusal names no audience or the one it called: an error
// that a handler passes on from a call of its own is not retried.
const ErrorInfoAudience = "audience"

// callsignReasonProto returns the reason of the first usable callsign
// ErrorInfo in p, and the audience its metadata names ("" when none).
func callsignReasonProto(p *spb.Status) (callsignv1.Reason, string, bool) {
	for i, d := range p.GetDetails() {
		if i >= maxDetailsInspected {
			break
		}
		if d.GetTypeUrl() != errorInfoTypeURL {
			continue
		}
		var ei errdetails.ErrorInfo
		if proto.Unmarshal(d.GetValue(), &ei) != nil || ei.GetDomain() != ErrorDomain {
			continue
		}
		if r, ok := parseReason(ei.GetReason()); ok {
			return r, ei.GetMetadata()[ErrorInfoAudience], true
		}
	}
	return 0, "", false
}

// parseReason maps an ErrorInfo reason ("TOKEN_EXPIRED") to its enum value.
func parseReason(s string) (callsignv1.Reason, bool) {
	if len(s) == 0 || len(s) > 64 {
		return 0, false
	}
	v, ok := callsignv1.Reason_value["REASON_"+s]
	if !ok || v == 0 {
		return 0, false
	}
	return callsignv1.Reason(v), true
}

// tokenUnavailableStatus is the status of every failure to obtain a token.
var tokenUnavailableStatus = func() *status.Status {
	info, err := anypb.New(&errdetails.ErrorInfo{
		Reason: ReasonName(callsignv1.Reason_REASON_TOKEN_UNAVAILABLE),
		Domain: ErrorDomain,
	})
	if err != nil {
		panic(err)
	}
	return status.FromProto(&spb.Status{
		Code:    int32(codes.Unavailable),
		Message: "callsign: token unavailable",
		Details: []*anypb.Any{info},
	})
}()

// tokenUnavailableError is the fail-closed answer of the calling side: gRPC
// status Unavailable with ErrorInfo TOKEN_UNAVAILABLE and a fixed message. It
// wraps the cause for errors.Is and errors.As.
type tokenUnavailableError struct{ cause error }

func tokenUnavailable(cause error) error { return &tokenUnavailableError{cause: cause} }

func (e *tokenUnavailableError) Error() string {
	if e.cause == nil {
		return tokenUnavailableStatus.Message()
	}
	return tokenUnavailableStatus.Message() + ": " + e.cause.Error()
}

func (e *tokenUnavailableError) GRPCStatus() *status.Status { return tokenUnavailableStatus }
func (e *tokenUnavailableError) Unwrap() error              { return e.cause }
