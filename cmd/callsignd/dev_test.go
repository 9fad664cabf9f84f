package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/callsign-dev/callsign/internal/token"
)

func TestDevKEKCreatedOnceWithOwnerOnlyMode(t *testing.T) {
	dir := t.TempDir()
	path, created, err := devKEK(dir)
	if err != nil || !created {
		t.Fatalf("devKEK = %q, %v, %v; want a new file", path, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	first, _ := os.ReadFile(path)
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(first)))
	if err != nil || len(raw) != kekSize {
		t.Fatalf("kek file is not 32 bytes of base64: %v, %d bytes", err, len(raw))
	}

	path2, created, err := devKEK(dir)
	if err != nil || created || path2 != path {
		t.Fatalf("second devKEK = %q, %v, %v; want the existing file", path2, created, err)
	}
	second, _ := os.ReadFile(path)
	if string(first) != string(second) {
		t.Error("the key-encryption key changed across restarts")
	}
}

func TestCredentialKeptAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	c1, err := loadOrCreateCredential(dir, "orders")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(c1.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credential mode = %v, want 0600", fi.Mode().Perm())
	}
	if c1.path != filepath.Join(dir, "orders.jwk") {
		t.Errorf("path = %q", c1.path)
	}
	c2, err := loadOrCreateCredential(dir, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if c1 != c2 {
		t.Errorf("credential changed across restarts: %+v != %+v", c1, c2)
	}

	// The file is a private JWK whose public half is the registered key.
	data, _ := os.ReadFile(c1.path)
	priv, err := parsePrivateJWK(data)
	if err != nil {
		t.Fatal(err)
	}
	var pub privateJWK
	if err := json.Unmarshal([]byte(c1.publicJWK), &pub); err != nil {
		t.Fatal(err)
	}
	if pub.D != "" {
		t.Error("the public JWK carries the private member d")
	}
	x, _ := base64.RawURLEncoding.DecodeString(pub.X)
	if !ed25519.PublicKey(x).Equal(priv.Public()) {
		t.Error("public JWK does not match the private key")
	}
	if pub.Kid != c1.kid || c1.kid != token.Thumbprint(x) {
		t.Errorf("kid = %q, thumbprint = %q", c1.kid, token.Thumbprint(x))
	}
}

func TestCredentialCorruptFileRefused(t *testing.T) {
	dir := t.TempDir()
	c, err := loadOrCreateCredential(dir, "billing")
	if err != nil {
		t.Fatal(err)
	}
	var j privateJWK
	data, _ := os.ReadFile(c.path)
	_ = json.Unmarshal(data, &j)
	other, err := loadOrCreateCredential(dir, "pricing")
	if err != nil {
		t.Fatal(err)
	}
	var o privateJWK
	data, _ = os.ReadFile(other.path)
	_ = json.Unmarshal(data, &o)

	for name, content := range map[string]string{
		"not json":       "{",
		"wrong kty":      `{"kty":"EC","crv":"P-256","x":"` + j.X + `","d":"` + j.D + `"}`,
		"short seed":     `{"kty":"OKP","crv":"Ed25519","x":"` + j.X + `","d":"AAAA"}`,
		"mismatched x/d": `{"kty":"OKP","crv":"Ed25519","x":"` + j.X + `","d":"` + o.D + `"}`,
	} {
		if err := os.WriteFile(c.path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := loadOrCreateCredential(dir, "billing")
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if !strings.Contains(err.Error(), "delete the file") {
			t.Errorf("%s: error %q does not say what to do", name, err)
		}
		if strings.Contains(err.Error(), j.D) || strings.Contains(err.Error(), o.D) {
			t.Errorf("%s: error repeats the private key", name)
		}
	}
}

func TestDevAccountsAreTheShopDemo(t *testing.T) {
	byID := map[string]devAccount{}
	for _, a := range devAccounts {
		if _, dup := byID[a.id]; dup {
			t.Fatalf("account %q declared twice", a.id)
		}
		byID[a.id] = a
	}
	for _, id := range []string{"gateway", "orders", "pricing", "billing", "inventory", "rogue", adminAccountID} {
		if _, ok := byID[id]; !ok {
			t.Errorf("account %q missing", id)
		}
	}
	scopes := func(id, aud string) []string {
		for _, g := range byID[id].grants {
			if g.audience == aud {
				return g.scopes
			}
		}
		return []string{"<no grant>"}
	}
	if got := strings.Join(scopes("orders", "billing"), " "); got != "billing.charge" {
		t.Errorf("orders→billing scopes = %q", got)
	}
	if got := strings.Join(scopes("rogue", "pricing"), " "); got != "" {
		t.Errorf("rogue→pricing scopes = %q, want none", got)
	}
	if got := strings.Join(scopes(adminAccountID, "callsign"), " "); got != "callsign.admin callsign.verify" {
		t.Errorf("admin scopes = %q", got)
	}
	if got := strings.Join(byID["gateway"].userTenants, " "); got != "acme globex" {
		t.Errorf("gateway tenants = %q", got)
	}
	for id, a := range byID {
		if id != "gateway" && len(a.userTenants) > 0 {
			t.Errorf("%s may assert users", id)
		}
	}
}

// TestDevFilesConcurrentFirstStart: two processes creating the development
// files at once end up with one key-encryption key and one key per account.
func TestDevFilesConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	kekPaths := make([]string, n)
	creds := make([]devCredential, n)
	errs := make([]error, 2*n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { kekPaths[i], _, errs[i] = devKEK(dir) })
		wg.Go(func() { creds[i], errs[n+i] = loadOrCreateCredential(dir, "orders") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < n; i++ {
		if creds[i] != creds[0] {
			t.Errorf("credential %d differs: %+v != %+v", i, creds[i], creds[0])
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 { // kek and orders.jwk, no temporary files left
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files after concurrent creation: %v", names)
	}
}

// privateJWK decodes the members of the key files that the tests look at.
type privateJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
}
