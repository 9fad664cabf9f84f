package authsvc

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// memoryStore is the in-memory [Store]: one mutex, deep copies in and out.
type memoryStore struct {
	mu              sync.Mutex
	version         uint64
	accounts        map[string]*Account
	usedIDs         map[string]time.Time // account + "\x00" + jti -> keep until
	keys            []SigningKey
	revokedTokens   map[string]RevokedToken
	revokedAccounts map[string]RevokedAccount
}

// NewMemoryStore returns an empty in-memory [Store], for tests and throw-away
// development servers. Everything is lost when the process ends.
func NewMemoryStore() Store {
	return &memoryStore{
		accounts:        map[string]*Account{},
		usedIDs:         map[string]time.Time{},
		revokedTokens:   map[string]RevokedToken{},
		revokedAccounts: map[string]RevokedAccount{},
	}
}

func (m *memoryStore) CreateAccount(ctx context.Context, a *Account) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.accounts[a.ID]; ok {
		return ErrAlreadyExists
	}
	m.accounts[a.ID] = cloneAccount(a)
	if a.Disabled {
		m.version++
	}
	return nil
}

func (m *memoryStore) GetAccount(ctx context.Context, id string) (*Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.accounts[id]
	if !ok {
		return nil, ErrNotFound
	}
	return cloneAccount(a), nil
}

func (m *memoryStore) ListAccounts(ctx context.Context, after string, limit int) ([]*Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.accounts))
	for id := range m.accounts {
		if id > after {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]*Account, 0, len(ids))
	for _, id := range ids {
		out = append(out, cloneAccount(m.accounts[id]))
	}
	return out, nil
}

func (m *memoryStore) UpdateAccount(ctx context.Context, id string, fn func(a *Account) error) (*Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.accounts[id]
	if !ok {
		return nil, ErrNotFound
	}
	a := cloneAccount(old)
	if err := fn(a); err != nil {
		return nil, err
	}
	a.ID = id
	if a.Disabled != old.Disabled || !a.DisabledAt.Equal(old.DisabledAt) {
		m.version++
	}
	m.accounts[id] = cloneAccount(a)
	return a, nil
}

func (m *memoryStore) UseAssertionID(ctx context.Context, account, jti string, keepUntil time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k := account + "\x00" + jti
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, seen := m.usedIDs[k]; seen {
		return false, nil
	}
	m.usedIDs[k] = keepUntil
	return true, nil
}

func (m *memoryStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneKeys(m.keys), nil
}

func (m *memoryStore) UpdateSigningKeys(ctx context.Context, fn func(keys []SigningKey) ([]SigningKey, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := fn(cloneKeys(m.keys))
	if err != nil {
		return err
	}
	if !equalKeys(m.keys, next) {
		m.keys = cloneKeys(next)
		m.version++
	}
	return nil
}

func (m *memoryStore) RevokeToken(ctx context.Context, r RevokedToken) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.revokedTokens[r.ID]; ok {
		if !r.DropAt.After(old.DropAt) {
			return nil
		}
	}
	m.revokedTokens[r.ID] = r
	m.version++
	return nil
}

func (m *memoryStore) RevokeAccount(ctx context.Context, r RevokedAccount) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.revokedAccounts[r.Account]; ok {
		if old.IssuedBefore.After(r.IssuedBefore) {
			r.IssuedBefore = old.IssuedBefore
		}
		if old.DropAt.After(r.DropAt) {
			r.DropAt = old.DropAt
		}
		if old == r {
			return nil
		}
	}
	m.revokedAccounts[r.Account] = r
	m.version++
	return nil
}

func (m *memoryStore) TokenRevoked(ctx context.Context, jti, account string, iat time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.revokedTokens[jti]; ok {
		return true, nil
	}
	if r, ok := m.revokedAccounts[account]; ok && iat.Before(r.IssuedBefore) {
		return true, nil
	}
	return false, nil
}

func (m *memoryStore) State(ctx context.Context) (*State, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := &State{Version: m.version, Keys: cloneKeys(m.keys)}
	for _, r := range m.revokedTokens {
		st.RevokedTokens = append(st.RevokedTokens, r)
	}
	for _, r := range m.revokedAccounts {
		st.RevokedAccounts = append(st.RevokedAccounts, r)
	}
	for _, a := range m.accounts {
		if a.Disabled {
			st.DisabledAccounts = append(st.DisabledAccounts, DisabledAccount{Account: a.ID, DisabledAt: a.DisabledAt})
		}
	}
	sortState(st)
	return st, nil
}

func (m *memoryStore) Prune(ctx context.Context, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := false
	for id, r := range m.revokedTokens {
		if !r.DropAt.After(now) {
			delete(m.revokedTokens, id)
			changed = true
		}
	}
	for id, r := range m.revokedAccounts {
		if !r.DropAt.After(now) {
			delete(m.revokedAccounts, id)
			changed = true
		}
	}
	for k, t := range m.usedIDs {
		if !t.After(now) {
			delete(m.usedIDs, k)
		}
	}
	if changed {
		m.version++
	}
	return nil
}

func (m *memoryStore) Close() error { return nil }

// sortState orders everything in a State deterministically.
func sortState(st *State) {
	slices.SortFunc(st.Keys, func(a, b SigningKey) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(st.RevokedTokens, func(a, b RevokedToken) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(st.RevokedAccounts, func(a, b RevokedAccount) int { return strings.Compare(a.Account, b.Account) })
	slices.SortFunc(st.DisabledAccounts, func(a, b DisabledAccount) int { return strings.Compare(a.Account, b.Account) })
}

func cloneAccount(a *Account) *Account {
	c := *a
	c.PublicKeys = slices.Clone(a.PublicKeys)
	for i := range c.PublicKeys {
		c.PublicKeys[i].Public = slices.Clone(c.PublicKeys[i].Public)
	}
	c.Secrets = slices.Clone(a.Secrets)
	for i := range c.Secrets {
		c.Secrets[i].Hash = slices.Clone(c.Secrets[i].Hash)
	}
	c.Grants = slices.Clone(a.Grants)
	for i := range c.Grants {
		c.Grants[i].Scopes = slices.Clone(c.Grants[i].Scopes)
	}
	c.UserAssertion.Tenants = slices.Clone(a.UserAssertion.Tenants)
	return &c
}

func cloneKeys(ks []SigningKey) []SigningKey {
	out := slices.Clone(ks)
	for i := range out {
		out[i].Public = slices.Clone(out[i].Public)
		out[i].EncryptedPrivate = slices.Clone(out[i].EncryptedPrivate)
	}
	return out
}

// equalKeys reports whether two key sets are the same, in any order.
func equalKeys(a, b []SigningKey) bool {
	if len(a) != len(b) {
		return false
	}
	byID := make(map[string]*SigningKey, len(a))
	for i := range a {
		byID[a[i].ID] = &a[i]
	}
	for i := range b {
		o, ok := byID[b[i].ID]
		if !ok || !sameKey(o, &b[i]) {
			return false
		}
	}
	return true
}

func sameKey(a, b *SigningKey) bool {
	return a.ID == b.ID && a.Algorithm == b.Algorithm && a.State == b.State &&
		string(a.Public) == string(b.Public) && string(a.EncryptedPrivate) == string(b.EncryptedPrivate) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ActivateAt.Equal(b.ActivateAt) &&
		a.RetireAt.Equal(b.RetireAt) && a.RemoveAt.Equal(b.RemoveAt)
}
