package interceptor

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callsign-dev/callsign/internal/token"
)

func srvVerified(sub string, exp time.Time) *verified {
	return newVerified(token.Claims{
		Type:     token.TypeService,
		Subject:  sub,
		ID:       "id-" + sub,
		Scopes:   []string{"test.read", "test.write"},
		Expiry:   exp,
		IssuedAt: exp.Add(-5 * time.Minute),
	}, "k1")
}

func TestTokenCacheLRU(t *testing.T) {
	c := newTokenCache(cacheShards * 2) // two entries per shard
	now := srvT0
	exp := now.Add(time.Minute)
	// Find three tokens of the same shard.
	var same []string
	for i := 0; len(same) < 3; i++ {
		tok := "tok-" + strconv.Itoa(i)
		if len(same) == 0 || c.shardOf(tok) == c.shardOf(same[0]) {
			same = append(same, tok)
		}
	}
	a, b, d := same[0], same[1], same[2]
	c.put(a, srvVerified("a", exp), exp)
	c.put(b, srvVerified("b", exp), exp)
	if c.get(a, token.TypeService, now) == nil { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put(d, srvVerified("d", exp), exp) // evicts b, the least recent
	if c.get(b, token.TypeService, now) != nil {
		t.Fatal("b not evicted")
	}
	if c.get(a, token.TypeService, now) == nil || c.get(d, token.TypeService, now) == nil {
		t.Fatal("a or d evicted")
	}
	if c.get(a, token.TypeUser, now) != nil {
		t.Fatal("hit for another token type")
	}
	if c.get(a, token.TypeService, exp) != nil {
		t.Fatal("hit at the deadline")
	}
	if c.get(a, token.TypeService, now) != nil {
		t.Fatal("expired entry kept")
	}
	var nilCache *tokenCache
	nilCache.put("x", srvVerified("x", exp), exp)
	if nilCache.get("x", token.TypeService, now) != nil || nilCache.len() != 0 || newTokenCache(0) != nil {
		t.Fatal("a disabled cache holds entries")
	}
}

// TestTokenCacheCollision: two tokens with the same hash key never answer for
// each other.
func TestTokenCacheCollision(t *testing.T) {
	c := newTokenCache(100)
	exp := srvT0.Add(time.Minute)
	c.put("real", srvVerified("real", exp), exp)
	// Forge an entry under the hash of "forged" that holds "real"'s text.
	key := c.keyOf("forged")
	sh := &c.shards[key&(cacheShards-1)]
	sh.mu.Lock()
	e := &cacheEntry{key: key, raw: "real", v: srvVerified("real", exp), deadline: exp.UnixNano()}
	sh.entries[key] = e
	sh.pushFrontLocked(e)
	sh.mu.Unlock()
	if c.get("forged", token.TypeService, srvT0) != nil {
		t.Fatal("a hash match answered for a different token")
	}
}

func TestTokenCacheConcurrent(t *testing.T) {
	c := newTokenCache(64)
	exp := srvT0.Add(time.Minute)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				tok := fmt.Sprintf("tok-%d-%d", g, i%100)
				if v := c.get(tok, token.TypeService, srvT0); v != nil && v.subject != tok {
					t.Errorf("wrong entry for %s", tok)
					return
				}
				c.put(tok, srvVerified(tok, exp), exp)
			}
		})
	}
	wg.Wait()
	if n := c.len(); n > 64+cacheShards {
		t.Fatalf("%d entries for a bound of 64", n)
	}
}

// TestTokenCacheMemoryBound puts 10^6 distinct tokens of a realistic size
// through a cache of the default size and checks that the heap stays within
// the cache's bound: DefaultCacheSize entries of the token and its
// bookkeeping.
func TestTokenCacheMemoryBound(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 100_000
	}
	const tokenLen = 380
	c := newTokenCache(DefaultCacheSize)
	exp := srvT0.Add(5 * time.Minute)
	pad := strings.Repeat("x", tokenLen-20)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range n {
		tok := fmt.Sprintf("%s%020d", pad, i) // a new heap string each time, as the transport makes
		c.put(tok, srvVerified("svc", exp), exp)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if got := c.len(); got > DefaultCacheSize+cacheShards {
		t.Fatalf("%d entries, bound %d", got, DefaultCacheSize)
	}
	perEntry := uint64(tokenLen + 1024) // token, entry, verified claims, map slot
	bound := uint64(DefaultCacheSize) * perEntry
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d tokens: heap grew by %d bytes (%.0f per cached entry), bound %d", n, grown, float64(grown)/DefaultCacheSize, bound)
	if grown > int64(bound) {
		t.Fatalf("heap grew by %d bytes, bound %d", grown, bound)
	}
	runtime.KeepAlive(c)
}
