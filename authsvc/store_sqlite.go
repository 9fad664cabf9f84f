package authsvc

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "modernc.org/sqlite" // the pure-Go SQLite driver, registered as "sqlite"
)

// sqliteMigrations are the schema versions, in order. Migration i (from 1)
// brings the schema from version i-1 to i; each runs in its own transaction
// with the update of schema_version. Never edit one that has shipped: append.
var sqliteMigrations = []string{
	// 1: accounts (a JSON document per account), used assertion ids, signing
	// keys, revocations and the state version.
	`CREATE TABLE state_version (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
	INSERT INTO state_version (id, version) VALUES (1, 0);
	CREATE TABLE accounts (
		id          TEXT PRIMARY KEY,
		disabled    INTEGER NOT NULL,
		disabled_at INTEGER NOT NULL,
		created_at  INTEGER NOT NULL,
		doc         BLOB NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE used_assertions (
		account    TEXT NOT NULL,
		jti        TEXT NOT NULL,
		keep_until INTEGER NOT NULL,
		PRIMARY KEY (account, jti)
	) WITHOUT ROWID;
	CREATE INDEX used_assertions_keep_until ON used_assertions (keep_until);
	CREATE TABLE signing_keys (
		id                TEXT PRIMARY KEY,
		algorithm         TEXT NOT NULL,
		state             TEXT NOT NULL CHECK (state IN ('next', 'active', 'retired')),
		public_key        BLOB NOT NULL,
		encrypted_private BLOB NOT NULL,
		created_at        INTEGER NOT NULL,
		activate_at       INTEGER NOT NULL,
		retire_at         INTEGER NOT NULL,
		remove_at         INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE revoked_tokens (
		jti        TEXT PRIMARY KEY,
		expires_at INTEGER NOT NULL,
		drop_at    INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE revoked_accounts (
		account       TEXT PRIMARY KEY,
		issued_before INTEGER NOT NULL,
		drop_at       INTEGER NOT NULL
	) WITHOUT ROWID;`,
}

// sqliteStore is the embedded [Store]: one SQLite file in WAL mode, a single
// writer connection (transactions start IMMEDIATE, so writers queue instead of
// failing) and a pool of read-only connections that read consistent snapshots
// while the writer works.
type sqliteStore struct {
	w    *sql.DB // one connection: every write
	r    *sql.DB // read-only connections
	ckpt *sql.DB // one connection: WAL checkpoints, off the write path

	// Prepared statements of the hot paths (IssueToken, Verify).
	getAccount   *sql.Stmt
	useAssertion *sql.Stmt
	tokenRevoked *sql.Stmt

	// Group commit of used assertion ids: concurrent UseAssertionID calls are
	// written in one transaction by one goroutine, so that a burst of
	// IssueToken calls costs one commit rather than one each.
	useQueue chan *useRequest
	stop     chan struct{}
	stopped  chan struct{}
	ckptDone chan struct{}
}

// useRequest is one UseAssertionID call waiting for the group commit.
type useRequest struct {
	account, jti string
	keepUntil    int64
	fresh        bool
	err          error
	done         chan struct{}
}

// maxUseBatch bounds the assertion ids written in one transaction.
const maxUseBatch = 256

// OpenSQLite opens the SQLite store at path, creating the file (mode 0600) and
// its schema when missing and applying pending migrations. The database runs in
// WAL mode with a busy timeout of 5 s and synchronous=NORMAL: a committed
// change survives a crash of the process; after a crash of the machine the
// last transactions before it may be lost. WAL checkpoints (which write the
// database file and sync it) run every [sqliteCheckpointInterval] on a
// connection of their own, so that no commit waits for a disk sync. Close it
// with [Store.Close].
func OpenSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" {
		return nil, errors.New("authsvc: sqlite: empty path")
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if f != nil {
			_ = f.Close()
		}
	}
	dsn := func(extra string) string {
		return "file:" + (&url.URL{Path: path}).EscapedPath() +
			"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
			"&_pragma=foreign_keys(1)&_time_format=sqlite" + extra
	}
	w, err := sql.Open("sqlite", dsn("&_txlock=immediate&_pragma=wal_autocheckpoint(0)"))
	if err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	st := &sqliteStore{w: w}
	if err := st.migrate(ctx); err != nil {
		_ = w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn("&_pragma=query_only(1)"))
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	r.SetConnMaxIdleTime(0)
	st.r = r
	ckpt, err := sql.Open("sqlite", dsn(""))
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	ckpt.SetMaxOpenConns(1)
	st.ckpt = ckpt
	if err := st.prepare(ctx); err != nil {
		_ = st.Close()
		return nil, err
	}
	st.useQueue = make(chan *useRequest, maxUseBatch)
	st.stop = make(chan struct{})
	st.stopped = make(chan struct{})
	st.ckptDone = make(chan struct{})
	go st.useLoop()
	go st.checkpointLoop() //nolint:gosec // G118: the loop lives as long as the store, not as the ctx of OpenSQLite
	return st, nil
}

// sqliteCheckpointInterval is how often the WAL is checkpointed.
const sqliteCheckpointInterval = time.Second

// checkpointLoop checkpoints the WAL (PASSIVE: it waits for no reader or
// writer) until the store is closed. A failed checkpoint is retried at the
// next interval; the WAL only grows meanwhile.
func (st *sqliteStore) checkpointLoop() {
	defer close(st.ckptDone)
	t := time.NewTicker(sqliteCheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-st.stop:
			return
		case <-t.C:
			_, _ = st.ckpt.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// useLoop writes queued assertion ids, as many as are waiting (up to
// maxUseBatch) per transaction, until the store is closed.
func (st *sqliteStore) useLoop() {
	defer close(st.stopped)
	batch := make([]*useRequest, 0, maxUseBatch)
	for {
		select {
		case <-st.stop:
			return
		case r := <-st.useQueue:
			batch = append(batch[:0], r)
		}
	fill:
		for len(batch) < maxUseBatch {
			select {
			case r := <-st.useQueue:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		st.writeUses(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// writeUses inserts a batch in one transaction and sets each request's result.
// When the transaction fails, every request of the batch fails.
func (st *sqliteStore) writeUses(batch []*useRequest) {
	fail := func(err error) {
		for _, r := range batch {
			r.fresh, r.err = false, fmt.Errorf("authsvc: sqlite: %w", err)
		}
	}
	ctx := context.Background()
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	stmt := tx.StmtContext(ctx, st.useAssertion)
	defer stmt.Close()
	for _, r := range batch {
		res, err := stmt.ExecContext(ctx, r.account, r.jti, r.keepUntil)
		if err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
		n, err := res.RowsAffected()
		if err != nil {
			_ = tx.Rollback()
			fail(err)
			return
		}
		r.fresh = n == 1
	}
	if err := tx.Commit(); err != nil {
		fail(err)
	}
}

func (st *sqliteStore) prepare(ctx context.Context) error {
	var err error
	if st.getAccount, err = st.r.PrepareContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`); err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	if st.useAssertion, err = st.w.PrepareContext(ctx, `INSERT INTO used_assertions (account, jti, keep_until) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`); err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	if st.tokenRevoked, err = st.r.PrepareContext(ctx, `SELECT
		(SELECT count(*) FROM revoked_tokens WHERE jti = ?) +
		(SELECT count(*) FROM revoked_accounts WHERE account = ? AND issued_before > ?)`); err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return nil
}

func (st *sqliteStore) migrate(ctx context.Context) error {
	if _, err := st.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	for {
		done, err := st.migrateOne(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// migrateOne applies the next pending migration, in one transaction; done is
// true when none is pending.
func (st *sqliteStore) migrateOne(ctx context.Context) (done bool, err error) {
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var v int
	switch err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return false, fmt.Errorf("authsvc: sqlite: %w", err)
		}
	case err != nil:
		return false, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	if v > len(sqliteMigrations) {
		return false, fmt.Errorf("authsvc: sqlite: schema version %d is newer than this build knows (%d)", v, len(sqliteMigrations))
	}
	if v == len(sqliteMigrations) {
		return true, tx.Commit()
	}
	if _, err := tx.ExecContext(ctx, sqliteMigrations[v]); err != nil {
		return false, fmt.Errorf("authsvc: sqlite: migration %d: %w", v+1, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v+1); err != nil {
		return false, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return false, nil
}

// SchemaVersion returns the schema version of an open SQLite store.
func schemaVersion(ctx context.Context, s Store) (int, error) {
	st, ok := s.(*sqliteStore)
	if !ok {
		return 0, errors.New("authsvc: not a sqlite store")
	}
	var v int
	err := st.r.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	return v, err
}

// Times are stored as Unix nanoseconds; 0 is the zero time.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// accountDoc is the stored JSON form of an account's details.
type accountDoc struct {
	Description   string     `json:"description,omitempty"`
	PublicKeys    []keyDoc   `json:"public_keys,omitempty"`
	Secrets       []secDoc   `json:"secrets,omitempty"`
	Grants        []grantDoc `json:"grants,omitempty"`
	UserAssertion struct {
		Allowed bool     `json:"allowed,omitempty"`
		Tenants []string `json:"tenants,omitempty"`
	} `json:"user_assertion"`
}

type keyDoc struct {
	ID        string `json:"id"`
	JWK       string `json:"jwk"`
	Public    []byte `json:"public"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

type secDoc struct {
	ID        string `json:"id"`
	Hash      []byte `json:"sha256"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

type grantDoc struct {
	Audience string   `json:"audience"`
	Scopes   []string `json:"scopes"`
}

func encodeAccount(a *Account) ([]byte, error) {
	var d accountDoc
	d.Description = a.Description
	for _, k := range a.PublicKeys {
		d.PublicKeys = append(d.PublicKeys, keyDoc{ID: k.ID, JWK: k.JWK, Public: k.Public, CreatedAt: nanos(k.CreatedAt), ExpiresAt: nanos(k.ExpiresAt)})
	}
	for _, c := range a.Secrets {
		d.Secrets = append(d.Secrets, secDoc{ID: c.ID, Hash: c.Hash, CreatedAt: nanos(c.CreatedAt), ExpiresAt: nanos(c.ExpiresAt)})
	}
	for _, g := range a.Grants {
		d.Grants = append(d.Grants, grantDoc(g))
	}
	d.UserAssertion.Allowed = a.UserAssertion.Allowed
	d.UserAssertion.Tenants = a.UserAssertion.Tenants
	return json.Marshal(&d)
}

func decodeAccount(id string, disabled bool, disabledAt, createdAt int64, doc []byte) (*Account, error) {
	var d accountDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, errors.New("authsvc: sqlite: stored account does not decode")
	}
	a := &Account{
		ID:          id,
		Description: d.Description,
		Disabled:    disabled,
		DisabledAt:  fromNanos(disabledAt),
		CreatedAt:   fromNanos(createdAt),
	}
	for _, k := range d.PublicKeys {
		a.PublicKeys = append(a.PublicKeys, AccountKey{ID: k.ID, JWK: k.JWK, Public: k.Public, CreatedAt: fromNanos(k.CreatedAt), ExpiresAt: fromNanos(k.ExpiresAt)})
	}
	for _, c := range d.Secrets {
		a.Secrets = append(a.Secrets, Secret{ID: c.ID, Hash: c.Hash, CreatedAt: fromNanos(c.CreatedAt), ExpiresAt: fromNanos(c.ExpiresAt)})
	}
	for _, g := range d.Grants {
		scopes := g.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		a.Grants = append(a.Grants, Grant{Audience: g.Audience, Scopes: scopes})
	}
	a.UserAssertion.Allowed = d.UserAssertion.Allowed
	a.UserAssertion.Tenants = d.UserAssertion.Tenants
	return a, nil
}

type rowScanner interface{ Scan(dest ...any) error }

func scanAccount(row rowScanner) (*Account, error) {
	var (
		id                    string
		disabled              bool
		disabledAt, createdAt int64
		doc                   []byte
	)
	if err := row.Scan(&id, &disabled, &disabledAt, &createdAt, &doc); err != nil {
		return nil, err
	}
	return decodeAccount(id, disabled, disabledAt, createdAt, doc)
}

const accountColumns = `id, disabled, disabled_at, created_at, doc`

func bumpVersion(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE state_version SET version = version + 1 WHERE id = 1`)
	return err
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE), committing when it
// returns nil.
func (st *sqliteStore) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := st.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return nil
}

func (st *sqliteStore) CreateAccount(ctx context.Context, a *Account) error {
	doc, err := encodeAccount(a)
	if err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return st.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO accounts (`+accountColumns+`) VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			a.ID, a.Disabled, nanos(a.DisabledAt), nanos(a.CreatedAt), doc)
		if err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrAlreadyExists
		}
		if a.Disabled {
			return bumpVersion(ctx, tx)
		}
		return nil
	})
}

func (st *sqliteStore) GetAccount(ctx context.Context, id string) (*Account, error) {
	a, err := scanAccount(st.getAccount.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return a, nil
}

func (st *sqliteStore) ListAccounts(ctx context.Context, after string, limit int) ([]*Account, error) {
	rows, err := st.r.QueryContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id > ? ORDER BY id LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	defer rows.Close()
	var out []*Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("authsvc: sqlite: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return out, nil
}

func (st *sqliteStore) UpdateAccount(ctx context.Context, id string, fn func(a *Account) error) (*Account, error) {
	var out *Account
	err := st.inTx(ctx, func(tx *sql.Tx) error {
		a, err := scanAccount(tx.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		wasDisabled, wasAt := a.Disabled, a.DisabledAt
		if err := fn(a); err != nil {
			return err
		}
		a.ID = id
		doc, err := encodeAccount(a)
		if err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE accounts SET disabled = ?, disabled_at = ?, doc = ? WHERE id = ?`,
			a.Disabled, nanos(a.DisabledAt), doc, id); err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if a.Disabled != wasDisabled || !a.DisabledAt.Equal(wasAt) {
			if err := bumpVersion(ctx, tx); err != nil {
				return fmt.Errorf("authsvc: sqlite: %w", err)
			}
		}
		out = a
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (st *sqliteStore) UseAssertionID(ctx context.Context, account, jti string, keepUntil time.Time) (bool, error) {
	r := &useRequest{account: account, jti: jti, keepUntil: nanos(keepUntil), done: make(chan struct{})}
	select {
	case st.useQueue <- r:
	case <-st.stop:
		return false, errClosed
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Once queued, the request is written whatever happens to ctx: waiting for
	// the result keeps the answer consistent with what is stored.
	select {
	case <-r.done:
		return r.fresh, r.err
	case <-st.stopped:
		select {
		case <-r.done:
			return r.fresh, r.err
		default:
			return false, errClosed // queued as the store closed: never written
		}
	}
}

const keyColumns = `id, algorithm, state, public_key, encrypted_private, created_at, activate_at, retire_at, remove_at`

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readKeys(ctx context.Context, q querier) ([]SigningKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+keyColumns+` FROM signing_keys ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var (
			k                     SigningKey
			state                 string
			c, act, retire, remov int64
		)
		if err := rows.Scan(&k.ID, &k.Algorithm, &state, &k.Public, &k.EncryptedPrivate, &c, &act, &retire, &remov); err != nil {
			return nil, fmt.Errorf("authsvc: sqlite: %w", err)
		}
		k.State = KeyState(state)
		k.CreatedAt, k.ActivateAt, k.RetireAt, k.RemoveAt = fromNanos(c), fromNanos(act), fromNanos(retire), fromNanos(remov)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return out, nil
}

func (st *sqliteStore) SigningKeys(ctx context.Context) ([]SigningKey, error) {
	return readKeys(ctx, st.r)
}

func (st *sqliteStore) UpdateSigningKeys(ctx context.Context, fn func(keys []SigningKey) ([]SigningKey, error)) error {
	return st.inTx(ctx, func(tx *sql.Tx) error {
		old, err := readKeys(ctx, tx)
		if err != nil {
			return err
		}
		next, err := fn(cloneKeys(old))
		if err != nil {
			return err
		}
		if equalKeys(old, next) {
			return nil
		}
		keep := make(map[string]bool, len(next))
		for _, k := range next {
			keep[k.ID] = true
			if _, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (`+keyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (id) DO UPDATE SET algorithm = excluded.algorithm, state = excluded.state,
				public_key = excluded.public_key, encrypted_private = excluded.encrypted_private,
				created_at = excluded.created_at, activate_at = excluded.activate_at,
				retire_at = excluded.retire_at, remove_at = excluded.remove_at`,
				k.ID, k.Algorithm, string(k.State), k.Public, k.EncryptedPrivate,
				nanos(k.CreatedAt), nanos(k.ActivateAt), nanos(k.RetireAt), nanos(k.RemoveAt)); err != nil {
				return fmt.Errorf("authsvc: sqlite: %w", err)
			}
		}
		for _, k := range old {
			if !keep[k.ID] {
				if _, err := tx.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, k.ID); err != nil {
					return fmt.Errorf("authsvc: sqlite: %w", err)
				}
			}
		}
		return bumpVersion(ctx, tx)
	})
}

func (st *sqliteStore) RevokeToken(ctx context.Context, r RevokedToken) error {
	return st.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (jti, expires_at, drop_at) VALUES (?, ?, ?)
			ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at, drop_at = excluded.drop_at
			WHERE excluded.drop_at > revoked_tokens.drop_at`,
			r.ID, nanos(r.ExpiresAt), nanos(r.DropAt))
		if err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return bumpVersion(ctx, tx)
		}
		return nil
	})
}

func (st *sqliteStore) RevokeAccount(ctx context.Context, r RevokedAccount) error {
	return st.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO revoked_accounts (account, issued_before, drop_at) VALUES (?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET
				issued_before = max(revoked_accounts.issued_before, excluded.issued_before),
				drop_at = max(revoked_accounts.drop_at, excluded.drop_at)
			WHERE excluded.issued_before > revoked_accounts.issued_before OR excluded.drop_at > revoked_accounts.drop_at`,
			r.Account, nanos(r.IssuedBefore), nanos(r.DropAt))
		if err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return bumpVersion(ctx, tx)
		}
		return nil
	})
}

func (st *sqliteStore) TokenRevoked(ctx context.Context, jti, account string, iat time.Time) (bool, error) {
	var n int
	err := st.tokenRevoked.QueryRowContext(ctx, jti, account, nanos(iat)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return n > 0, nil
}

func (st *sqliteStore) State(ctx context.Context) (*State, error) {
	tx, err := st.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	s := &State{}
	if err := tx.QueryRowContext(ctx, `SELECT version FROM state_version WHERE id = 1`).Scan(&s.Version); err != nil {
		return nil, fmt.Errorf("authsvc: sqlite: %w", err)
	}
	if s.Keys, err = readKeys(ctx, tx); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT jti, expires_at, drop_at FROM revoked_tokens`, func(rows *sql.Rows) error {
		var r RevokedToken
		var e, d int64
		if err := rows.Scan(&r.ID, &e, &d); err != nil {
			return err
		}
		r.ExpiresAt, r.DropAt = fromNanos(e), fromNanos(d)
		s.RevokedTokens = append(s.RevokedTokens, r)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT account, issued_before, drop_at FROM revoked_accounts`, func(rows *sql.Rows) error {
		var r RevokedAccount
		var b, d int64
		if err := rows.Scan(&r.Account, &b, &d); err != nil {
			return err
		}
		r.IssuedBefore, r.DropAt = fromNanos(b), fromNanos(d)
		s.RevokedAccounts = append(s.RevokedAccounts, r)
		return nil
	}); err != nil {
		return nil, err
	}
	if err := scanRows(ctx, tx, `SELECT id, disabled_at FROM accounts WHERE disabled = 1`, func(rows *sql.Rows) error {
		var d DisabledAccount
		var at int64
		if err := rows.Scan(&d.Account, &at); err != nil {
			return err
		}
		d.DisabledAt = fromNanos(at)
		s.DisabledAccounts = append(s.DisabledAccounts, d)
		return nil
	}); err != nil {
		return nil, err
	}
	sortState(s)
	return s, nil
}

func scanRows(ctx context.Context, q querier, query string, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("authsvc: sqlite: %w", err)
	}
	return nil
}

func (st *sqliteStore) Prune(ctx context.Context, now time.Time) error {
	return st.inTx(ctx, func(tx *sql.Tx) error {
		n := nanos(now)
		dropped := int64(0)
		for _, q := range []string{
			`DELETE FROM revoked_tokens WHERE drop_at <= ?`,
			`DELETE FROM revoked_accounts WHERE drop_at <= ?`,
		} {
			res, err := tx.ExecContext(ctx, q, n)
			if err != nil {
				return fmt.Errorf("authsvc: sqlite: %w", err)
			}
			c, _ := res.RowsAffected()
			dropped += c
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM used_assertions WHERE keep_until <= ?`, n); err != nil {
			return fmt.Errorf("authsvc: sqlite: %w", err)
		}
		if dropped > 0 {
			return bumpVersion(ctx, tx)
		}
		return nil
	})
}

var errClosed = errors.New("authsvc: sqlite: store closed")

func (st *sqliteStore) Close() error {
	if st.stop != nil {
		select {
		case <-st.stop:
			return errClosed
		default:
		}
		close(st.stop)
		<-st.stopped
		<-st.ckptDone
	}
	var errs []error
	for _, stmt := range []*sql.Stmt{st.getAccount, st.useAssertion, st.tokenRevoked} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	if st.r != nil {
		errs = append(errs, st.r.Close())
	}
	if st.ckpt != nil {
		// A last full checkpoint, so that the database file is complete.
		_, _ = st.ckpt.ExecContext(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`)
		errs = append(errs, st.ckpt.Close())
	}
	errs = append(errs, st.w.Close())
	return errors.Join(errs...)
}
