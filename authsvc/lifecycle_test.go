package authsvc

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// publishedKIDs returns the kids GetKeys publishes now.
func (e *env) publishedKIDs() map[string]bool {
	e.t.Helper()
	out := map[string]bool{}
	for _, k := range e.keySet().Keys() {
		out[k.ID] = true
	}
	return out
}

// TestKeyLifecycle runs seven hours of a schedule rotating every two hours
// (the other settings default) under a fake clock, a minute at a time, issuing a token of the maximum lifetime every minute, and
// checks the rules of DESIGN.md §4 at every step:
//   - a key signs only after it has been published for PublishLead (the very
//     first key of a fresh store excepted);
//   - every token's key stays published until the token has expired plus skew;
//   - retired keys are removed afterwards, so the published set stays small;
//   - at most one key is active and one is next.
func TestKeyLifecycle(t *testing.T) {
	e := newEnvWith(t, NewMemoryStore(), newFakeClock(), newTestKeys(t), func(c *Config) { c.RotationPeriod = 2 * time.Hour })
	ctx := context.Background()
	cfg := e.cfg
	type issued struct {
		kid string
		exp time.Time
	}
	var tokens []issued
	firstPublished := map[string]time.Time{}
	firstSigned := map[string]time.Time{}
	lastSeen := map[string]time.Time{}
	bootstrap := ""
	for step := range 7 * 60 {
		if step > 0 {
			e.clock.Advance(time.Minute)
			// A token signed at the very instant of the rotation, before the
			// step: the longest-lived token its key ever signs.
			req := issueReq(e.assertion("orders"), "billing")
			req.Lifetime = durationpb.New(cfg.MaxTokenLifetime)
			resp, err := e.auth.IssueToken(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, issued{resp.GetKeyId(), resp.GetExpireTime().AsTime()})
			if err := e.svc.Tick(ctx); err != nil {
				t.Fatal(err)
			}
		}
		now := e.clock.Now()
		published := e.publishedKIDs()
		for kid := range published {
			if _, ok := firstPublished[kid]; !ok {
				firstPublished[kid] = now
			}
			lastSeen[kid] = now
		}
		if len(published) > 3 {
			t.Fatalf("%v: %d keys published", now, len(published))
		}
		req := issueReq(e.assertion("orders"), "billing")
		req.Lifetime = durationpb.New(cfg.MaxTokenLifetime)
		resp, err := e.auth.IssueToken(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		kid := resp.GetKeyId()
		if bootstrap == "" {
			bootstrap = kid
		}
		if !published[kid] {
			t.Fatalf("%v: token signed by unpublished key %s", now, kid)
		}
		if _, ok := firstSigned[kid]; !ok {
			firstSigned[kid] = now
			if kid != bootstrap && now.Sub(firstPublished[kid]) < cfg.PublishLead {
				t.Fatalf("%v: key %s signs %v after publication, want ≥ %v", now, kid, now.Sub(firstPublished[kid]), cfg.PublishLead)
			}
		}
		tokens = append(tokens, issued{kid, resp.GetExpireTime().AsTime()})
		// Every token a verifier may still accept (exp plus its skew, by a
		// clock that may lag ours by the skew) has its key published.
		for _, tk := range tokens {
			if until := tk.exp.Add(verifierMargin(cfg.Skew)); !now.After(until) && !published[tk.kid] {
				t.Fatalf("%v: key %s of a token acceptable until %v is no longer published", now, tk.kid, until)
			}
		}
		keys, err := e.admin.ListSigningKeys(ctx, &callsignv1.ListSigningKeysRequest{})
		if err != nil {
			t.Fatal(err)
		}
		states := map[callsignv1.SigningKeyState]int{}
		for _, k := range keys.GetKeys() {
			states[k.GetState()]++
		}
		if states[callsignv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE] != 1 || states[callsignv1.SigningKeyState_SIGNING_KEY_STATE_NEXT] != 1 {
			t.Fatalf("%v: states %v", now, states)
		}
	}
	// Seven hours (less a minute) at a rotation every 2 h: four keys signed.
	if len(firstSigned) != 4 {
		t.Errorf("%d keys signed, want 4", len(firstSigned))
	}
	// Each retired key left the published set after its last token expired
	// plus skew, and not much later (within the retention margin and a step).
	end := e.clock.Now()
	for kid, seen := range lastSeen {
		if seen.Equal(end) {
			continue // still published
		}
		var last time.Time
		for _, tk := range tokens {
			if tk.kid == kid && tk.exp.After(last) {
				last = tk.exp
			}
		}
		gone := seen.Add(time.Minute)
		if gone.Before(last.Add(verifierMargin(cfg.Skew))) {
			t.Errorf("key %s gone at %v before its last token's exp+2*skew %v", kid, gone, last.Add(verifierMargin(cfg.Skew)))
		}
		if gone.Sub(last) > verifierMargin(cfg.Skew)+keyReloadInterval+2*time.Minute {
			t.Errorf("key %s published %v after its last token expired", kid, gone.Sub(last))
		}
	}
	if len(lastSeen) != 5 {
		t.Errorf("%d keys ever published, want 5 (4 signed, 1 next)", len(lastSeen))
	}
}

// TestRotateNow: the operator's rotation promotes the next key at once (it is
// already published) and publishes a new next key; the old key stays
// published for the tokens it signed. Rotating again at once promotes a key
// published for less than PublishLead: documented, since the operator asked.
func TestRotateNow(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.clock.Advance(time.Hour)
	if err := e.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	old := e.issue("orders", "billing")
	before, err := e.admin.ListSigningKeys(ctx, &callsignv1.ListSigningKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var next string
	for _, k := range before.GetKeys() {
		if k.GetState() == callsignv1.SigningKeyState_SIGNING_KEY_STATE_NEXT {
			next = k.GetKeyId()
		}
	}
	after, err := e.admin.RotateSigningKeys(ctx, &callsignv1.RotateSigningKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]callsignv1.SigningKeyState{}
	for _, k := range after.GetKeys() {
		states[k.GetKeyId()] = k.GetState()
	}
	if states[next] != callsignv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE || states[old.GetKeyId()] != callsignv1.SigningKeyState_SIGNING_KEY_STATE_RETIRED || len(states) != 3 {
		t.Fatalf("after rotation: %v", states)
	}
	if !slices.IsSortedFunc(after.GetKeys(), func(a, b *callsignv1.SigningKey) int {
		return b.GetCreateTime().AsTime().Compare(a.GetCreateTime().AsTime())
	}) {
		t.Error("keys not newest first")
	}
	fresh := e.issue("orders", "billing")
	if fresh.GetKeyId() != next {
		t.Errorf("signed by %s, want the promoted key %s", fresh.GetKeyId(), next)
	}
	if r := e.verify(old.GetToken(), 0, "billing"); !r.GetActive() {
		t.Errorf("token of the retired key: %v", r.GetReason())
	}
	// Rotate again right away: the new next key (published 0 s) is promoted.
	if err := e.svc.RotateNow(ctx); err != nil {
		t.Fatal(err)
	}
	again := e.issue("orders", "billing")
	if again.GetKeyId() == next || !e.publishedKIDs()[again.GetKeyId()] {
		t.Errorf("second rotation: signed by %s", again.GetKeyId())
	}
	for _, tok := range []*callsignv1.IssueTokenResponse{old, fresh, again} {
		if r := e.verify(tok.GetToken(), 0, "billing"); !r.GetActive() {
			t.Errorf("token %s: %v", tok.GetKeyId(), r.GetReason())
		}
	}
}

// TestLifecycleStepIdempotent: a step at the same instant changes nothing,
// and keys of another algorithm stop the lifecycle (fail closed).
func TestLifecycleStepIdempotent(t *testing.T) {
	l := lifecycle{alg: token.EdDSA, publishLead: 10 * time.Minute, rotationPeriod: 24 * time.Hour,
		maxLifetime: 15 * time.Minute, skew: 30 * time.Second, kek: testKEK, rand: rand.Reader}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys, err := l.step(nil, now, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].State != KeyActive || keys[1].State != KeyNext {
		t.Fatalf("fresh store: %+v", keys)
	}
	if !keys[1].ActivateAt.Equal(now.Add(24*time.Hour)) || !keys[0].RetireAt.Equal(now.Add(24*time.Hour)) {
		t.Errorf("plan: active retires %v, next activates %v", keys[0].RetireAt, keys[1].ActivateAt)
	}
	again, err := l.step(cloneKeys(keys), now, false)
	if err != nil {
		t.Fatal(err)
	}
	if !equalKeys(keys, again) {
		t.Error("second step changed the keys")
	}
	keys[0].Algorithm = "ES256"
	if _, err := l.step(keys, now, false); err == nil {
		t.Error("keys of another algorithm accepted")
	}
}

// TestLifecyclePublishLead: when the next key is young (here: created late,
// because the store held only a due active key), the active key keeps signing
// until the next key has been published for PublishLead.
func TestLifecyclePublishLead(t *testing.T) {
	l := lifecycle{alg: token.EdDSA, publishLead: 10 * time.Minute, rotationPeriod: 24 * time.Hour,
		maxLifetime: 15 * time.Minute, skew: 30 * time.Second, kek: testKEK, rand: rand.Reader}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	keys, err := l.step(nil, t0, false)
	if err != nil {
		t.Fatal(err)
	}
	active := keys[0]
	active.RetireAt = t0.Add(time.Hour)
	now := t0.Add(2 * time.Hour) // the active key is overdue; there is no next key
	keys, err = l.step([]SigningKey{active}, now, false)
	if err != nil {
		t.Fatal(err)
	}
	stateOf := func(keys []SigningKey, id string) KeyState {
		for _, k := range keys {
			if k.ID == id {
				return k.State
			}
		}
		return ""
	}
	if len(keys) != 2 || stateOf(keys, active.ID) != KeyActive {
		t.Fatalf("a young next key was promoted: %d keys, old key %s", len(keys), stateOf(keys, active.ID))
	}
	for _, k := range keys {
		if k.ID == active.ID && !k.RetireAt.Equal(now.Add(l.publishLead)) {
			t.Errorf("active key retires at %v, want %v", k.RetireAt, now.Add(l.publishLead))
		}
	}
	keys, err = l.step(keys, now.Add(l.publishLead-time.Second), false)
	if err != nil {
		t.Fatal(err)
	}
	if stateOf(keys, active.ID) != KeyActive {
		t.Fatal("promoted before PublishLead")
	}
	keys, err = l.step(keys, now.Add(l.publishLead), false)
	if err != nil {
		t.Fatal(err)
	}
	if stateOf(keys, active.ID) != KeyRetired {
		t.Fatal("not promoted after PublishLead")
	}
}

// cancelOnKeyUpdate is a Store that cancels a context once the lifecycle has
// updated the signing keys.
type cancelOnKeyUpdate struct {
	Store
	cancel context.CancelFunc
}

func (c cancelOnKeyUpdate) UpdateSigningKeys(ctx context.Context, fn func([]SigningKey) ([]SigningKey, error)) error {
	err := c.Store.UpdateSigningKeys(ctx, fn)
	c.cancel()
	return err
}

// TestRun: Run steps the lifecycle at once and returns nil when its context
// ends.
func TestRun(t *testing.T) {
	clock := newFakeClock()
	inner := NewMemoryStore()
	cfg := DefaultConfig()
	svc, err := New(context.Background(), inner, testKEK, cfg, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := inner.SigningKeys(context.Background())
	clock.Advance(cfg.RotationPeriod) // a rotation is due
	ctx, cancel := context.WithCancel(context.Background())
	svc.store = cancelOnKeyUpdate{Store: inner, cancel: cancel}
	if err := svc.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	after, _ := inner.SigningKeys(context.Background())
	if equalKeys(before, after) {
		t.Fatal("Run did not step the lifecycle")
	}
}
