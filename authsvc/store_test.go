package authsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// storeFactories are the Store implementations under the conformance suite.
func storeFactories() map[string]func(t *testing.T) Store {
	return map[string]func(t *testing.T) Store{
		"memory": func(t *testing.T) Store {
			st := NewMemoryStore()
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
		"sqlite": func(t *testing.T) Store {
			st, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "s.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
	}
}

// TestStoreConformance runs the same suite against every Store.
func TestStoreConformance(t *testing.T) {
	for name, open := range storeFactories() {
		t.Run(name, func(t *testing.T) {
			t.Run("accounts", func(t *testing.T) { testStoreAccounts(t, open(t)) })
			t.Run("assertion ids", func(t *testing.T) { testStoreAssertionIDs(t, open(t)) })
			t.Run("signing keys", func(t *testing.T) { testStoreSigningKeys(t, open(t)) })
			t.Run("revocation", func(t *testing.T) { testStoreRevocation(t, open(t)) })
			t.Run("concurrent updates", func(t *testing.T) { testStoreConcurrentUpdates(t, open(t)) })
		})
	}
}

func version(t *testing.T, st Store) uint64 {
	t.Helper()
	s, err := st.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s.Version
}

func testStoreAccounts(t *testing.T, st Store) {
	ctx := context.Background()
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	a := &Account{
		ID: "orders", Description: "Orders", CreatedAt: now,
		PublicKeys:    []AccountKey{{ID: "k1", JWK: `{"kty":"OKP"}`, Public: []byte{1, 2, 3}, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}},
		Secrets:       []Secret{{ID: "s1", Hash: []byte{9, 9}, CreatedAt: now}},
		Grants:        []Grant{{Audience: "billing", Scopes: []string{"a", "b"}}, {Audience: "empty", Scopes: []string{}}},
		UserAssertion: UserAssertion{Allowed: true, Tenants: []string{"t1"}},
	}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, &Account{ID: "orders"}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate: %v", err)
	}
	got, err := st.GetAccount(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(a) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, a)
	}
	got.Grants[0].Scopes[0] = "changed" // copies: the store is not affected
	if again, _ := st.GetAccount(ctx, "orders"); again.Grants[0].Scopes[0] != "a" {
		t.Fatal("the store shares memory with its caller")
	}
	if _, err := st.GetAccount(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	v := version(t, st)
	// Update: fn's error aborts and changes nothing.
	if _, err := st.UpdateAccount(ctx, "orders", func(a *Account) error {
		a.Description = "lost"
		return errBoom
	}); !errors.Is(err, errBoom) {
		t.Fatalf("aborted update: %v", err)
	}
	if again, _ := st.GetAccount(ctx, "orders"); again.Description != "Orders" {
		t.Fatal("an aborted update changed the account")
	}
	if _, err := st.UpdateAccount(ctx, "nobody", func(*Account) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	upd, err := st.UpdateAccount(ctx, "orders", func(a *Account) error {
		a.Description = "new"
		return nil
	})
	if err != nil || upd.Description != "new" {
		t.Fatalf("update: %v %v", upd, err)
	}
	if version(t, st) != v {
		t.Error("a description change bumped the version")
	}
	if _, err := st.UpdateAccount(ctx, "orders", func(a *Account) error {
		a.Disabled, a.DisabledAt = true, now
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if version(t, st) <= v {
		t.Error("disabling did not bump the version")
	}
	s, _ := st.State(ctx)
	if len(s.DisabledAccounts) != 1 || s.DisabledAccounts[0].Account != "orders" || !s.DisabledAccounts[0].DisabledAt.Equal(now) {
		t.Fatalf("disabled accounts: %v", s.DisabledAccounts)
	}
	// Listing in id order, by pages.
	for _, id := range []string{"c", "a", "spiffe://x/y", "b"} {
		if err := st.CreateAccount(ctx, &Account{ID: id, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	after := ""
	for {
		page, err := st.ListAccounts(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			ids = append(ids, a.ID)
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].ID
	}
	if fmt.Sprint(ids) != "[a b c orders spiffe://x/y]" {
		t.Fatalf("list: %v", ids)
	}
}

func testStoreAssertionIDs(t *testing.T, st Store) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fresh, err := st.UseAssertionID(ctx, "a", "jti-000000000001", now.Add(time.Minute))
	if err != nil || !fresh {
		t.Fatalf("first use: %v %v", fresh, err)
	}
	if fresh, _ := st.UseAssertionID(ctx, "a", "jti-000000000001", now.Add(time.Minute)); fresh {
		t.Fatal("replay accepted")
	}
	if fresh, _ := st.UseAssertionID(ctx, "b", "jti-000000000001", now.Add(time.Minute)); !fresh {
		t.Fatal("same jti of another account refused")
	}
	// Concurrent uses of one jti: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			ok, err := st.UseAssertionID(ctx, "c", "jti-race-00000001", now.Add(time.Minute))
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent uses won", wins.Load())
	}
	// Kept until keepUntil, dropped by Prune after it.
	if err := st.Prune(ctx, now.Add(59*time.Second)); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := st.UseAssertionID(ctx, "a", "jti-000000000001", now.Add(time.Minute)); fresh {
		t.Fatal("pruned before keepUntil")
	}
	if err := st.Prune(ctx, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := st.UseAssertionID(ctx, "a", "jti-000000000001", now.Add(2*time.Minute)); !fresh {
		t.Fatal("not pruned after keepUntil")
	}
}

func testStoreSigningKeys(t *testing.T, st Store) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k1 := SigningKey{ID: "k1", Algorithm: "EdDSA", State: KeyActive, Public: []byte{1}, EncryptedPrivate: []byte{2},
		CreatedAt: now, ActivateAt: now, RetireAt: now.Add(time.Hour), RemoveAt: now.Add(2 * time.Hour)}
	k2 := SigningKey{ID: "k2", Algorithm: "EdDSA", State: KeyNext, Public: []byte{3}, EncryptedPrivate: []byte{4},
		CreatedAt: now, ActivateAt: now.Add(time.Hour), RetireAt: now.Add(3 * time.Hour), RemoveAt: now.Add(4 * time.Hour)}
	v := version(t, st)
	if err := st.UpdateSigningKeys(ctx, func(keys []SigningKey) ([]SigningKey, error) {
		if len(keys) != 0 {
			t.Errorf("fresh store has %d keys", len(keys))
		}
		return []SigningKey{k1, k2}, nil
	}); err != nil {
		t.Fatal(err)
	}
	v2 := version(t, st)
	if v2 <= v {
		t.Error("adding keys did not bump the version")
	}
	got, err := st.SigningKeys(ctx)
	if err != nil || !equalKeys(got, []SigningKey{k1, k2}) {
		t.Fatalf("keys: %v %v", got, err)
	}
	// Unchanged set: no version bump. Error: nothing changes.
	if err := st.UpdateSigningKeys(ctx, func(keys []SigningKey) ([]SigningKey, error) { return keys, nil }); err != nil {
		t.Fatal(err)
	}
	if version(t, st) != v2 {
		t.Error("an unchanged set bumped the version")
	}
	if err := st.UpdateSigningKeys(ctx, func(keys []SigningKey) ([]SigningKey, error) { return nil, errBoom }); !errors.Is(err, errBoom) {
		t.Fatalf("aborted: %v", err)
	}
	// Change one, delete one.
	k1.State = KeyRetired
	if err := st.UpdateSigningKeys(ctx, func(keys []SigningKey) ([]SigningKey, error) { return []SigningKey{k1}, nil }); err != nil {
		t.Fatal(err)
	}
	s, err := st.State(ctx)
	if err != nil || len(s.Keys) != 1 || s.Keys[0].State != KeyRetired || s.Version <= v2 {
		t.Fatalf("after change: %+v %v", s, err)
	}
	// Serialized: concurrent read-modify-write cycles lose nothing.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			err := st.UpdateSigningKeys(ctx, func(keys []SigningKey) ([]SigningKey, error) {
				return append(keys, SigningKey{ID: fmt.Sprintf("c%d", i), Algorithm: "EdDSA", State: KeyRetired, Public: []byte{1}, EncryptedPrivate: []byte{1}, CreatedAt: now}), nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got, _ := st.SigningKeys(ctx); len(got) != 9 {
		t.Fatalf("%d keys after concurrent updates, want 9", len(got))
	}
}

func testStoreRevocation(t *testing.T, st Store) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v := version(t, st)
	if err := st.RevokeToken(ctx, RevokedToken{ID: "j1", ExpiresAt: now.Add(time.Minute), DropAt: now.Add(90 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeAccount(ctx, RevokedAccount{Account: "orders", IssuedBefore: now, DropAt: now.Add(20 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	v2 := version(t, st)
	if v2 < v+2 {
		t.Errorf("version %d after two revocations from %d", v2, v)
	}
	// Revoking again with an earlier time keeps the later one.
	if err := st.RevokeAccount(ctx, RevokedAccount{Account: "orders", IssuedBefore: now.Add(-time.Hour), DropAt: now}); err != nil {
		t.Fatal(err)
	}
	if version(t, st) != v2 {
		t.Error("a weaker revocation bumped the version")
	}
	for _, c := range []struct {
		jti, account string
		iat          time.Time
		want         bool
	}{
		{"j1", "x", now.Add(time.Hour), true},
		{"j2", "orders", now.Add(-time.Second), true},
		{"j2", "orders", now, false},
		{"j2", "other", now.Add(-time.Second), false},
	} {
		got, err := st.TokenRevoked(ctx, c.jti, c.account, c.iat)
		if err != nil || got != c.want {
			t.Errorf("TokenRevoked(%s, %s, %v) = %v %v", c.jti, c.account, c.iat, got, err)
		}
	}
	s, _ := st.State(ctx)
	if len(s.RevokedTokens) != 1 || len(s.RevokedAccounts) != 1 || !s.RevokedAccounts[0].IssuedBefore.Equal(now) || !s.RevokedAccounts[0].DropAt.Equal(now.Add(20*time.Minute)) {
		t.Fatalf("state: %+v", s)
	}
	if err := st.Prune(ctx, now.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	s, _ = st.State(ctx)
	if len(s.RevokedTokens) != 0 || len(s.RevokedAccounts) != 1 || s.Version <= v2 {
		t.Fatalf("after prune: %+v", s)
	}
	if got, _ := st.TokenRevoked(ctx, "j1", "x", now); got {
		t.Error("pruned revocation still applies")
	}
}

func testStoreConcurrentUpdates(t *testing.T, st Store) {
	ctx := context.Background()
	if err := st.CreateAccount(ctx, &Account{ID: "counter"}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, err := st.UpdateAccount(ctx, "counter", func(a *Account) error {
					a.Grants = append(a.Grants, Grant{Audience: fmt.Sprintf("g%03d", len(a.Grants)), Scopes: []string{}})
					return nil
				}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	a, err := st.GetAccount(ctx, "counter")
	if err != nil || len(a.Grants) != 80 {
		t.Fatalf("lost updates: %d grants, %v", len(a.Grants), err)
	}
}

// TestSQLiteRestart: a restart on the same file keeps keys (and they decrypt),
// accounts, grants, secrets and revocations, and tokens issued before still
// verify. A wrong key-encryption key refuses to start.
func TestSQLiteRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "callsign.db")
	clock := newFakeClock()
	keys := newTestKeys(t)
	st, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, st, clock, keys, nil)
	tok := e.issue("orders", "billing")
	revoked := e.issue("orders", "billing")
	secret := e.rotateSecret("orders", false)
	if _, err := e.admin.RevokeToken(ctx, &callsignv1.RevokeTokenRequest{TokenId: revoked.GetTokenId(), ExpireTime: revoked.GetExpireTime()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.SetGrant(ctx, &callsignv1.SetGrantRequest{AccountId: "orders", Grant: &callsignv1.Grant{Audience: "inventory", Scopes: []string{"inventory.read"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.CreateAccount(ctx, &callsignv1.CreateAccountRequest{AccountId: "added-later"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.admin.RevokeAccountTokens(ctx, &callsignv1.RevokeAccountTokensRequest{AccountId: "edge"}); err != nil {
		t.Fatal(err)
	}
	replayed := e.assertion("orders")
	if _, err := e.auth.IssueToken(ctx, issueReq(replayed, "billing")); err != nil {
		t.Fatal(err)
	}
	stateBefore, err := e.svc.GetKeys(ctx, &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	e.closed = true

	// Wrong key-encryption key: refused.
	st2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, KEKSize)
	keysBefore, err := st2.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(48 * time.Hour) // a step now would rotate and write keys
	if _, err := New(ctx, st2, wrong, e.cfg, WithClock(clock.Now)); err == nil {
		t.Fatal("started with a wrong key-encryption key")
	}
	clock.Advance(-48 * time.Hour)
	if keysAfter, _ := st2.SigningKeys(ctx); !equalKeys(keysBefore, keysAfter) {
		t.Fatal("a start with a wrong key-encryption key changed the keys")
	}
	_ = st2.Close()

	clock.Advance(time.Second)
	st3, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	e2 := newEnvWith(t, st3, clock, keys, nil)
	if r := e2.verify(tok.GetToken(), 0, "billing"); !r.GetActive() {
		t.Fatalf("token from before the restart: %v", r.GetReason())
	}
	if r := e2.verify(revoked.GetToken(), 0, "billing"); r.GetActive() || r.GetReason() != callsignv1.Reason_REASON_TOKEN_REVOKED {
		t.Fatalf("revoked token after restart: %v %v", r.GetActive(), r.GetReason())
	}
	after := e2.issue("orders", "billing")
	if after.GetKeyId() != tok.GetKeyId() {
		t.Errorf("signing key changed over the restart: %s, was %s", after.GetKeyId(), tok.GetKeyId())
	}
	if _, err := e2.auth.IssueToken(ctx, secretReq("orders", secret, "inventory")); err != nil {
		t.Fatalf("secret or grant lost: %v", err)
	}
	if _, err := e2.auth.IssueToken(ctx, issueReq(replayed, "billing")); err == nil {
		t.Fatal("an assertion used before the restart was accepted again")
	}
	if _, err := e2.admin.GetAccount(ctx, &callsignv1.GetAccountRequest{AccountId: "added-later"}); err != nil {
		t.Fatalf("account lost: %v", err)
	}
	stateAfter, err := e2.svc.GetKeys(ctx, &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if string(stateAfter.GetJwks()) != string(stateBefore.GetJwks()) || len(stateAfter.GetRevokedTokens()) != 1 ||
		len(stateAfter.GetRevokedAccounts()) != 1 || len(stateAfter.GetDisabledAccounts()) != 1 || stateAfter.GetVersion() < stateBefore.GetVersion() {
		t.Fatalf("published state changed over the restart:\n%v\n%v", stateBefore, stateAfter)
	}
	v, err := schemaVersion(ctx, st3)
	if err != nil || v != len(sqliteMigrations) {
		t.Fatalf("schema version %d %v", v, err)
	}
}

// TestSQLiteRefusesNewerSchema: a database written by a newer build is not
// opened.
func TestSQLiteRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.(*sqliteStore).w.ExecContext(ctx, `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if st, err := OpenSQLite(ctx, path); err == nil {
		_ = st.Close()
		t.Fatal("opened a newer schema")
	}
}

// TestSQLiteTwoReplicas: two Services on one SQLite file (as two processes
// would be) step the lifecycle and rotate concurrently; the store's lock keeps
// exactly one active and one next key, and each replica verifies the tokens
// of the other.
func TestSQLiteTwoReplicas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "shared.db")
	clock := newFakeClock()
	keys := newTestKeys(t)
	var envs []*env
	for range 2 {
		st, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, newEnvWith(t, st, clock, keys, nil))
	}
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Go(func() {
			for range 10 {
				if err := e.svc.RotateNow(ctx); err != nil {
					t.Error(err)
				}
				if err := e.svc.Tick(ctx); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	stored, err := envs[0].store.SigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	states := map[KeyState]int{}
	for _, k := range stored {
		states[k.State]++
	}
	if states[KeyActive] != 1 || states[KeyNext] != 1 || states[KeyRetired] != 20 {
		t.Fatalf("after 20 rotations by two replicas: %v", states)
	}
	// Each replica picks up the other's rotation within keyReloadInterval.
	clock.Advance(keyReloadInterval)
	a := envs[0].issue("orders", "billing")
	b := envs[1].issue("orders", "billing")
	if a.GetKeyId() != b.GetKeyId() {
		t.Errorf("replicas sign with different keys: %s, %s", a.GetKeyId(), b.GetKeyId())
	}
	for _, e := range envs {
		for _, tok := range []string{a.GetToken(), b.GetToken()} {
			if r := e.verify(tok, 0, "billing"); !r.GetActive() {
				t.Errorf("cross-replica verification: %v", r.GetReason())
			}
		}
	}
}

// TestSQLiteCheckpointsOnClose: the store's own checkpointing leaves a
// complete database file: after Close the WAL is empty.
func TestSQLiteCheckpointsOnClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	st, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := st.CreateAccount(ctx, &Account{ID: fmt.Sprintf("a%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no WAL while open: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode: %v %v", fi.Mode(), err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() != 0 {
		t.Fatalf("WAL of %d bytes left after Close", fi.Size())
	}
}
