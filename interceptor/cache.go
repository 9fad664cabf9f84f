package interceptor

import (
	"crypto"
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/callsign-dev/callsign/internal/token"
)

// verified is the immutable result of verifying one token: the claims that
// the policy and the context accessors need, and the key that signed it.
type verified struct {
	typ      token.Type
	central  bool // verified by AuthService.Verify; next to typ, so that the struct fits 208 bytes
	kid      string
	pub      crypto.PublicKey // the key set's public key of kid (nil when verified centrally)
	subject  string
	id       string
	scopes   []string
	tenantID string
	roles    []string
	actor    string
	expiry   time.Time
	issuedAt time.Time

	// svcIdentity is the context value of a call that carries this service
	// token and no user token, built once.
	svcIdentity *callIdentity
}

func newVerified(c token.Claims, kid string) *verified {
	v := &verified{
		typ:      c.Type,
		kid:      kid,
		subject:  c.Subject,
		id:       c.ID,
		scopes:   c.Scopes,
		tenantID: c.TenantID,
		roles:    c.Roles,
		actor:    c.Actor,
		expiry:   c.Expiry,
		issuedAt: c.IssuedAt,
	}
	if v.typ == token.TypeService {
		v.svcIdentity = &callIdentity{svc: v, tenant: v.tenantID}
	}
	return v
}

func (v *verified) hasScope(s string) bool { return slices.Contains(v.scopes, s) }

// signedBy reports whether k is the key that verified v: the same kid and the
// same public key (a key set may publish another key under a kid it reuses).
func (v *verified) signedBy(k token.Key) bool {
	pub, ok := v.pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.ID == v.kid && pub.Equal(k.Public)
}

// cacheShards splits the cache to keep lock contention low under parallel
// load. A power of two.
const cacheShards = 32

// tokenCache is a bounded LRU of verified tokens. Keys are a seeded hash of
// the token, computed over the string in place (no copy); the entry keeps the
// token string it was built from (the one the transport already allocated)
// and a hit requires it to be equal, so a hash collision is only a miss.
// Entries expire at a deadline never later than the token's exp.
//
// Memory is bounded by size entries, each about 450 bytes of bookkeeping plus
// the token itself (at most [token.MaxTokenSize]); bench's BenchmarkCacheMemory
// measures it.
type tokenCache struct {
	seed     maphash.Seed
	perShard int
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu         sync.Mutex
	entries    map[uint64]*cacheEntry
	head, tail *cacheEntry // most and least recently used
	_          [40]byte    // keep shards on separate cache lines
}

type cacheEntry struct {
	key        uint64
	raw        string
	v          *verified
	deadline   int64 // unix nanoseconds
	prev, next *cacheEntry
}

// newTokenCache returns a cache of about size entries, or nil (no cache) when
// size is 0.
func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		return nil
	}
	per := (size + cacheShards - 1) / cacheShards
	c := &tokenCache{seed: maphash.MakeSeed(), perShard: per}
	for i := range c.shards {
		c.shards[i].entries = make(map[uint64]*cacheEntry, min(per, 1024))
	}
	return c
}

// get returns the verified token cached for raw with type typ, or nil.
func (c *tokenCache) get(raw string, typ token.Type, now time.Time) *verified {
	if c == nil {
		return nil
	}
	key := c.keyOf(raw)
	sh := &c.shards[key&(cacheShards-1)]
	sh.mu.Lock()
	e := sh.entries[key]
	if e == nil || e.raw != raw || e.v.typ != typ {
		sh.mu.Unlock()
		return nil
	}
	if now.UnixNano() >= e.deadline {
		sh.removeLocked(e)
		sh.mu.Unlock()
		return nil
	}
	sh.moveToFrontLocked(e)
	v := e.v
	sh.mu.Unlock()
	return v
}

// put caches v for raw until deadline.
func (c *tokenCache) put(raw string, v *verified, deadline time.Time) {
	if c == nil {
		return
	}
	key := c.keyOf(raw)
	sh := &c.shards[key&(cacheShards-1)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.entries[key]; old != nil {
		sh.removeLocked(old)
	}
	for len(sh.entries) >= c.perShard && sh.tail != nil {
		sh.removeLocked(sh.tail)
	}
	e := &cacheEntry{key: key, raw: raw, v: v, deadline: deadline.UnixNano()}
	sh.entries[key] = e
	sh.pushFrontLocked(e)
}

// keyOf hashes raw in place, with the cache's random seed.
func (c *tokenCache) keyOf(raw string) uint64 { return maphash.String(c.seed, raw) }

// shardOf is the shard index of raw.
func (c *tokenCache) shardOf(raw string) uint64 { return c.keyOf(raw) & (cacheShards - 1) }

// len is the number of entries, for tests.
func (c *tokenCache) len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += len(sh.entries)
		sh.mu.Unlock()
	}
	return n
}

func (sh *cacheShard) pushFrontLocked(e *cacheEntry) {
	e.prev = nil
	e.next = sh.head
	if sh.head != nil {
		sh.head.prev = e
	}
	sh.head = e
	if sh.tail == nil {
		sh.tail = e
	}
}

func (sh *cacheShard) unlinkLocked(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		sh.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		sh.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (sh *cacheShard) moveToFrontLocked(e *cacheEntry) {
	if sh.head == e {
		return
	}
	sh.unlinkLocked(e)
	sh.pushFrontLocked(e)
}

func (sh *cacheShard) removeLocked(e *cacheEntry) {
	sh.unlinkLocked(e)
	delete(sh.entries, e.key)
}
