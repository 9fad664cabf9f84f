package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// trafficPause is the pause between two orders of one client during the
// rotation.
const trafficPause = 20 * time.Millisecond

const (
	methodPlaceOrder = "/shop.v1.OrdersService/PlaceOrder"
	methodQuote      = "/shop.v1.PricingService/Quote"
	methodCharge     = "/shop.v1.BillingService/Charge"
	methodWatch      = "/shop.v1.InventoryService/Watch"
)

// orderResult is the gateway's answer to POST /v1/orders.
type orderResult struct {
	Order *struct {
		OrderID    string `json:"order_id"`
		TotalCents int64  `json:"total_cents"`
		UserID     string `json:"user_id"`
		TenantID   string `json:"tenant_id"`
		ChargeID   string `json:"charge_id"`
	} `json:"order"`
	Error *struct {
		Code    string `json:"code"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"error"`
	status int
	corr   string
}

// order places an order through the gateway as user of tenant.
func (r *runner) order(ctx context.Context, user, tenant, sku string, qty int) (orderResult, error) {
	body := fmt.Sprintf(`{"sku":%q,"quantity":%d}`, sku, qty)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.gatewayURL+"/v1/orders", strings.NewReader(body))
	if err != nil {
		return orderResult{}, err
	}
	req.Header.Set("X-Demo-User", user)
	req.Header.Set("X-Demo-Tenant", tenant)
	resp, err := r.http.Do(req)
	if err != nil {
		return orderResult{}, err
	}
	defer resp.Body.Close()
	var res orderResult
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&res); err != nil {
		return orderResult{}, fmt.Errorf("gateway answered %d with a body that is not JSON", resp.StatusCode)
	}
	res.status, res.corr = resp.StatusCode, resp.Header.Get("X-Correlation-ID")
	return res, nil
}

// showAudits waits for the expected audit lines after mark and prints every
// line that arrived.
func (r *runner) showAudits(ctx context.Context, mark int, want ...expect) error {
	lines, missing := r.procs.waitAudits(ctx, mark, auditTimeout, want...)
	for _, l := range lines {
		fmt.Fprintf(r.out, "     audit %-9s %s\n", l.Audit, l.AuditLine)
	}
	if len(missing) > 0 {
		return fmt.Errorf("audit lines missing: %v", missing)
	}
	return nil
}

func (r *runner) placeOK(ctx context.Context, user, tenant, sku string, qty int) error {
	fmt.Fprintf(r.out, "  %s of tenant %s buys %d x %s through the gateway\n", user, tenant, qty, sku)
	fmt.Fprintf(r.out, "  -> POST %s/v1/orders  (X-Demo-User: %s, X-Demo-Tenant: %s)\n", r.gatewayURL, user, tenant)
	mark := r.procs.mark()
	res, err := r.order(ctx, user, tenant, sku, qty)
	if err != nil {
		return err
	}
	if res.status != http.StatusOK || res.Order == nil {
		if res.Error != nil {
			return fmt.Errorf("gateway answered %d: %s %s %s", res.status, res.Error.Code, res.Error.Reason, res.Error.Message)
		}
		return fmt.Errorf("gateway answered %d", res.status)
	}
	fmt.Fprintf(r.out, "     gateway -> orders (on behalf of %s@%s) -> pricing, billing; correlation id %s\n", user, tenant, res.corr)
	err = r.showAudits(ctx, mark,
		expect{service: "orders", decision: "allow", method: methodPlaceOrder, caller: "gateway", user: user, tenant: tenant, corr: res.corr},
		expect{service: "pricing", decision: "allow", method: methodQuote, caller: "orders", user: user, corr: res.corr},
		expect{service: "billing", decision: "allow", method: methodCharge, caller: "orders", user: user, tenant: tenant, corr: res.corr},
	)
	o := res.Order
	fmt.Fprintf(r.out, "  <- 200 order %s: %d x %s = %d.%02d charged to %s of %s (charge %s)\n", o.OrderID, qty, sku, o.TotalCents/100, o.TotalCents%100, o.UserID, o.TenantID, o.ChargeID)
	if err != nil {
		return err
	}
	return checkf(o.UserID == user && o.TenantID == tenant, "the order was placed for %s@%s, want %s@%s", o.UserID, o.TenantID, user, tenant)
}

func (r *runner) stepNormalOrder(ctx context.Context) error {
	return r.placeOK(ctx, "alice", "acme", "sku-42", 2)
}

// attack runs a rogue attack and checks the outcome and the audit line.
func (r *runner) attack(ctx context.Context, attack, code, reason string, want expect, extra ...string) error {
	mark := r.procs.mark()
	o, err := r.rogue(ctx, attack, extra...)
	if err != nil {
		return err
	}
	auditErr := r.showAudits(ctx, mark, want)
	if o.Code != code || o.Reason != reason {
		return fmt.Errorf("rogue got %s %s, want %s %s", o.Code, o.Reason, code, reason)
	}
	return auditErr
}

func (r *runner) stepNoScope(ctx context.Context) error {
	fmt.Fprintln(r.out, "  rogue has a grant for pricing without scopes: its token for pricing lacks pricing.quote")
	fmt.Fprintf(r.out, "  -> rogue calls %s\n", methodQuote)
	return r.attack(ctx, "no-scope", "PermissionDenied", "SCOPE_MISSING",
		expect{service: "pricing", decision: "deny", reason: "SCOPE_MISSING", method: methodQuote, caller: "rogue"})
}

func (r *runner) stepNotCaller(ctx context.Context) error {
	fmt.Fprintln(r.out, "  rogue holds scope billing.charge, but Charge lists callers: [\"orders\"]")
	fmt.Fprintf(r.out, "  -> rogue calls %s\n", methodCharge)
	return r.attack(ctx, "not-caller", "PermissionDenied", "CALLER_NOT_ALLOWED",
		expect{service: "billing", decision: "deny", reason: "CALLER_NOT_ALLOWED", method: methodCharge, caller: "rogue"})
}

func (r *runner) stepNoUser(ctx context.Context) error {
	fmt.Fprintln(r.out, "  the operator gives rogue scope orders.place; PlaceOrder still needs a user")
	if _, err := r.cli(ctx, 0, "grants", "set", "rogue", "orders", "--scopes", "orders.place"); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "  -> rogue calls %s with its own token and no x-user-token\n", methodPlaceOrder)
	err := r.attack(ctx, "no-user", "Unauthenticated", "USER_TOKEN_MISSING",
		expect{service: "orders", decision: "deny", reason: "USER_TOKEN_MISSING", method: methodPlaceOrder, caller: "rogue"})
	if _, cerr := r.cli(ctx, 0, "grants", "delete", "rogue", "orders"); cerr != nil && err == nil {
		err = cerr
	}
	return err
}

func (r *runner) stepTampered(ctx context.Context) error {
	fmt.Fprintln(r.out, "  rogue takes its own genuine token for pricing, adds pricing.quote to the claims, keeps the signature")
	fmt.Fprintf(r.out, "  -> rogue calls %s\n", methodQuote)
	return r.attack(ctx, "tamper", "Unauthenticated", "SIGNATURE_INVALID",
		expect{service: "pricing", decision: "deny", reason: "SIGNATURE_INVALID", method: methodQuote})
}

func (r *runner) stepForged(ctx context.Context) error {
	fmt.Fprintln(r.out, "  rogue mints a token claiming to be orders, signed with a key of its own")
	fmt.Fprintf(r.out, "  -> rogue calls %s\n", methodQuote)
	return r.attack(ctx, "forge", "Unauthenticated", "KEY_UNKNOWN",
		expect{service: "pricing", decision: "deny", reason: "KEY_UNKNOWN", method: methodQuote})
}

// issued is the JSON of 'callsign token issue --json'.
type issued struct {
	Token   string `json:"token"`
	TokenID string `json:"tokenId"`
	KeyID   string `json:"keyId"`
}

func (r *runner) issue(ctx context.Context, account, audience string) (issued, error) {
	out, err := r.cliQuiet(ctx, "token", "issue", "--account", account, "--key", filepath.Join(r.creds, account+".jwk"), "--audience", audience, "--json")
	if err != nil {
		return issued{}, err
	}
	var is issued
	if err := json.Unmarshal([]byte(out), &is); err != nil || is.Token == "" || is.TokenID == "" {
		return issued{}, fmt.Errorf("callsign token issue printed no token: %q", out)
	}
	fmt.Fprintf(r.out, "            a service token of %s for %s: token id %s, signed by key %s\n", account, audience, is.TokenID, is.KeyID)
	return is, nil
}

func (r *runner) stepRevoked(ctx context.Context) error {
	fmt.Fprintln(r.out, "  a token of orders for pricing leaks (here: issued with orders' key through the CLI)")
	is, err := r.issue(ctx, "orders", "pricing")
	if err != nil {
		return err
	}
	fmt.Fprintln(r.out, "  anyone holding it can read its claims; decoding proves nothing about them:")
	out, err := r.cli(ctx, 0, "token", "decode", is.Token)
	if err != nil {
		return err
	}
	if err := checkf(strings.Contains(out, "UNVERIFIED") && strings.Contains(out, is.TokenID), "callsign token decode printed %q", out); err != nil {
		return err
	}
	stolen := filepath.Join(r.work, "stolen.jwt")
	if err := os.WriteFile(stolen, []byte(is.Token), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "  -> rogue replays the stolen token (id %s) to %s\n", is.TokenID, methodQuote)
	if err := r.attack(ctx, "replay", "OK", "",
		expect{service: "pricing", decision: "allow", method: methodQuote, caller: "orders", jti: is.TokenID},
		"--token-file", stolen); err != nil {
		return fmt.Errorf("before revocation: %w", err)
	}
	fmt.Fprintln(r.out, "     a valid token is a valid token: the call is allowed. The operator revokes it:")
	if _, err := r.cli(ctx, 0, "revoke", "token", is.TokenID); err != nil {
		return err
	}
	// Verifiers learn revocations on their next key refresh.
	deadline := time.Now().Add(3*refreshHint + 5*time.Second)
	for attempt := 1; ; attempt++ {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(refreshHint):
		}
		fmt.Fprintf(r.out, "  -> rogue replays the stolen token again (attempt %d)\n", attempt)
		mark := r.procs.mark()
		o, err := r.rogue(ctx, "replay", "--token-file", stolen)
		if err != nil {
			return err
		}
		if o.Code == "Unauthenticated" && o.Reason == "TOKEN_REVOKED" {
			if err := r.showAudits(ctx, mark, expect{service: "pricing", decision: "deny", reason: "TOKEN_REVOKED", method: methodQuote, caller: "orders", jti: is.TokenID}); err != nil {
				return err
			}
			break
		}
		_ = r.showAudits(ctx, mark)
		if o.Code != "OK" || time.Now().After(deadline) {
			return fmt.Errorf("after revocation rogue got %s %s, want Unauthenticated TOKEN_REVOKED", o.Code, o.Reason)
		}
	}
	fmt.Fprintln(r.out, "  callsignd's Verify agrees:")
	out, err = r.cli(ctx, 1, "token", "verify", "--audience", "pricing", is.Token)
	if err != nil {
		return err
	}
	if err := checkf(strings.Contains(out, "TOKEN_REVOKED"), "callsign token verify printed %q, want TOKEN_REVOKED", out); err != nil {
		return err
	}
	fmt.Fprintln(r.out, "  orders' own tokens were not revoked: orders keep working")
	return r.placeOK(ctx, "alice", "acme", "sku-7", 1)
}

// watchLine is one line of the gateway's GET /v1/inventory/watch.
type watchLine struct {
	Sku       string `json:"sku"`
	Available int32  `json:"available"`
	Sequence  int64  `json:"sequence"`
	End       *struct {
		Code    string `json:"code"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"end"`
	ElapsedMS int64 `json:"elapsed_ms"`
}

func (r *runner) stepStreamExpiry(ctx context.Context) error {
	fmt.Fprintf(r.out, "  the gateway opens InventoryService.Watch with its token (lifetime %s); inventory allows %s of skew\n", tokenLifetime, serviceSkew)
	fmt.Fprintf(r.out, "  -> GET %s/v1/inventory/watch?sku=sku-42\n", r.gatewayURL)
	mark := r.procs.mark()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.gatewayURL+"/v1/inventory/watch?sku=sku-42", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: tokenLifetime + serviceSkew + 20*time.Second}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	updates := 0
	var end *watchLine
	for sc.Scan() {
		var l watchLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("gateway sent %q", sc.Text())
		}
		if l.End != nil {
			end = &l
			break
		}
		updates++
		if updates <= 3 {
			fmt.Fprintf(r.out, "  <- update %d: %s, %d available (%.1fs)\n", l.Sequence, l.Sku, l.Available, time.Since(start).Seconds())
		} else if updates == 4 {
			fmt.Fprintln(r.out, "  <- ...")
		}
	}
	if end == nil {
		return fmt.Errorf("the stream ended without an end line after %d updates", updates)
	}
	elapsed := time.Duration(end.ElapsedMS) * time.Millisecond
	fmt.Fprintf(r.out, "  <- %d updates, then after %.1fs: %s %s\n", updates, elapsed.Seconds(), end.End.Code, end.End.Reason)
	if err := r.showAudits(ctx, mark, expect{service: "inventory", decision: "allow", method: methodWatch, caller: "gateway"}); err != nil {
		return err
	}
	if end.End.Code != "Unauthenticated" || end.End.Reason != "TOKEN_EXPIRED" {
		return fmt.Errorf("the stream ended with %s %s, want Unauthenticated TOKEN_EXPIRED", end.End.Code, end.End.Reason)
	}
	if limit := tokenLifetime + serviceSkew + 3*time.Second; elapsed > limit || updates < 2 {
		return fmt.Errorf("the stream ran %s with %d updates; want it to end within %s with updates on the way", elapsed, updates, limit)
	}
	fmt.Fprintln(r.out, "     the stream ended when the token that opened it expired; a client opens a new one with a fresh token")
	return nil
}

func (r *runner) stepRotation(ctx context.Context) error {
	if _, err := r.cli(ctx, 0, "signing-keys", "list"); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "  steady traffic: 4 clients place an order through the gateway every %s each\n", trafficPause)
	var ok, failed atomic.Int64
	var firstFail atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			user := fmt.Sprintf("user%d", i)
			for {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				res, err := r.order(ctx, user, "globex", "sku-9", 1)
				if err == nil && res.status == http.StatusOK {
					ok.Add(1)
					select {
					case <-stop:
					case <-ctx.Done():
					case <-time.After(trafficPause):
					}
					continue
				}
				if ctx.Err() != nil {
					return
				}
				failed.Add(1)
				if err == nil && res.Error != nil {
					err = fmt.Errorf("%d %s %s", res.status, res.Error.Code, res.Error.Reason)
				}
				firstFail.CompareAndSwap(nil, fmt.Sprint(err))
			}
		})
	}
	stopTraffic := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	defer stopTraffic()
	sleep := func(d time.Duration) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	}
	if err := sleep(2 * time.Second); err != nil {
		return err
	}
	before := ok.Load()
	fmt.Fprintf(r.out, "     %d orders so far\n", before)
	if _, err := r.cli(ctx, 0, "signing-keys", "rotate"); err != nil {
		return err
	}
	out, err := r.cliQuiet(ctx, "signing-keys", "list", "--json")
	if err != nil {
		return err
	}
	var keys struct {
		Keys []struct {
			KeyID string `json:"keyId"`
			State string `json:"state"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		return fmt.Errorf("signing-keys list --json: %w", err)
	}
	active := ""
	for _, k := range keys.Keys {
		if k.State == "SIGNING_KEY_STATE_ACTIVE" {
			active = k.KeyID
		}
	}
	fmt.Fprintf(r.out, "  traffic continues for %s, so that every token in use is replaced by one signed with %s\n", tokenLifetime+3*time.Second, active)
	if err := sleep(tokenLifetime + 3*time.Second); err != nil {
		return err
	}
	stopTraffic()
	fmt.Fprintf(r.out, "  <- %d orders placed during the rotation, %d failed\n", ok.Load(), failed.Load())
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d orders failed during the rotation; first: %v", n, firstFail.Load())
	}
	if ok.Load()-before < 10 {
		return fmt.Errorf("only %d orders after the rotation began: too little traffic to show anything", ok.Load()-before)
	}
	is, err := r.issue(ctx, "orders", "pricing")
	if err != nil {
		return err
	}
	fmt.Fprintf(r.out, "     a token issued now is signed by key %s\n", is.KeyID)
	return checkf(active != "" && is.KeyID == active, "a token issued after the rotation is signed by %s, want the new active key %q", is.KeyID, active)
}
