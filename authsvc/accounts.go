package authsvc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

var (
	errTooManyKeys    = errors.New("authsvc: too many public keys on the account")
	errTooManyGrants  = errors.New("authsvc: too many grants on the account")
	errTooManySecrets = errors.New("authsvc: too many client secrets on the account")
)

// ApplyConfig applies the accounts of cfg to the store, idempotently: applying
// the same configuration twice changes nothing the second time. See
// [AccountConfig] for how a declared account is merged with the stored one.
// cfg is validated first, so an invalid configuration changes nothing. The
// settings of cfg other than Accounts are not changed on a running Service.
func (s *Service) ApplyConfig(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	now := s.now()
	for i := range cfg.Accounts {
		ac := &cfg.Accounts[i]
		keys := make([]AccountKey, 0, len(ac.PublicKeys))
		for _, k := range ac.PublicKeys {
			kid, pub, err := parseAccountJWK(k.JWK, k.KID)
			if err != nil {
				return errConfig("accounts[%d]: %w", i, err)
			}
			keys = append(keys, AccountKey{ID: kid, JWK: k.JWK, Public: pub, CreatedAt: now, ExpiresAt: k.ExpiresAt})
		}
		err := s.store.CreateAccount(ctx, &Account{ID: ac.ID, Description: ac.Description, CreatedAt: now})
		if err != nil && !errors.Is(err, ErrAlreadyExists) {
			return fmt.Errorf("authsvc: apply config: %w", err)
		}
		_, err = s.store.UpdateAccount(ctx, ac.ID, func(a *Account) error {
			a.Description = ac.Description
			if ac.Disabled && !a.Disabled {
				a.Disabled, a.DisabledAt = true, now
			}
			for _, k := range keys {
				a.PublicKeys = upsertKey(a.PublicKeys, k)
			}
			if len(a.PublicKeys) > MaxAccountKeys {
				return errTooManyKeys
			}
			for _, g := range ac.Grants {
				a.Grants = upsertGrant(a.Grants, Grant{Audience: g.Audience, Scopes: sortedCopy(g.Scopes)})
			}
			if len(a.Grants) > MaxGrants {
				return errTooManyGrants
			}
			if ua := ac.UserAssertion; ua != nil {
				a.UserAssertion = UserAssertion{Allowed: ua.Allowed, Tenants: sortedCopy(ua.Tenants)}
			}
			return nil
		})
		s.accounts.forget(ac.ID)
		if err != nil {
			return fmt.Errorf("authsvc: apply config: account %d: %w", i, err)
		}
	}
	return nil
}

// upsertKey adds k or replaces the key with its kid; an identical key keeps
// its creation time.
func upsertKey(keys []AccountKey, k AccountKey) []AccountKey {
	for i := range keys {
		if keys[i].ID == k.ID {
			if string(keys[i].Public) == string(k.Public) && keys[i].ExpiresAt.Equal(k.ExpiresAt) {
				return keys
			}
			keys[i] = k
			return keys
		}
	}
	return append(keys, k)
}

// upsertGrant adds g or replaces the grant of its audience, keeping grants
// sorted by audience.
func upsertGrant(grants []Grant, g Grant) []Grant {
	i, found := slices.BinarySearchFunc(grants, g.Audience, func(e Grant, aud string) int { return strings.Compare(e.Audience, aud) })
	if found {
		grants[i] = g
		return grants
	}
	return slices.Insert(grants, i, g)
}

// findGrant returns the grant for audience.
func findGrant(grants []Grant, audience string) (Grant, bool) {
	for _, g := range grants {
		if g.Audience == audience {
			return g, true
		}
	}
	return Grant{}, false
}

// tenantAllowed reports whether tenant is in the list, or the list holds "*".
func tenantAllowed(tenants []string, tenant string) bool {
	for _, t := range tenants {
		if t == "*" || t == tenant {
			return true
		}
	}
	return false
}

func sortedCopy(ss []string) []string {
	out := slices.Clone(ss)
	slices.Sort(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// keyUsable reports whether an account key is valid at now.
func keyUsable(k *AccountKey, now time.Time) bool {
	return k.ExpiresAt.IsZero() || now.Before(k.ExpiresAt)
}

// secretUsable reports whether a client secret is valid at now.
func secretUsable(c *Secret, now time.Time) bool {
	return c.ExpiresAt.IsZero() || now.Before(c.ExpiresAt)
}
