package interceptor

import (
	"context"
	"time"

	"google.golang.org/grpc"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// Verifier verifies tokens centrally. callsignv1.AuthServiceClient satisfies
// it; see [WithCentralVerification].
type Verifier interface {
	Verify(ctx context.Context, in *callsignv1.VerifyRequest, opts ...grpc.CallOption) (*callsignv1.VerifyResponse, error)
}

// centralTimeout bounds one AuthService.Verify call.
const centralTimeout = 5 * time.Second

// centralReasons are the verdict reasons passed on to the caller as they are;
// any other reason of an inactive verdict is reported as TOKEN_MALFORMED.
var centralReasons = map[callsignv1.Reason]bool{
	callsignv1.Reason_REASON_TOKEN_MALFORMED:     true,
	callsignv1.Reason_REASON_SIGNATURE_INVALID:   true,
	callsignv1.Reason_REASON_TOKEN_EXPIRED:       true,
	callsignv1.Reason_REASON_TOKEN_NOT_YET_VALID: true,
	callsignv1.Reason_REASON_LIFETIME_TOO_LONG:   true,
	callsignv1.Reason_REASON_KEY_UNKNOWN:         true,
	callsignv1.Reason_REASON_ISSUER_MISMATCH:     true,
	callsignv1.Reason_REASON_AUDIENCE_MISMATCH:   true,
	callsignv1.Reason_REASON_TYPE_MISMATCH:       true,
	callsignv1.Reason_REASON_TOKEN_REVOKED:       true,
	callsignv1.Reason_REASON_ACCOUNT_DISABLED:    true,
	callsignv1.Reason_REASON_KEYS_UNAVAILABLE:    true,
}

// verifyCentral asks AuthService.Verify about raw, reusing positive verdicts
// for at most the configured time, the verdict's cache_for and the token's
// exp. A failed call answers Unavailable / KEYS_UNAVAILABLE. The verdict's
// claims are checked again against what this server expects.
func (s *Server) verifyCentral(ctx context.Context, raw string, typ token.Type, aud string, now time.Time) (*verified, callsignv1.Reason) {
	if v := s.centralCache.get(raw, typ, now); v != nil {
		s.metrics.cacheLookup(true)
		return v, callsignv1.Reason_REASON_UNSPECIFIED
	}
	s.metrics.cacheLookup(false)
	if len(raw) > token.MaxTokenSize {
		return nil, callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	if headerListSize(ctx) > MaxHeaderListSize {
		return nil, callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	tt := callsignv1.TokenType_TOKEN_TYPE_SERVICE
	if typ == token.TypeUser {
		tt = callsignv1.TokenType_TOKEN_TYPE_USER
	}
	cctx, cancel := context.WithTimeout(ctx, centralTimeout)
	defer cancel()
	resp, err := s.cfg.central.Verify(cctx, &callsignv1.VerifyRequest{Token: raw, TokenType: tt, Audience: aud})
	if err != nil || resp == nil {
		return nil, callsignv1.Reason_REASON_KEYS_UNAVAILABLE
	}
	if !resp.GetActive() {
		if r := resp.GetReason(); centralReasons[r] {
			return nil, r
		}
		return nil, callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	c := resp.GetClaims()
	wantAud := aud
	if typ == token.TypeUser {
		wantAud = s.cfg.issuer
	}
	switch {
	case c.GetTokenType() != tt:
		return nil, callsignv1.Reason_REASON_TYPE_MISMATCH
	case c.GetIssuer() != s.cfg.issuer:
		return nil, callsignv1.Reason_REASON_ISSUER_MISMATCH
	case c.GetAudience() != wantAud:
		return nil, callsignv1.Reason_REASON_AUDIENCE_MISMATCH
	case c.GetSubject() == "" || c.GetTokenId() == "" || c.GetExpireTime() == nil:
		return nil, callsignv1.Reason_REASON_TOKEN_MALFORMED
	case !now.Add(-s.cfg.skew).Before(c.GetExpireTime().AsTime()):
		return nil, callsignv1.Reason_REASON_TOKEN_EXPIRED
	}
	v := newVerified(token.Claims{
		Type:     typ,
		Issuer:   c.GetIssuer(),
		Subject:  c.GetSubject(),
		Audience: c.GetAudience(),
		Expiry:   c.GetExpireTime().AsTime(),
		IssuedAt: c.GetIssueTime().AsTime(),
		ID:       c.GetTokenId(),
		Scopes:   c.GetScopes(),
		TenantID: c.GetTenantId(),
		Roles:    c.GetRoles(),
		Actor:    c.GetActor(),
	}, "")
	v.central = true
	if ttl := min(s.cfg.centralTTL, resp.GetCacheFor().AsDuration()); ttl > 0 {
		deadline := now.Add(ttl)
		if v.expiry.Before(deadline) {
			deadline = v.expiry
		}
		s.centralCache.put(raw, v, deadline)
	}
	return v, callsignv1.Reason_REASON_UNSPECIFIED
}
