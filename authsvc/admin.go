package authsvc

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// adminServer implements AdminService. Every RPC validates its whole request
// before touching storage, and changes storage in one transaction, so a failed
// request changes nothing.
type adminServer struct {
	callsignv1.UnimplementedAdminServiceServer
	s *Service
}

// Errors raised inside account updates, mapped by adminError.
var (
	errKeyExists     = errors.New("authsvc: key id exists")
	errKeyNotFound   = errors.New("authsvc: key not found")
	errGrantNotFound = errors.New("authsvc: grant not found")
	errTooMany       = status.Error(codes.FailedPrecondition, "callsign: account limit reached")
)

// adminError maps storage and update errors to statuses with fixed messages.
func (s *Service) adminError(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, ErrNotFound), errors.Is(err, errKeyNotFound), errors.Is(err, errGrantNotFound):
		return errNotFound
	case errors.Is(err, ErrAlreadyExists), errors.Is(err, errKeyExists):
		return errAlreadyExists
	case errors.Is(err, errTooManyKeys), errors.Is(err, errTooManyGrants), errors.Is(err, errTooManySecrets):
		return errTooMany
	case errors.Is(err, errTooManySigningKeys):
		return errRotationRefused
	}
	return s.storeError(ctx, err)
}

// audit logs one admin change (ids only; never a secret or key material).
func (s *Service) audit(ctx context.Context, action, account string) {
	s.log.LogAttrs(ctx, slog.LevelInfo, "authsvc: admin", slog.String("action", action), slog.String("account", account))
}

func (a *adminServer) CreateAccount(ctx context.Context, req *callsignv1.CreateAccountRequest) (*callsignv1.CreateAccountResponse, error) {
	s := a.s
	if !validCreateAccountRequest(req) {
		return nil, errRequestInvalid
	}
	acct := &Account{ID: req.GetAccountId(), Description: req.GetDescription(), CreatedAt: s.now()}
	err := s.store.CreateAccount(ctx, acct)
	s.accounts.forget(acct.ID)
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "create account", acct.ID)
	return &callsignv1.CreateAccountResponse{Account: accountProto(acct)}, nil
}

func (a *adminServer) GetAccount(ctx context.Context, req *callsignv1.GetAccountRequest) (*callsignv1.GetAccountResponse, error) {
	s := a.s
	if req == nil || !validAccountIDRequest(req.GetAccountId(), req) {
		return nil, errRequestInvalid
	}
	acct, err := s.store.GetAccount(ctx, req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	return &callsignv1.GetAccountResponse{Account: accountProto(acct)}, nil
}

// Page tokens are the base64url of the last id of the previous page.
func encodePageToken(lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

func decodePageToken(t string) (string, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(t)
	if err != nil || !validServiceID(string(b)) {
		return "", false
	}
	return string(b), true
}

func (a *adminServer) ListAccounts(ctx context.Context, req *callsignv1.ListAccountsRequest) (*callsignv1.ListAccountsResponse, error) {
	s := a.s
	if !validListAccountsRequest(req) {
		return nil, errRequestInvalid
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = DefaultPageSize
	}
	after := ""
	if t := req.GetPageToken(); t != "" {
		after, _ = decodePageToken(t)
	}
	accts, err := s.store.ListAccounts(ctx, after, size+1)
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	resp := &callsignv1.ListAccountsResponse{}
	if len(accts) > size {
		accts = accts[:size]
		resp.NextPageToken = encodePageToken(accts[len(accts)-1].ID)
	}
	for _, acct := range accts {
		resp.Accounts = append(resp.Accounts, accountProto(acct))
	}
	return resp, nil
}

func (a *adminServer) DisableAccount(ctx context.Context, req *callsignv1.DisableAccountRequest) (*callsignv1.DisableAccountResponse, error) {
	s := a.s
	if req == nil || !validAccountIDRequest(req.GetAccountId(), req) {
		return nil, errRequestInvalid
	}
	now := s.now()
	acct, err := s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		if !acct.Disabled {
			acct.Disabled, acct.DisabledAt = true, now
		}
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "disable account", acct.ID)
	return &callsignv1.DisableAccountResponse{Account: accountProto(acct)}, nil
}

func (a *adminServer) EnableAccount(ctx context.Context, req *callsignv1.EnableAccountRequest) (*callsignv1.EnableAccountResponse, error) {
	s := a.s
	if req == nil || !validAccountIDRequest(req.GetAccountId(), req) {
		return nil, errRequestInvalid
	}
	acct, err := s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		acct.Disabled, acct.DisabledAt = false, time.Time{}
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "enable account", acct.ID)
	return &callsignv1.EnableAccountResponse{Account: accountProto(acct)}, nil
}

func (a *adminServer) AddPublicKey(ctx context.Context, req *callsignv1.AddPublicKeyRequest) (*callsignv1.AddPublicKeyResponse, error) {
	s := a.s
	if !validAddPublicKeyRequest(req) {
		return nil, errRequestInvalid
	}
	kid, pub, err := parseAccountJWK(req.GetJwk(), req.GetKeyId())
	if err != nil {
		return nil, errRequestInvalid
	}
	now := s.now()
	key := AccountKey{ID: kid, JWK: req.GetJwk(), Public: pub, CreatedAt: now}
	if req.GetExpireTime() != nil {
		key.ExpiresAt = req.GetExpireTime().AsTime()
		if !key.ExpiresAt.After(now) {
			return nil, errRequestInvalid
		}
	}
	_, err = s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		for _, k := range acct.PublicKeys {
			if k.ID == kid {
				return errKeyExists
			}
		}
		if len(acct.PublicKeys) >= MaxAccountKeys {
			return errTooManyKeys
		}
		acct.PublicKeys = append(acct.PublicKeys, key)
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "add public key", req.GetAccountId())
	return &callsignv1.AddPublicKeyResponse{PublicKey: publicKeyProto(&key)}, nil
}

func (a *adminServer) RemovePublicKey(ctx context.Context, req *callsignv1.RemovePublicKeyRequest) (*callsignv1.RemovePublicKeyResponse, error) {
	s := a.s
	if !validRemovePublicKeyRequest(req) {
		return nil, errRequestInvalid
	}
	_, err := s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		i := slices.IndexFunc(acct.PublicKeys, func(k AccountKey) bool { return k.ID == req.GetKeyId() })
		if i < 0 {
			return errKeyNotFound
		}
		acct.PublicKeys = slices.Delete(acct.PublicKeys, i, i+1)
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "remove public key", req.GetAccountId())
	return &callsignv1.RemovePublicKeyResponse{}, nil
}

func (a *adminServer) RotateSecret(ctx context.Context, req *callsignv1.RotateSecretRequest) (*callsignv1.RotateSecretResponse, error) {
	s := a.s
	if !validRotateSecretRequest(req) {
		return nil, errRequestInvalid
	}
	now := s.now()
	var expires time.Time
	if req.GetExpireTime() != nil {
		expires = req.GetExpireTime().AsTime()
		if !expires.After(now) {
			return nil, errRequestInvalid
		}
	}
	secret, hash, err := newSecret(s.rand)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	id, err := newShortID(s.rand)
	if err != nil {
		return nil, s.internal(ctx, err)
	}
	rec := Secret{ID: id, Hash: hash, CreatedAt: now, ExpiresAt: expires}
	_, err = s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		kept := acct.Secrets[:0:0]
		if !req.GetReplaceExisting() {
			for _, c := range acct.Secrets {
				if secretUsable(&c, now) {
					kept = append(kept, c)
				}
			}
		}
		if len(kept) >= MaxAccountSecrets {
			return errTooManySecrets
		}
		acct.Secrets = append(kept, rec)
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "rotate secret", req.GetAccountId())
	return &callsignv1.RotateSecretResponse{Secret: secret, Info: secretProto(&rec)}, nil
}

func (a *adminServer) SetGrant(ctx context.Context, req *callsignv1.SetGrantRequest) (*callsignv1.SetGrantResponse, error) {
	s := a.s
	if !validSetGrantRequest(req) {
		return nil, errRequestInvalid
	}
	g := Grant{Audience: req.GetGrant().GetAudience(), Scopes: sortedCopy(req.GetGrant().GetScopes())}
	acct, err := s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		acct.Grants = upsertGrant(acct.Grants, g)
		if len(acct.Grants) > MaxGrants {
			return errTooManyGrants
		}
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "set grant", acct.ID)
	return &callsignv1.SetGrantResponse{Account: accountProto(acct)}, nil
}

func (a *adminServer) DeleteGrant(ctx context.Context, req *callsignv1.DeleteGrantRequest) (*callsignv1.DeleteGrantResponse, error) {
	s := a.s
	if !validDeleteGrantRequest(req) {
		return nil, errRequestInvalid
	}
	acct, err := s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		i := slices.IndexFunc(acct.Grants, func(g Grant) bool { return g.Audience == req.GetAudience() })
		if i < 0 {
			return errGrantNotFound
		}
		acct.Grants = slices.Delete(acct.Grants, i, i+1)
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "delete grant", acct.ID)
	return &callsignv1.DeleteGrantResponse{Account: accountProto(acct)}, nil
}

func (a *adminServer) SetUserAssertion(ctx context.Context, req *callsignv1.SetUserAssertionRequest) (*callsignv1.SetUserAssertionResponse, error) {
	s := a.s
	if !validSetUserAssertionRequest(req) {
		return nil, errRequestInvalid
	}
	ua := UserAssertion{Allowed: req.GetUserAssertion().GetAllowed(), Tenants: sortedCopy(req.GetUserAssertion().GetTenants())}
	acct, err := s.store.UpdateAccount(ctx, req.GetAccountId(), func(acct *Account) error {
		acct.UserAssertion = ua
		return nil
	})
	s.accounts.forget(req.GetAccountId())
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "set user assertion", acct.ID)
	return &callsignv1.SetUserAssertionResponse{Account: accountProto(acct)}, nil
}

func (a *adminServer) RevokeToken(ctx context.Context, req *callsignv1.RevokeTokenRequest) (*callsignv1.RevokeTokenResponse, error) {
	s := a.s
	if !validRevokeTokenRequest(req) {
		return nil, errRequestInvalid
	}
	now := s.now()
	exp := now.Add(s.cfg.MaxTokenLifetime)
	if req.GetExpireTime() != nil {
		exp = req.GetExpireTime().AsTime()
		// No token of this issuer expires later than this.
		if exp.After(now.Add(s.cfg.MaxTokenLifetime + s.cfg.Skew)) {
			return nil, errRequestInvalid
		}
	}
	r := RevokedToken{ID: req.GetTokenId(), ExpiresAt: exp, DropAt: exp.Add(verifierMargin(s.cfg.Skew))}
	if err := s.store.RevokeToken(ctx, r); err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "authsvc: admin", slog.String("action", "revoke token"), slog.String("jti", r.ID))
	return &callsignv1.RevokeTokenResponse{}, nil
}

func (a *adminServer) RevokeAccountTokens(ctx context.Context, req *callsignv1.RevokeAccountTokensRequest) (*callsignv1.RevokeAccountTokensResponse, error) {
	s := a.s
	if !validRevokeAccountTokensRequest(req) {
		return nil, errRequestInvalid
	}
	now := s.now()
	before := now
	if req.GetIssuedBefore() != nil {
		before = req.GetIssuedBefore().AsTime()
		if before.After(now.Add(s.cfg.Skew)) {
			return nil, errRequestInvalid
		}
	}
	if _, err := s.store.GetAccount(ctx, req.GetAccountId()); err != nil {
		return nil, s.adminError(ctx, err)
	}
	// The last token issued before `before` expires at most MaxTokenLifetime
	// later; verifiers may accept it for verifierMargin more.
	r := RevokedAccount{
		Account:      req.GetAccountId(),
		IssuedBefore: before,
		DropAt:       before.Add(s.cfg.MaxTokenLifetime + verifierMargin(s.cfg.Skew) + keyReloadInterval),
	}
	if err := s.store.RevokeAccount(ctx, r); err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "revoke account tokens", r.Account)
	return &callsignv1.RevokeAccountTokensResponse{}, nil
}

func (a *adminServer) ListSigningKeys(ctx context.Context, req *callsignv1.ListSigningKeysRequest) (*callsignv1.ListSigningKeysResponse, error) {
	s := a.s
	if req == nil || !validEmptyRequest(req) {
		return nil, errRequestInvalid
	}
	keys, err := s.signingKeysProto(ctx)
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	return &callsignv1.ListSigningKeysResponse{Keys: keys}, nil
}

func (a *adminServer) RotateSigningKeys(ctx context.Context, req *callsignv1.RotateSigningKeysRequest) (*callsignv1.RotateSigningKeysResponse, error) {
	s := a.s
	if req == nil || !validEmptyRequest(req) {
		return nil, errRequestInvalid
	}
	if err := s.RotateNow(ctx); err != nil {
		return nil, s.adminError(ctx, err)
	}
	s.audit(ctx, "rotate signing keys", "")
	keys, err := s.signingKeysProto(ctx)
	if err != nil {
		return nil, s.adminError(ctx, err)
	}
	return &callsignv1.RotateSigningKeysResponse{Keys: keys}, nil
}

// signingKeysProto lists the stored keys not yet removed, newest first.
func (s *Service) signingKeysProto(ctx context.Context) ([]*callsignv1.SigningKey, error) {
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	slices.SortFunc(keys, func(a, b SigningKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out := make([]*callsignv1.SigningKey, 0, len(keys))
	for _, k := range keys {
		if k.State == KeyRetired && !k.RemoveAt.After(now) {
			continue
		}
		pk := &callsignv1.SigningKey{
			KeyId:        k.ID,
			Algorithm:    k.Algorithm,
			CreateTime:   timestamppb.New(k.CreatedAt),
			ActivateTime: timestamppb.New(k.ActivateAt),
			RetireTime:   timestamppb.New(k.RetireAt),
			RemoveTime:   timestamppb.New(k.RemoveAt),
		}
		switch k.State {
		case KeyNext:
			pk.State = callsignv1.SigningKeyState_SIGNING_KEY_STATE_NEXT
		case KeyActive:
			pk.State = callsignv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE
		case KeyRetired:
			pk.State = callsignv1.SigningKeyState_SIGNING_KEY_STATE_RETIRED
		}
		out = append(out, pk)
	}
	return out, nil
}

func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func accountProto(a *Account) *callsignv1.Account {
	out := &callsignv1.Account{
		AccountId:   a.ID,
		Description: a.Description,
		Status:      callsignv1.AccountStatus_ACCOUNT_STATUS_ACTIVE,
		CreateTime:  timestamppb.New(a.CreatedAt),
		UserAssertion: &callsignv1.UserAssertion{
			Allowed: a.UserAssertion.Allowed,
			Tenants: slices.Clone(a.UserAssertion.Tenants),
		},
	}
	if a.Disabled {
		out.Status = callsignv1.AccountStatus_ACCOUNT_STATUS_DISABLED
		out.DisableTime = optionalTime(a.DisabledAt)
	}
	for i := range a.PublicKeys {
		out.PublicKeys = append(out.PublicKeys, publicKeyProto(&a.PublicKeys[i]))
	}
	for i := range a.Secrets {
		out.Secrets = append(out.Secrets, secretProto(&a.Secrets[i]))
	}
	for _, g := range a.Grants {
		out.Grants = append(out.Grants, &callsignv1.Grant{Audience: g.Audience, Scopes: slices.Clone(g.Scopes)})
	}
	return out
}

func publicKeyProto(k *AccountKey) *callsignv1.PublicKey {
	return &callsignv1.PublicKey{
		KeyId:      k.ID,
		Jwk:        k.JWK,
		CreateTime: timestamppb.New(k.CreatedAt),
		ExpireTime: optionalTime(k.ExpiresAt),
	}
}

func secretProto(c *Secret) *callsignv1.SecretInfo {
	return &callsignv1.SecretInfo{
		SecretId:   c.ID,
		CreateTime: timestamppb.New(c.CreatedAt),
		ExpireTime: optionalTime(c.ExpiresAt),
	}
}
