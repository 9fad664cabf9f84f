package main

import (
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// TestDemoLifetimeFlags: the lifetime and rotation flags override the
// configuration, so that a demo can use short lifetimes; --audit-allowed logs
// allowed calls too.
func TestDemoLifetimeFlags(t *testing.T) {
	p := startDev(t, filepath.Join(t.TempDir(), "data"), "--audit-allowed",
		"--token-lifetime", "20s", "--refresh-hint", "2s", "--publish-lead", "30s", "--rotation-period", "90s")
	ctx := rpcContext(t)
	cc := p.conn(t)
	auth := callsignv1.NewAuthServiceClient(cc)

	tok, err := p.issue(ctx, t, auth, "orders", "pricing")
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	claims := decodeClaims(t, tok.GetToken())
	if got := claims["exp"] - claims["iat"]; got != 20 {
		t.Errorf("token lifetime = %vs, want 20s from --token-lifetime", got)
	}
	keys, err := auth.GetKeys(ctx, &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys.GetRefreshInterval().AsDuration(); got != 2*time.Second {
		t.Errorf("refresh hint = %v, want 2s from --refresh-hint", got)
	}
	list, err := callsignv1.NewAdminServiceClient(cc).ListSigningKeys(p.adminContext(ctx, t, auth), &callsignv1.ListSigningKeysRequest{})
	if err != nil {
		t.Fatalf("ListSigningKeys: %v", err)
	}
	var active int
	for _, k := range list.GetKeys() {
		if k.GetState() != callsignv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE {
			continue
		}
		active++
		if got := k.GetRetireTime().AsTime().Sub(k.GetActivateTime().AsTime()); got != 90*time.Second {
			t.Errorf("active key signs for %v, want 90s from --rotation-period", got)
		}
	}
	if active != 1 {
		t.Errorf("%d active keys, want 1: %v", active, list.GetKeys())
	}
	if !p.waitLog(callsignv1.AdminService_ListSigningKeys_FullMethodName) {
		t.Errorf("no audit record of the allowed ListSigningKeys:\n%s", p.stderr.String())
	}
	p.assertLogsClean(t, tok.GetToken())
}

// decodeClaims returns the numeric claims of a compact JWS, unverified.
func decodeClaims(t *testing.T, tok string) map[string]float64 {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for k, v := range raw {
		if f, ok := v.(float64); ok {
			out[k] = f
		}
	}
	return out
}

// TestRotationDuringTraffic rotates the signing keys twice through
// AdminService while several clients issue tokens and call AdminService and
// Verify with them: no call fails, and callsignd's own verifier follows the
// rotations.
func TestRotationDuringTraffic(t *testing.T) {
	p := startDev(t, filepath.Join(t.TempDir(), "data"))
	ctx := rpcContext(t)
	cc := p.conn(t)
	auth := callsignv1.NewAuthServiceClient(cc)
	admin := callsignv1.NewAdminServiceClient(cc)

	var (
		stop     atomic.Bool
		calls    atomic.Int64
		failures atomic.Int64
		firstErr atomic.Value
		kids     sync.Map
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		failures.Add(1)
		firstErr.CompareAndSwap(nil, status.Convert(err).String())
	}
	issueAdmin, issueOrders := p.issuer(t, adminAccountID), p.issuer(t, "orders")
	for range 3 {
		wg.Go(func() {
			for !stop.Load() {
				adm, err := issueAdmin(ctx, auth, "callsign") // a fresh admin token each round
				if err != nil {
					fail(err)
					continue
				}
				actx := withToken(ctx, adm.GetToken())
				svc, err := issueOrders(ctx, auth, "billing")
				if err != nil {
					fail(err)
					continue
				}
				kids.Store(svc.GetKeyId(), true)
				if _, err := admin.ListSigningKeys(actx, &callsignv1.ListSigningKeysRequest{}); err != nil {
					fail(err)
				}
				v, err := auth.Verify(actx, &callsignv1.VerifyRequest{Token: svc.GetToken(), Audience: "billing"})
				if err != nil || !v.GetActive() {
					fail(err)
				}
				calls.Add(4)
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	rotate := func() {
		if _, err := admin.RotateSigningKeys(p.adminContext(ctx, t, auth), &callsignv1.RotateSigningKeysRequest{}); err != nil {
			t.Errorf("RotateSigningKeys: %v", err)
		}
	}
	// Rotations further apart than the self verifier's refresh interval, as an
	// operator's would be: each next key is published before it signs.
	time.Sleep(300 * time.Millisecond)
	rotate()
	time.Sleep(selfRefreshInterval + 500*time.Millisecond)
	rotate()
	time.Sleep(500 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	n := 0
	kids.Range(func(any, any) bool { n++; return true })
	t.Logf("%d calls, %d failures, %d signing keys seen", calls.Load(), failures.Load(), n)
	if failures.Load() > 0 {
		t.Errorf("%d of %d calls failed during rotation; first: %v", failures.Load(), calls.Load(), firstErr.Load())
	}
	if n != 3 {
		t.Errorf("tokens were signed by %d keys, want 3 (two rotations)", n)
	}
}
