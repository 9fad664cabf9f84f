package authsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// MaxAssertionAhead is how far in the future a client assertion's exp may be,
// by the client's clock: callsignd allows the clock skew on top.
const MaxAssertionAhead = 60 * time.Second

// secretPrefix starts every client secret.
const secretPrefix = "cs_"

// authServer implements AuthService.
type authServer struct {
	callsignv1.UnimplementedAuthServiceServer
	s *Service
}

func (a *authServer) IssueToken(ctx context.Context, req *callsignv1.IssueTokenRequest) (*callsignv1.IssueTokenResponse, error) {
	return a.s.issueToken(ctx, req)
}

func (a *authServer) Verify(ctx context.Context, req *callsignv1.VerifyRequest) (*callsignv1.VerifyResponse, error) {
	return a.s.verify(ctx, req)
}

func (a *authServer) GetKeys(ctx context.Context, req *callsignv1.GetKeysRequest) (*callsignv1.GetKeysResponse, error) {
	if !validGetKeysRequest(req) {
		return nil, errRequestInvalid
	}
	return a.s.GetKeys(ctx, req)
}

// refusal is why a credential was not accepted; logged, never sent.
type refusal string

func (s *Service) issueToken(ctx context.Context, req *callsignv1.IssueTokenRequest) (*callsignv1.IssueTokenResponse, error) {
	if !validIssueTokenRequest(req) {
		return nil, errRequestInvalid
	}
	now := s.now()
	acct, why, err := s.authenticate(ctx, req, now)
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	if acct == nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "authsvc: credential refused", slog.String("why", string(why)))
		return nil, errCredentialInvalid
	}

	lifetime := s.cfg.TokenLifetime
	if req.GetLifetime() != nil {
		lifetime = req.GetLifetime().AsDuration()
		if lifetime > s.cfg.MaxTokenLifetime {
			return nil, s.refuse(ctx, acct.ID, errLifetimeTooLong)
		}
	}

	iat := now.Truncate(time.Second)
	c := token.Claims{
		Issuer:   s.cfg.Issuer,
		IssuedAt: iat,
	}
	var scopes []string
	if u := req.GetUser(); u != nil {
		if !acct.UserAssertion.Allowed {
			return nil, s.refuse(ctx, acct.ID, errUserAssertion)
		}
		if !tenantAllowed(acct.UserAssertion.Tenants, u.GetTenantId()) {
			return nil, s.refuse(ctx, acct.ID, errTenantNotAllowed)
		}
		c.Type = token.TypeUser
		c.Subject = u.GetUserId()
		c.Audience = s.cfg.Issuer
		c.TenantID = u.GetTenantId()
		c.Roles = slices.Clone(u.GetRoles())
		c.Actor = acct.ID
	} else {
		grant, ok := findGrant(acct.Grants, req.GetAudience())
		if !ok {
			return nil, s.refuse(ctx, acct.ID, errAudienceNotGranted)
		}
		if len(req.GetScopes()) == 0 {
			scopes = slices.Clone(grant.Scopes)
		} else {
			for _, sc := range req.GetScopes() {
				if !slices.Contains(grant.Scopes, sc) {
					return nil, s.refuse(ctx, acct.ID, errScopeNotGranted)
				}
			}
			scopes = slices.Clone(req.GetScopes())
		}
		slices.Sort(scopes)
		if t := req.GetTenantId(); t != "" && !tenantAllowed(acct.UserAssertion.Tenants, t) {
			return nil, s.refuse(ctx, acct.ID, errTenantNotAllowed)
		}
		c.Type = token.TypeService
		c.Subject = acct.ID
		c.Audience = req.GetAudience()
		c.NotBefore = iat
		c.Scopes = scopes
		c.TenantID = req.GetTenantId()
	}

	view, err := s.keys(ctx)
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	if view.signer == nil {
		return nil, errNoSigningKey
	}
	exp := iat.Add(lifetime)
	if bound := s.signBound(&view.signKey, now); exp.After(bound) {
		exp = bound.Truncate(time.Second)
	}
	if exp.Sub(iat) < time.Second {
		return nil, errNoSigningKey
	}
	c.Expiry = exp
	c.ID, err = token.NewID()
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	if !tokenFits(&c, view.signer.Key.ID) {
		// Every field within its limit, but all of them at their limits
		// together (long SPIFFE ids, 32 long roles or scopes) would make a
		// token larger than verifiers accept.
		return nil, errRequestInvalid
	}
	raw, err := view.signer.Sign(c)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	resp := &callsignv1.IssueTokenResponse{
		Token:      raw,
		ExpireTime: timestamppb.New(exp),
		Scopes:     scopes,
		TokenId:    c.ID,
		KeyId:      view.signer.Key.ID,
	}
	if c.Type == token.TypeUser {
		resp.TokenType = callsignv1.TokenType_TOKEN_TYPE_USER
	} else {
		resp.TokenType = callsignv1.TokenType_TOKEN_TYPE_SERVICE
	}
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "authsvc: token issued",
			slog.String("account", acct.ID), slog.String("audience", c.Audience),
			slog.String("jti", c.ID), slog.String("kid", resp.GetKeyId()), slog.Time("exp", exp))
	}
	return resp, nil
}

// tokenFits reports whether the token for c, signed under kid, stays within
// token.MaxTokenSize. It counts the JSON escapes of every string exactly and
// every number and member name at its widest, so it may refuse a token a few
// bytes below the limit but never passes one above it.
func tokenFits(c *token.Claims, kid string) bool {
	claims := jsonLen(c.Issuer) + jsonLen(c.Subject) + jsonLen(c.Audience) + jsonLen(c.ID) +
		jsonLen(c.TenantID) + jsonLen(c.Actor)
	for _, sc := range c.Scopes {
		claims += len(sc) + 1
	}
	for _, r := range c.Roles {
		claims += jsonLen(r) + 1
	}
	// Member names and punctuation ({"iss":,"sub":,"aud":,"exp":,"nbf":,
	// "iat":,"jti":,"scope":"",tenant_id, "act":{"sub":},"roles":[]}: about
	// 110 bytes) and four NumericDates of at most 11 digits.
	claims += 128 + 4*11
	header := 40 + len(kid)
	const sig = 64
	enc := func(n int) int { return (n*4 + 2) / 3 }
	return enc(header)+enc(claims)+enc(sig)+2 <= token.MaxTokenSize
}

// jsonLen is the length of s as a JSON string, quotes included, escaped as
// the token encoder does.
func jsonLen(s string) int {
	n := 2
	for i := range len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			n += 2
		case c < 0x20:
			n += 6
		default:
			n++
		}
	}
	return n
}

// signBound is the latest exp a token signed now with k may carry: it must
// expire (plus the verifiers' margin) before k leaves the published set.
func (s *Service) signBound(k *SigningKey, now time.Time) time.Time {
	if k.State == KeyActive {
		stop := k.RetireAt
		if now.After(stop) {
			stop = now // overdue: it retires at the next step, RemoveAt follows from then
		}
		return stop.Add(s.cfg.MaxTokenLifetime)
	}
	return k.RemoveAt.Add(-verifierMargin(s.cfg.Skew) - keyReloadInterval)
}

// refuse logs a refusal of an authenticated account and returns err.
func (s *Service) refuse(ctx context.Context, account string, err error) error {
	s.log.LogAttrs(ctx, slog.LevelInfo, "authsvc: token refused",
		slog.String("account", account), slog.String("error", err.Error()))
	return err
}

// authenticate checks the credential of req and returns its account, or nil and
// why not. Unknown accounts, wrong keys or secrets, expired credentials,
// malformed or replayed assertions and disabled accounts take the same path
// with comparable work (a signature check or hash comparison against a dummy
// when there is nothing real to check against) and end in the same nil. Only a
// storage failure returns an error.
func (s *Service) authenticate(ctx context.Context, req *callsignv1.IssueTokenRequest, now time.Time) (*Account, refusal, error) {
	switch c := req.GetCredential().(type) {
	case *callsignv1.IssueTokenRequest_ClientAssertion:
		return s.authenticateAssertion(ctx, c.ClientAssertion, now)
	case *callsignv1.IssueTokenRequest_ClientSecret:
		return s.authenticateSecret(ctx, c.ClientSecret.GetAccountId(), c.ClientSecret.GetSecret(), now)
	default:
		return nil, "no credential", nil
	}
}

func (s *Service) authenticateAssertion(ctx context.Context, raw string, now time.Time) (*Account, refusal, error) {
	p, err := token.ParseAssertion(raw)
	if err != nil {
		return nil, "assertion malformed", nil //nolint:nilerr // a refused credential is an answer, not a failure of the call
	}
	ac, err := p.AssertionClaims(s.cfg.Issuer, now, s.cfg.Skew, MaxAssertionAhead+s.cfg.Skew)
	if err != nil {
		return nil, refusal("assertion claims: " + reasonOf(err)), nil
	}
	acct, err := s.lookupAccount(ctx, ac.Subject)
	if err != nil {
		return nil, "", err
	}
	pub := s.dummyKey
	found := false
	if acct != nil {
		for i := range acct.PublicKeys {
			k := &acct.PublicKeys[i]
			if k.ID == p.KID && keyUsable(k, now) && len(k.Public) == ed25519.PublicKeySize {
				pub, found = ed25519.PublicKey(k.Public), true
				break
			}
		}
	}
	sigErr := p.VerifySignature(token.Key{ID: p.KID, Algorithm: token.EdDSA, Public: pub})
	switch {
	case acct == nil:
		return nil, "unknown account", nil
	case !found:
		return nil, "unknown or expired key", nil
	case sigErr != nil:
		return nil, "bad assertion signature", nil //nolint:nilerr // a refused credential is an answer, not a failure of the call
	case acct.Disabled:
		return nil, "account disabled", nil
	}
	// Kept as long as any replica may accept the assertion: until exp plus the
	// skew, by a clock that may lag ours by the skew.
	fresh, err := s.store.UseAssertionID(ctx, acct.ID, ac.ID, ac.Expiry.Add(verifierMargin(s.cfg.Skew)))
	if err != nil {
		return nil, "", err
	}
	if !fresh {
		return nil, "assertion replayed", nil
	}
	return acct, "", nil
}

func (s *Service) authenticateSecret(ctx context.Context, account, secret string, now time.Time) (*Account, refusal, error) {
	sum := sha256.Sum256([]byte(secret))
	acct, err := s.lookupAccount(ctx, account)
	if err != nil {
		return nil, "", err
	}
	match := 0
	if acct == nil {
		subtle.ConstantTimeCompare(sum[:], s.dummyHash[:])
	} else {
		for i := range acct.Secrets {
			c := &acct.Secrets[i]
			eq := subtle.ConstantTimeCompare(sum[:], c.Hash)
			if secretUsable(c, now) {
				match |= eq
			}
		}
	}
	switch {
	case acct == nil:
		return nil, "unknown account", nil
	case match != 1:
		return nil, "wrong or expired secret", nil
	case acct.Disabled:
		return nil, "account disabled", nil
	}
	return acct, "", nil
}

// reasonOf names the reason of a token error for logs.
func reasonOf(err error) string {
	if te, ok := errors.AsType[*token.Error](err); ok {
		return ReasonString(te.Reason)
	}
	return "invalid"
}

// newSecret creates a client secret: "cs_" and 43 base64url characters (256
// random bits); it returns the secret and its SHA-256 hash.
func newSecret(rand io.Reader) (string, []byte, error) {
	var b [32]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", nil, fmt.Errorf("authsvc: secret: %w", err)
	}
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(secret))
	return secret, sum[:], nil
}

// newShortID returns a random id of 96 bits, base64url (16 characters).
func newShortID(rand io.Reader) (string, error) {
	var b [12]byte
	if _, err := io.ReadFull(rand, b[:]); err != nil {
		return "", fmt.Errorf("authsvc: id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}
