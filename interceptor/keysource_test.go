package interceptor

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// srvFetcher is a programmable GetKeys.
type srvFetcher struct {
	mu    sync.Mutex
	resp  *callsignv1.GetKeysResponse
	err   error
	calls int
	gate  chan struct{} // when set, each call waits for a value
}

func (f *srvFetcher) GetKeys(ctx context.Context, _ *callsignv1.GetKeysRequest, _ ...grpc.CallOption) (*callsignv1.GetKeysResponse, error) {
	f.mu.Lock()
	f.calls++
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.resp, f.err
}

func (f *srvFetcher) set(resp *callsignv1.GetKeysResponse, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resp, f.err = resp, err
}

func (f *srvFetcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func srvKeysResponse(jwks []byte, version uint64, refresh time.Duration) *callsignv1.GetKeysResponse {
	r := &callsignv1.GetKeysResponse{Jwks: jwks, Version: version}
	if refresh > 0 {
		r.RefreshInterval = durationpb.New(refresh)
	}
	return r
}

// srvEventually polls cond (for goroutines to reach a state, never for time
// to pass: the clock is fake).
func srvEventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newSrvLive(t *testing.T, f KeyFetcher, clock *srvClock, opts ...KeySourceOption) *LiveKeySource {
	t.Helper()
	opts = append([]KeySourceOption{WithKeyClock(clock)}, opts...)
	s, err := NewLiveKeySource(context.Background(), f, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestLiveKeySourceBlocksUntilFirstFetch(t *testing.T) {
	keys := newSrvKeys(t, "k1")
	f := &srvFetcher{err: errors.New("down")}
	clock := newSrvClock()
	type result struct {
		s   *LiveKeySource
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := NewLiveKeySource(context.Background(), f, WithKeyClock(clock))
		done <- result{s, err}
	}()
	// Two failures, retried after backoff on the fake clock.
	for i := 1; i <= 2; i++ {
		srvEventually(t, "a retry timer", func() bool { return f.count() == i && clock.pending() == 1 })
		select {
		case <-done:
			t.Fatal("returned before a successful fetch")
		default:
		}
		clock.Advance(time.Second)
	}
	srvEventually(t, "the third fetch", func() bool { return f.count() == 3 })
	f.set(srvKeysResponse(keys.jwks, 1, 0), nil)
	srvEventually(t, "a retry timer", func() bool { return clock.pending() == 1 })
	clock.Advance(time.Second)
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close()
	snap, err := r.s.KeySnapshot()
	if err != nil || snap.Len() != 1 || snap.Version() != 1 {
		t.Fatalf("snapshot %v, %v", snap, err)
	}
}

func TestLiveKeySourceFirstFetchCancelled(t *testing.T) {
	before := runtime.NumGoroutine()
	f := &srvFetcher{err: errors.New("down")}
	ctx, cancel := context.WithCancel(context.Background())
	clock := newSrvClock()
	go func() {
		srvEventually(t, "a fetch", func() bool { return f.count() >= 1 })
		cancel()
	}()
	s, err := NewLiveKeySource(ctx, f, WithKeyClock(clock))
	if err == nil || s != nil {
		t.Fatalf("NewLiveKeySource = %v, %v", s, err)
	}
	srvEventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestLiveKeySourceRefreshesOnHint(t *testing.T) {
	k1, k2 := newSrvKeys(t, "k1"), newSrvKeys(t, "k2")
	f := &srvFetcher{resp: srvKeysResponse(k1.jwks, 1, 30*time.Second)}
	clock := newSrvClock()
	s := newSrvLive(t, f, clock)
	srvEventually(t, "the refresh timer", func() bool { return clock.pending() == 1 })
	f.set(srvKeysResponse(srvJWKS(t, k1, k2), 2, 30*time.Second), nil)
	clock.Advance(26 * time.Second) // below 30 s - 10 %
	if f.count() != 1 {
		t.Fatalf("fetched early: %d", f.count())
	}
	clock.Advance(8 * time.Second) // beyond 30 s + 10 %
	srvEventually(t, "the refreshed set", func() bool {
		snap, err := s.KeySnapshot()
		return err == nil && snap.Len() == 2 && snap.Version() == 2
	})
	if f.count() != 2 {
		t.Fatalf("%d fetches", f.count())
	}
	srvWaitUpdated(t, s, clock)
}

// srvWaitUpdated checks WaitUntilUpdated: it returns once a fetch completes
// after the call. The clock is advanced by a jittered refresh interval whenever the
// refresh timer is armed, until the waiter returns.
func srvWaitUpdated(t *testing.T, s *LiveKeySource, clock *srvClock) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- s.WaitUntilUpdated(ctx) }()
	for {
		select {
		case err := <-waited:
			if err != nil {
				t.Fatal(err)
			}
			return
		default:
		}
		if clock.pending() > 0 {
			clock.Advance(s.interval() * 12 / 10) // beyond the jitter
		}
		time.Sleep(time.Millisecond)
	}
}

func TestLiveKeySourceKeepsLastGoodThenGoesStale(t *testing.T) {
	k1 := newSrvKeys(t, "k1")
	f := &srvFetcher{resp: srvKeysResponse(k1.jwks, 1, time.Minute)}
	clock := newSrvClock()
	s := newSrvLive(t, f, clock, WithMaxStaleness(10*time.Minute))
	good, _ := s.KeySnapshot()
	// A fetch error, then a response with an invalid key set: both kept out.
	for _, bad := range []struct {
		resp *callsignv1.GetKeysResponse
		err  error
	}{{nil, errors.New("down")}, {srvKeysResponse([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k1","alg":"EdDSA"}]}`), 9, 0), nil}} {
		f.set(bad.resp, bad.err)
		n := f.count()
		srvEventually(t, "a timer", func() bool { return clock.pending() == 1 })
		clock.Advance(2 * time.Minute)
		srvEventually(t, "a fetch", func() bool { return f.count() > n })
		srvEventually(t, "the next timer", func() bool { return clock.pending() == 1 })
		if snap, err := s.KeySnapshot(); err != nil || snap != good {
			t.Fatalf("after a failed fetch: %v, %v", snap, err)
		}
	}
	clock.Advance(7 * time.Minute)
	srvEventually(t, "staleness", func() bool {
		_, err := s.KeySnapshot()
		return errors.Is(err, ErrKeysUnavailable)
	})
}

func TestLiveKeySourceUnknownKIDCoalescedAndRateLimited(t *testing.T) {
	k1 := newSrvKeys(t, "k1")
	f := &srvFetcher{resp: srvKeysResponse(k1.jwks, 1, time.Hour)}
	clock := newSrvClock()
	s := newSrvLive(t, f, clock)
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if _, err := s.RefreshKeys(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	srvEventually(t, "the refresh fetch", func() bool { return f.count() == 2 })
	close(gate)
	wg.Wait()
	if f.count() != 2 {
		t.Fatalf("%d fetches for 100 concurrent unknown kids, want 1 more", f.count()-1)
	}
	// Within the interval: no fetch.
	if _, err := s.RefreshKeys(context.Background()); err != nil || f.count() != 2 {
		t.Fatalf("refresh within 5 s fetched: %d, %v", f.count(), err)
	}
	clock.Advance(DefaultUnknownKIDInterval)
	if _, err := s.RefreshKeys(context.Background()); err != nil || f.count() != 3 {
		t.Fatalf("refresh after 5 s: %d fetches, %v", f.count(), err)
	}
}

// TestServerUnknownKIDRefresh: a token signed by a key published after the
// last fetch is accepted once the coalesced refresh has it.
func TestServerUnknownKIDRefresh(t *testing.T) {
	k1, k2 := newSrvKeys(t, "k1"), newSrvKeys(t, "k2")
	f := &srvFetcher{resp: srvKeysResponse(k1.jwks, 1, time.Hour)}
	e := newSrvEnv(t, srvEnvConfig{source: func(e *srvEnv) KeySource {
		e.keys = k2
		return newSrvLive(t, f, e.clock)
	}})
	md := srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")))
	if _, err := e.call(kindUnary, "Scoped", md); err == nil {
		t.Fatal("accepted a token of an unpublished key")
	} else if _, r := srvReason(t, err); r != "KEY_UNKNOWN" {
		t.Fatalf("reason %s", r)
	}
	f.set(srvKeysResponse(srvJWKS(t, k1, k2), 2, time.Hour), nil)
	// Rate-limited: the second unknown kid within 5 s is refused without a fetch.
	if _, err := e.call(kindUnary, "Scoped", md); err == nil || f.count() != 2 {
		t.Fatalf("refetched within the interval: %d fetches, %v", f.count(), err)
	}
	e.clock.Advance(DefaultUnknownKIDInterval)
	if _, err := e.call(kindUnary, "Scoped", md); err != nil {
		t.Fatalf("after the refresh: %v", err)
	}
}

func TestLiveKeySourceRevocation(t *testing.T) {
	k1 := newSrvKeys(t, "k1")
	resp := srvKeysResponse(k1.jwks, 1, 0)
	resp.RevokedTokens = []*callsignv1.RevokedToken{{TokenId: srvRevokedJTI, ExpireTime: timestamppb.New(srvT0.Add(time.Hour))}}
	resp.DisabledAccounts = []*callsignv1.DisabledAccount{{AccountId: "disabled-svc", DisableTime: timestamppb.New(srvT0)}}
	resp.RevokedAccounts = []*callsignv1.RevokedAccount{{AccountId: "old-svc", IssuedBefore: timestamppb.New(srvT0.Add(time.Second))}}
	f := &srvFetcher{resp: resp}
	e := newSrvEnv(t, srvEnvConfig{source: func(e *srvEnv) KeySource {
		e.keys = k1
		return newSrvLive(t, f, e.clock)
	}})
	for _, c := range []struct {
		claims func(*token.Claims)
		want   string
	}{
		{func(*token.Claims) {}, ""},
		{func(c *token.Claims) { c.ID = srvRevokedJTI }, "TOKEN_REVOKED"},
		{func(c *token.Claims) { c.Subject = "disabled-svc" }, "ACCOUNT_DISABLED"},
		{func(c *token.Claims) { c.Subject = "old-svc" }, "TOKEN_REVOKED"},
	} {
		cl := srvSvcClaims(e.clock.Now(), "orders", "test.read")
		c.claims(&cl)
		_, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(e.keys.sign(t, cl))))
		if _, r := srvReason(t, err); r != c.want {
			t.Errorf("%s: reason %q, want %q", cl.Subject, r, c.want)
		}
	}
}

func TestLiveKeySourceCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	k1 := newSrvKeys(t, "k1")
	f := &srvFetcher{resp: srvKeysResponse(k1.jwks, 1, 0)}
	for range 5 {
		s, err := NewLiveKeySource(context.Background(), f, WithKeyClock(newSrvClock()))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.RefreshKeys(context.Background())
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
	}
	srvEventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func TestLiveKeySourceMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	k1 := newSrvKeys(t, "k1")
	f := &srvFetcher{resp: srvKeysResponse(k1.jwks, 7, time.Minute)}
	clock := newSrvClock()
	s := newSrvLive(t, f, clock, WithKeyMetrics(reg))
	f.set(nil, errors.New("down"))
	srvEventually(t, "the refresh timer", func() bool { return clock.pending() == 1 })
	clock.Advance(2 * time.Minute)
	srvEventually(t, "a failed fetch", func() bool { return f.count() == 2 })
	srvEventually(t, "the retry timer", func() bool { return clock.pending() == 1 })
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{MetricKeysFetches, map[string]string{"result": "ok"}, 1},
		{MetricKeysFetches, map[string]string{"result": "error"}, 1},
		{MetricKeysVersion, nil, 7},
		{MetricKeysAge, nil, 120},
	} {
		if got := srvMetric(t, reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	_ = s
}

func TestStaticKeySource(t *testing.T) {
	k1 := newSrvKeys(t, "k1")
	dir := t.TempDir()
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, k1.jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewStaticKeySourceFromFile(path, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	if snap, err := s.KeySnapshot(); err != nil || snap.Len() != 1 || snap.Algorithm() != EdDSA {
		t.Fatalf("snapshot %v, %v", snap, err)
	}
	for name, jwks := range map[string]string{
		"empty":          ``,
		"not JSON":       `keys`,
		"private member": strings.Replace(string(k1.jwks), `"kty"`, `"d":"AAAA","kty"`, 1),
		"wrong alg":      strings.Replace(string(k1.jwks), `"EdDSA"`, `"ES256"`, 1),
		"short key":      `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k1","alg":"EdDSA","use":"sig"}]}`,
		"duplicate kid":  srvDuplicateKID(k1.jwks),
	} {
		if _, err := NewStaticKeySource([]byte(jwks), EdDSA); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewStaticKeySource(k1.jwks, ES256); err == nil {
		t.Error("an Ed25519 set accepted for ES256")
	}
	if _, err := NewStaticKeySource(k1.jwks, "HS256"); err == nil {
		t.Error("HS256 accepted")
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewStaticKeySourceFromFile(big, EdDSA); err == nil {
		t.Error("a 2 MiB file accepted")
	}
	if _, err := NewStaticKeySourceFromFile(filepath.Join(dir, "absent"), EdDSA); err == nil {
		t.Error("a missing file accepted")
	}
}

// srvMetric returns the value of one counter or gauge sample of reg, failing
// the test when it is absent.
func srvMetric(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// srvDuplicateKID returns a set that holds the one key of jwks twice.
func srvDuplicateKID(jwks []byte) string {
	s := string(jwks)
	i, j := strings.Index(s, "["), strings.LastIndex(s, "]")
	return s[:j] + "," + s[i+1:j] + s[j:]
}

// TestServerES256 runs a deployment pinned to ES256: its tokens verify, an
// EdDSA token does not, and a server whose algorithm differs from its key
// source's refuses to start.
func TestServerES256(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := token.Key{ID: "p1", Algorithm: token.ES256, Public: &priv.PublicKey}
	jwks, err := token.MarshalJWKS([]token.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	es := srvKeys{signer: token.Signer{Key: k, Private: priv}, jwks: jwks}
	e := newSrvEnv(t, srvEnvConfig{
		opts: []ServerOption{WithAlgorithm(ES256)},
		source: func(e *srvEnv) KeySource {
			e.keys = es
			src, err := NewStaticKeySource(jwks, ES256)
			if err != nil {
				t.Fatal(err)
			}
			return src
		},
	})
	if _, err := e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")))); err != nil {
		t.Fatalf("ES256 token: %v", err)
	}
	ed := newSrvKeys(t, "p1")
	_, err = e.call(kindUnary, "Scoped", srvMD(MDAuthorization, srvBearer(ed.sign(t, srvSvcClaims(e.clock.Now(), "orders", "test.read")))))
	if _, r := srvReason(t, err); r != "TOKEN_MALFORMED" {
		t.Fatalf("EdDSA token on an ES256 server: %s", r)
	}
	src, _ := NewStaticKeySource(jwks, ES256)
	if _, err := NewServer(src, WithIssuer("i"), WithAudience("a")); err == nil {
		t.Fatal("an EdDSA server accepted an ES256 key source")
	}
}

// FuzzKeySnapshot feeds arbitrary GetKeys JWKS documents to the key-set
// loader: it never panics, and a set it accepts holds only keys of the pinned
// algorithm that verify nothing signed by another key.
func FuzzKeySnapshot(f *testing.F) {
	keys := srvFixedKeys(f)
	svc, _ := srvFixedTokens(f, keys)
	f.Add(keys.jwks)
	f.Add([]byte(srvDuplicateKID(keys.jwks)))
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k1","alg":"EdDSA","use":"sig"}]}`))
	f.Fuzz(func(t *testing.T, jwks []byte) {
		snap, err := NewKeySnapshot(jwks, EdDSA, Revocation{})
		if err != nil {
			return
		}
		if snap.Algorithm() != EdDSA || snap.Len() < 0 {
			t.Fatalf("accepted set: alg %s, %d keys", snap.Algorithm(), snap.Len())
		}
		p, err := token.Parse(svc, token.EdDSA, token.TypeService)
		if err != nil {
			t.Fatal(err)
		}
		if k, ok := snap.lookup(p.KID); ok {
			if k.Algorithm != token.EdDSA {
				t.Fatalf("key of algorithm %s", k.Algorithm)
			}
			pub, _ := k.Public.(ed25519.PublicKey)
			same := bytes.Equal(pub, keys.signer.Key.Public.(ed25519.PublicKey))
			if err := p.VerifySignature(k); (err == nil) != same {
				t.Fatalf("signature check %v with same key %v", err, same)
			}
		}
	})
}
