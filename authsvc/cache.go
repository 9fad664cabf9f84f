package authsvc

import (
	"context"
	"errors"
	"sync"
	"time"
)

// accountCacheTTL bounds how long an account read from the store is used
// without reading it again. Changes made through this Service take effect at
// once (the entry is dropped); changes made by another replica on a shared
// store take effect within this time.
const accountCacheTTL = time.Second

// maxCachedAccounts bounds the cache; when full it is emptied.
const maxCachedAccounts = 10000

// accountCache keeps recent account lookups, found or not, so that IssueToken
// and Verify do not read the store on every call. Absent accounts are cached
// like present ones, so that a lookup costs the same whether the account
// exists or not. Safe for concurrent use.
type accountCache struct {
	mu sync.RWMutex
	m  map[string]cachedAccount
}

type cachedAccount struct {
	a  *Account // nil: no such account
	at time.Time
}

func (c *accountCache) get(id string, now time.Time) (*Account, bool) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || now.Before(e.at) || now.Sub(e.at) >= accountCacheTTL {
		return nil, false
	}
	return e.a, true
}

func (c *accountCache) put(id string, a *Account, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedAccounts {
		c.m = make(map[string]cachedAccount)
	}
	c.m[id] = cachedAccount{a: a, at: at}
}

func (c *accountCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, id)
}

// lookupAccount returns the account or nil when there is none, from the cache
// when fresh. The returned account is shared: callers must not modify it.
func (s *Service) lookupAccount(ctx context.Context, id string) (*Account, error) {
	if !validServiceID(id) {
		return nil, nil
	}
	now := s.now()
	if a, ok := s.accounts.get(id, now); ok {
		return a, nil
	}
	a, err := s.store.GetAccount(ctx, id)
	if errors.Is(err, ErrNotFound) {
		a, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.accounts.put(id, a, now)
	return a, nil
}
