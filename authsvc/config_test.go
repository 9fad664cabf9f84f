package authsvc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/callsign-dev/callsign/internal/token"
)

const sampleConfig = `
issuer: callsign-prod
algorithm: ES256
token_lifetime: 2m
max_token_lifetime: 10m
skew: 10s
rotation_period: 12h
publish_lead: 5m
refresh_hint: 30s
accounts:
  - id: orders
    description: the orders service
    public_keys:
      - kid: orders-1
        jwk: '{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}'
        expires_at: 2030-01-01T00:00:00Z
    grants:
      - audience: billing
        scopes: [billing.charge]
  - id: spiffe://example.org/ns/web/sa/edge
    disabled: true
    user_assertion:
      allowed: true
      tenants: ["*"]
`

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(sampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Issuer != "callsign-prod" || cfg.Algorithm != "ES256" || cfg.TokenLifetime != 2*time.Minute ||
		cfg.MaxTokenLifetime != 10*time.Minute || cfg.Skew != 10*time.Second || cfg.RotationPeriod != 12*time.Hour ||
		cfg.PublishLead != 5*time.Minute || cfg.RefreshHint != 30*time.Second {
		t.Fatalf("settings: %+v", cfg)
	}
	if len(cfg.Accounts) != 2 {
		t.Fatalf("accounts: %+v", cfg.Accounts)
	}
	o := cfg.Accounts[0]
	if o.ID != "orders" || o.PublicKeys[0].KID != "orders-1" || !o.PublicKeys[0].ExpiresAt.Equal(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		o.Grants[0].Audience != "billing" || o.UserAssertion != nil {
		t.Fatalf("orders: %+v", o)
	}
	edge := cfg.Accounts[1]
	if !edge.Disabled || edge.UserAssertion == nil || !edge.UserAssertion.Allowed || edge.UserAssertion.Tenants[0] != "*" {
		t.Fatalf("edge: %+v", edge)
	}
	// Empty: the defaults.
	def, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := DefaultConfig(); def.Issuer != d.Issuer || def.TokenLifetime != 5*time.Minute || def.MaxTokenLifetime != 15*time.Minute ||
		def.Skew != 30*time.Second || def.RotationPeriod != 24*time.Hour || def.PublishLead != 10*time.Minute || def.RefreshHint != time.Minute {
		t.Fatalf("defaults: %+v", def)
	}
}

func TestParseConfigRefuses(t *testing.T) {
	cases := map[string]string{
		"unknown field":          "issuer: x\ncolour: blue\n",
		"unknown account field":  "accounts:\n  - id: a\n    grant: []\n",
		"duplicate key":          "issuer: a\nissuer: b\n",
		"two documents":          "issuer: a\n---\nissuer: b\n",
		"bare number duration":   "token_lifetime: 300\n",
		"bad duration":           "token_lifetime: five minutes\n",
		"lifetime above maximum": "token_lifetime: 20m\n",
		"fractional lifetime":    "token_lifetime: 90500ms\n",
		"skew too large":         "skew: 6m\n",
		"skew zero":              "skew: 0s\n",
		"publish lead < hint":    "publish_lead: 30s\n",
		"rotation < lead":        "rotation_period: 5m\n",
		"unknown algorithm":      "algorithm: HS256\n",
		"lowercase algorithm":    "algorithm: eddsa\n",
		"bad issuer":             "issuer: Callsign\n",
		"bad account id":         "accounts:\n  - id: Orders\n",
		"duplicate account":      "accounts:\n  - id: a\n  - id: a\n",
		"bad audience":           "accounts:\n  - id: a\n    grants:\n      - audience: B\n",
		"duplicate audience":     "accounts:\n  - id: a\n    grants:\n      - audience: b\n      - audience: b\n",
		"bad scope":              "accounts:\n  - id: a\n    grants:\n      - audience: b\n        scopes: ['a b']\n",
		"private jwk":            "accounts:\n  - id: a\n    public_keys:\n      - jwk: '{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"d\":\"x\"}'\n",
		"jwk and file":           "accounts:\n  - id: a\n    public_keys:\n      - jwk: '{}'\n        jwk_file: k.json\n",
		"file in ParseConfig":    "accounts:\n  - id: a\n    public_keys:\n      - jwk_file: k.json\n",
		"bad expiry":             "accounts:\n  - id: a\n    public_keys:\n      - jwk: '{}'\n        expires_at: tomorrow\n",
		"bad tenant":             "accounts:\n  - id: a\n    user_assertion:\n      tenants: ['a b']\n",
		"not YAML":               "{{{",
		"wrong type":             "accounts: 3\n",
		"control in description": "accounts:\n  - id: a\n    description: \"a\\x01\"\n",
	}
	for name, y := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseConfig([]byte(y)); err == nil {
				t.Fatal("accepted")
			} else if strings.Contains(err.Error(), "blue") || strings.Contains(err.Error(), "five minutes") {
				t.Fatalf("error echoes the input: %v", err)
			}
		})
	}
	if _, err := ParseConfig(make([]byte, MaxConfigSize+1)); err == nil {
		t.Fatal("oversized configuration accepted")
	}
}

func TestLoadConfigWithJWKFile(t *testing.T) {
	dir := t.TempDir()
	_, jwk, err := GenerateAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "orders.jwk")
	if err := os.WriteFile(keyPath, []byte(jwk+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "callsign.yaml")
	if err := os.WriteFile(cfgPath, []byte("accounts:\n  - id: orders\n    public_keys:\n      - jwk_file: "+keyPath+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Accounts[0].PublicKeys[0].JWK != jwk {
		t.Fatalf("jwk %q", cfg.Accounts[0].PublicKeys[0].JWK)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestLoadKEK(t *testing.T) {
	dir := t.TempDir()
	raw := make([]byte, KEKSize)
	for i := range raw {
		raw[i] = byte(i)
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, c := range map[string]struct {
		path, env string
		ok        bool
	}{
		"raw file":          {write("raw", raw, 0o600), "", true},
		"base64 file":       {write("b64", []byte(b64+"\n"), 0o600), "", true},
		"base64url env":     {"", base64.RawURLEncoding.EncodeToString(raw), true},
		"std env":           {"", b64, true},
		"readable by group": {write("group", raw, 0o640), "", false},
		"short":             {write("short", raw[:16], 0o600), "", false},
		"short env":         {"", base64.StdEncoding.EncodeToString(raw[:31]), false},
		"both":              {write("both", raw, 0o600), b64, false},
		"neither":           {"", "", false},
		"missing file":      {filepath.Join(dir, "nope"), "", false},
	} {
		kek, err := LoadKEK(c.path, c.env)
		if c.ok && (err != nil || string(kek) != string(raw)) {
			t.Errorf("%s: %v", name, err)
		}
		if !c.ok && err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err != nil && strings.Contains(err.Error(), b64[:10]) {
			t.Errorf("%s: error echoes the key", name)
		}
	}
}

// TestApplyConfigIdempotent: applying the same configuration again changes
// nothing; operator changes to keys and grants outside the configuration stay;
// disabled: false does not re-enable an account.
func TestApplyConfigIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	before := e.snapshot()
	e.clock.Advance(time.Hour)
	if err := e.svc.ApplyConfig(ctx, e.cfg); err != nil {
		t.Fatal(err)
	}
	if e.snapshot() != before {
		t.Fatal("a second application changed the store")
	}
	k := newAccountKey(t, "ops-added")
	if _, err := e.svc.AdminServer().AddPublicKey(ctx, addKeyReq("orders", k)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.UpdateAccount(ctx, "edge", func(a *Account) error {
		a.Disabled, a.DisabledAt = true, e.clock.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ApplyConfig(ctx, e.cfg); err != nil {
		t.Fatal(err)
	}
	orders, _ := e.store.GetAccount(ctx, "orders")
	edge, _ := e.store.GetAccount(ctx, "edge")
	if len(orders.PublicKeys) != 2 || !edge.Disabled {
		t.Fatalf("operator changes lost: %d keys, edge disabled %v", len(orders.PublicKeys), edge.Disabled)
	}
	// An invalid configuration changes nothing.
	bad := e.cfg
	bad.Accounts = append([]AccountConfig{{ID: "new-one"}}, AccountConfig{ID: "BAD"})
	before = e.snapshot()
	if err := e.svc.ApplyConfig(ctx, bad); err == nil {
		t.Fatal("invalid configuration applied")
	}
	if e.snapshot() != before {
		t.Fatal("an invalid configuration changed the store")
	}
}

func TestNewRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := New(ctx, NewMemoryStore(), testKEK[:16], DefaultConfig()); err == nil {
		t.Error("short key-encryption key accepted")
	}
	if _, err := New(ctx, nil, testKEK, DefaultConfig()); err == nil {
		t.Error("nil store accepted")
	}
	bad := DefaultConfig()
	bad.Skew = time.Hour
	if _, err := New(ctx, NewMemoryStore(), testKEK, bad); err == nil {
		t.Error("invalid configuration accepted")
	}
	// A store with EdDSA keys refuses a switch to ES256.
	st := NewMemoryStore()
	if _, err := New(ctx, st, testKEK, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	es := DefaultConfig()
	es.Algorithm = "ES256"
	if _, err := New(ctx, st, testKEK, es); err == nil {
		t.Error("algorithm switch on an existing store accepted")
	}
}

// TestES256: with ES256 configured, tokens are ES256 and verify against the
// published key set.
func TestES256(t *testing.T) {
	e := newEnvWith(t, NewMemoryStore(), newFakeClock(), newTestKeys(t), func(c *Config) { c.Algorithm = "ES256" })
	resp := e.issue("orders", "billing")
	keys, err := e.svc.GetKeys(context.Background(), nil)
	if err == nil {
		t.Fatal("nil request accepted")
	}
	_ = keys
	r := e.verify(resp.GetToken(), 0, "billing")
	if !r.GetActive() {
		t.Fatalf("ES256 token: %v", r.GetReason())
	}
	gk, err := e.auth.GetKeys(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := token.ParseJWKS(gk.GetJwks(), token.ES256)
	if err != nil || ks.Len() != 2 {
		t.Fatalf("ES256 JWKS: %v", err)
	}
	if _, err := token.Verify(resp.GetToken(), token.ES256, ks, token.Expect{Issuer: "callsign", Audience: "billing", Type: token.TypeService, Now: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
}

func TestJWKSHandler(t *testing.T) {
	e := newEnv(t)
	h := e.svc.JWKSHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/jwk-set+json" ||
		rec.Header().Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("response: %d %v", rec.Code, rec.Header())
	}
	gk, err := e.auth.GetKeys(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != string(gk.GetJwks()) {
		t.Fatal("HTTP JWKS differs from GetKeys")
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil || len(set.Keys) != 2 {
		t.Fatalf("JWKS: %v %s", err, rec.Body.String())
	}
	for _, k := range set.Keys {
		if _, ok := k["d"]; ok {
			t.Fatal("private member published")
		}
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: %d %d", rec.Code, rec.Body.Len())
	}
}
