package faults

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestKillDuringIssuanceAndRotation SIGKILLs callsignd while it issues
// tokens and rotates keys, restarts it on the same data directory, and checks
// that nothing acknowledged was lost or corrupted: every token it returned
// still verifies against the keys it publishes, every key a rotation reported
// as active is still published, the key states are consistent, a client
// assertion used before the kill stays used, and issuance works again.
func TestKillDuringIssuanceAndRotation(t *testing.T) {
	rounds := 2
	if soakEnabled() {
		rounds = 6
	}
	d := startDaemon(t, t.TempDir(), "", "")
	cc := d.dial(t)
	auth := callsignv1.NewAuthServiceClient(cc)
	for round := range rounds {
		// An assertion used once before the kill.
		priv, kid := d.credential(t, callerAccount)
		used, err := token.SignAssertion(priv, kid, callerAccount, d.info.Issuer, time.Now(), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
		_, err = auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
			Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: used}, Audience: verifierAudience})
		cancel()
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}

		admin, actx := d.admin(t, cc)
		stop := make(chan struct{})
		var mu sync.Mutex
		var issued []string
		active := map[string]bool{}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for range 100000 {
					select {
					case <-stop:
						return
					default:
					}
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					resp, err := d.issue(ctx, t, cc, callerAccount, verifierAudience, 0)
					cancel()
					if err == nil {
						mu.Lock()
						issued = append(issued, resp.GetToken())
						mu.Unlock()
					}
				}
			})
		}
		wg.Go(func() {
			for range 100000 {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := admin.RotateSigningKeys(actx, &callsignv1.RotateSigningKeysRequest{})
				if err == nil {
					mu.Lock()
					for _, k := range resp.GetKeys() {
						if k.GetState() == callsignv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE {
							active[k.GetKeyId()] = true
						}
					}
					mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
		time.Sleep(300*time.Millisecond + rand.N(1200*time.Millisecond))
		d.kill(t)
		close(stop)
		wg.Wait()
		d.restart(t)

		ctx, cancel = context.WithTimeout(context.Background(), rpcTimeout)
		keys, err := auth.GetKeys(ctx, &callsignv1.GetKeysRequest{})
		cancel()
		if err != nil {
			t.Fatalf("round %d: GetKeys after restart: %v", round, err)
		}
		ks, err := token.ParseJWKS(keys.GetJwks(), token.EdDSA)
		if err != nil {
			t.Fatalf("round %d: the published key set after restart: %v", round, err)
		}
		for _, tok := range issued {
			if _, err := token.Verify(tok, token.EdDSA, ks, token.Expect{
				Issuer: d.info.Issuer, Audience: verifierAudience, Type: token.TypeService, Now: time.Now(),
			}); err != nil {
				t.Errorf("round %d: a token issued before the kill no longer verifies: %v", round, err)
			}
		}
		for kid := range active {
			if _, ok := ks.Lookup(kid); !ok {
				t.Errorf("round %d: key %s, reported active by a rotation, is no longer published", round, kid)
			}
		}
		admin, actx = d.admin(t, cc)
		list, err := admin.ListSigningKeys(actx, &callsignv1.ListSigningKeysRequest{})
		if err != nil {
			t.Fatal(err)
		}
		states := map[callsignv1.SigningKeyState]int{}
		for _, k := range list.GetKeys() {
			states[k.GetState()]++
			if _, ok := ks.Lookup(k.GetKeyId()); !ok {
				t.Errorf("round %d: listed key %s is not published", round, k.GetKeyId())
			}
		}
		if states[callsignv1.SigningKeyState_SIGNING_KEY_STATE_ACTIVE] != 1 || states[callsignv1.SigningKeyState_SIGNING_KEY_STATE_NEXT] > 1 {
			t.Errorf("round %d: key states after restart: %v", round, states)
		}
		ctx, cancel = context.WithTimeout(context.Background(), rpcTimeout)
		_, err = auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
			Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: used}, Audience: verifierAudience})
		cancel()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("round %d: an assertion used before the kill, replayed after restart: %v", round, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), rpcTimeout)
		resp, err := d.issue(ctx, t, cc, callerAccount, verifierAudience, 0)
		cancel()
		if err != nil {
			t.Fatalf("round %d: issuance after restart: %v", round, err)
		}
		if _, ok := ks.Lookup(resp.GetKeyId()); !ok {
			t.Errorf("round %d: the key %s signing after restart was not published", round, resp.GetKeyId())
		}
		t.Logf("round %d: %d tokens issued and %d active keys reported before the kill; states after restart %v", round, len(issued), len(active), states)
	}
}
