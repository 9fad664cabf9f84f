package authsvc

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// verify implements AuthService.Verify: the token in the request is verified
// with the published keys (DESIGN.md §5 steps 1 to 5), then revocation and the
// status of the account behind it (the subject of a service token, the actor of
// a user token). A token that fails is an inactive verdict, not an error.
func (s *Service) verify(ctx context.Context, req *callsignv1.VerifyRequest) (*callsignv1.VerifyResponse, error) {
	if !validVerifyRequest(req) {
		return nil, errRequestInvalid
	}
	now := s.now()
	typ, aud := token.TypeService, req.GetAudience()
	if req.GetTokenType() == callsignv1.TokenType_TOKEN_TYPE_USER {
		typ, aud = token.TypeUser, s.cfg.Issuer
	}
	view, err := s.keys(ctx)
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	if view.keySet == nil {
		return inactive(callsignv1.Reason_REASON_KEYS_UNAVAILABLE), nil
	}
	c, err := token.Verify(req.GetToken(), s.alg, view.keySet, token.Expect{
		Issuer:      s.cfg.Issuer,
		Audience:    aud,
		Type:        typ,
		Now:         now,
		Skew:        s.cfg.Skew,
		MaxLifetime: s.cfg.MaxTokenLifetime,
	})
	if err != nil {
		var te *token.Error
		if errors.As(err, &te) && te.Reason != callsignv1.Reason_REASON_UNSPECIFIED {
			return inactive(te.Reason), nil
		}
		return inactive(callsignv1.Reason_REASON_TOKEN_MALFORMED), nil
	}
	account := c.Subject
	if c.Type == token.TypeUser {
		account = c.Actor
	}
	revoked, err := s.store.TokenRevoked(ctx, c.ID, account, c.IssuedAt)
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	if revoked {
		return inactive(callsignv1.Reason_REASON_TOKEN_REVOKED), nil
	}
	acct, err := s.lookupAccount(ctx, account)
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	if acct == nil || acct.Disabled {
		return inactive(callsignv1.Reason_REASON_ACCOUNT_DISABLED), nil
	}
	cacheFor := max(min(c.Expiry.Sub(now), s.cfg.RefreshHint), 0)
	return &callsignv1.VerifyResponse{
		Active:   true,
		Claims:   claimsProto(&c),
		CacheFor: durationpb.New(cacheFor.Truncate(time.Second)),
	}, nil
}

func inactive(r callsignv1.Reason) *callsignv1.VerifyResponse {
	return &callsignv1.VerifyResponse{Active: false, Reason: r}
}

func claimsProto(c *token.Claims) *callsignv1.Claims {
	out := &callsignv1.Claims{
		TokenType:  callsignv1.TokenType_TOKEN_TYPE_SERVICE,
		Issuer:     c.Issuer,
		Subject:    c.Subject,
		Audience:   c.Audience,
		ExpireTime: timestamppb.New(c.Expiry),
		IssueTime:  timestamppb.New(c.IssuedAt),
		TokenId:    c.ID,
		Scopes:     slices.Clone(c.Scopes),
		TenantId:   c.TenantID,
		Roles:      slices.Clone(c.Roles),
		Actor:      c.Actor,
	}
	if c.Type == token.TypeUser {
		out.TokenType = callsignv1.TokenType_TOKEN_TYPE_USER
	}
	if !c.NotBefore.IsZero() {
		out.NotBefore = timestamppb.New(c.NotBefore)
	}
	return out
}
