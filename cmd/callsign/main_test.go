package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The CLI is tested against a real callsignd --dev, built once and started on
// free loopback ports.
var server struct {
	bin      string
	grpcAddr string
	httpAddr string
	creds    string
	err      error
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "callsign-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	stop := startCallsignd(dir)
	defer stop()
	return m.Run()
}

// startCallsignd builds callsignd and starts it with --dev in dir; failures
// are kept in server.err and reported by the tests that need the server.
func startCallsignd(dir string) func() {
	if testing.Short() {
		server.err = errors.New("skipped with -short")
		return func() {}
	}
	bin := filepath.Join(dir, "callsignd")
	build := exec.Command("go", "build", "-o", bin, "github.com/callsign-dev/callsign/cmd/callsignd")
	if out, err := build.CombinedOutput(); err != nil {
		server.err = fmt.Errorf("build callsignd: %w\n%s", err, out)
		return func() {}
	}
	server.bin = bin
	info, stop, err := launch(bin, dir)
	if err != nil {
		server.err = err
		return stop
	}
	server.grpcAddr, server.httpAddr, server.creds = info.GRPCAddr, info.HTTPAddr, info.CredentialsDir
	return stop
}

// readyInfo is what callsignd writes to its --ready-file.
type readyInfo struct {
	GRPCAddr       string `json:"grpc_addr"`
	HTTPAddr       string `json:"http_addr"`
	CredentialsDir string `json:"credentials_dir"`
}

// launch starts callsignd --dev on free loopback ports with its data in dir
// and waits until it is serving. The returned function stops it.
func launch(bin, dir string, extra ...string) (readyInfo, func(), error) {
	ready := filepath.Join(dir, "ready.json")
	logPath := filepath.Join(dir, "callsignd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return readyInfo{}, func() {}, err
	}
	args := append([]string{"--dev", "--data-dir", filepath.Join(dir, "data"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--ready-file", ready,
		"--refresh-hint", "1s", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return readyInfo{}, func() {}, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var info readyInfo
		if b, err := os.ReadFile(ready); err == nil && json.Unmarshal(b, &info) == nil {
			if info.CredentialsDir == "" {
				info.CredentialsDir = filepath.Join(dir, "data", "credentials")
			}
			return info, stop, nil
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			return readyInfo{}, stop, fmt.Errorf("callsignd exited before it was ready:\n%s", b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return readyInfo{}, stop, errors.New("callsignd not ready in 30s")
		}
	}
}

func needServer(t *testing.T) {
	t.Helper()
	if server.err != nil {
		if testing.Short() {
			t.Skip(server.err)
		}
		t.Fatal(server.err)
	}
}

// result is the outcome of one CLI run.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cs runs the CLI in-process as the operator of the test server; env adds or
// overrides environment variables.
func cs(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	vars := map[string]string{
		"CALLSIGN_ADDR": server.grpcAddr,
		"CALLSIGN_KEY":  filepath.Join(server.creds, "callsign-admin.jwk"),
	}
	maps.Copy(vars, env)
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr, func(k string) string { return vars[k] })
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code}
}

func mustCS(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	r := cs(t, env, "", args...)
	if r.code != exitOK {
		t.Fatalf("callsign %s: %s", strings.Join(args, " "), r)
	}
	return r
}

func wantFail(t *testing.T, code int, contains string, r result) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d: %s", r.code, code, r)
	}
	if !strings.Contains(r.stdout+r.stderr, contains) {
		t.Fatalf("output lacks %q: %s", contains, r)
	}
}

func TestHelp(t *testing.T) {
	r := cs(t, nil, "", "help")
	if r.code != exitOK {
		t.Fatalf("help: %s", r)
	}
	for _, g := range groups {
		if !strings.Contains(r.stdout, g.name) {
			t.Errorf("help does not list %s", g.name)
		}
	}
	for _, c := range allCommands() {
		r := cs(t, nil, "", c.group, c.name, "--help")
		if r.code != exitOK || !strings.Contains(r.stdout, "Usage: callsign "+c.path()) {
			t.Errorf("%s --help: %s", c.path(), r)
		}
	}
	for _, g := range groups {
		if r := cs(t, nil, "", g.name, "--help"); r.code != exitOK || !strings.Contains(r.stdout, "callsign "+g.name) {
			t.Errorf("%s --help: %s", g.name, r)
		}
	}
	wantFail(t, exitUsage, "unknown command \"frobnicate\"", cs(t, nil, "", "frobnicate"))
	wantFail(t, exitUsage, "callsign accounts --help", cs(t, nil, "", "accounts", "frobnicate"))
	wantFail(t, exitUsage, "takes 1 argument", cs(t, nil, "", "accounts", "create"))
	wantFail(t, exitUsage, "flag provided but not defined", cs(t, nil, "", "accounts", "list", "--frobnicate"))
	if r := cs(t, nil, ""); r.code != exitUsage {
		t.Errorf("no arguments: %s", r)
	}
}

func TestConnectionErrors(t *testing.T) {
	wantFail(t, exitUsage, "not a loopback address and TLS is off", cs(t, map[string]string{"CALLSIGN_ADDR": "192.0.2.1:7443"}, "", "accounts", "list"))
	wantFail(t, exitUsage, "pass --key FILE", cs(t, map[string]string{"CALLSIGN_KEY": ""}, "", "accounts", "list"))
	wantFail(t, exitUsage, "--cert and --cert-key go together", cs(t, nil, "", "accounts", "list", "--cert", "x.pem"))
	// A free port with nobody listening.
	wantFail(t, exitError, "cannot reach callsignd at 127.0.0.1:1", cs(t, map[string]string{"CALLSIGN_ADDR": "127.0.0.1:1"}, "", "signing-keys", "list", "--timeout", "3s"))
	wantFail(t, exitError, "no such file", cs(t, map[string]string{"CALLSIGN_KEY": "/nonexistent.jwk"}, "", "accounts", "list"))
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.jwk")
	r := mustCS(t, nil, "keys", "keygen", "--out", path, "--kid", "k1")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	var pub struct{ Kid, X, D string }
	if err := json.Unmarshal([]byte(r.stdout), &pub); err != nil || pub.D != "" || pub.Kid != "k1" || pub.X == "" {
		t.Fatalf("public JWK %q (err %v)", r.stdout, err)
	}
	k, err := loadAccountKey(path)
	if err != nil || k.kid != "k1" || base64.RawURLEncoding.EncodeToString(k.public()) != pub.X {
		t.Fatalf("private key does not match: %v", err)
	}
	wantFail(t, exitError, "never overwrites", cs(t, nil, "", "keys", "keygen", "--out", path))
	wantFail(t, exitUsage, "pass --out", cs(t, nil, "", "keys", "keygen"))
}

func TestDecode(t *testing.T) {
	// A token with a wrong signature decodes all the same, clearly marked.
	tok := "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoic3ZjK2p3dCJ9." +
		"eyJpc3MiOiJjYWxsc2lnbiIsInN1YiI6Im9yZGVycyIsImF1ZCI6InByaWNpbmciLCJleHAiOjIwMDAwMDAwMDAsImlhdCI6MTcwMDAwMDAwMH0." +
		"AAAA"
	r := cs(t, nil, "Bearer "+tok+"\n", "token", "decode")
	if r.code != exitOK || !strings.Contains(r.stdout, "UNVERIFIED") || !strings.Contains(r.stdout, `"sub": "orders"`) || !strings.Contains(r.stdout, "exp: 2033-05-18T03:33:20Z") {
		t.Fatalf("decode: %s", r)
	}
	r = cs(t, nil, "", "token", "decode", "--json", tok)
	var out struct {
		Verified bool           `json:"verified"`
		Claims   map[string]any `json:"claims"`
	}
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Verified || out.Claims["aud"] != "pricing" {
		t.Fatalf("decode --json: %s", r)
	}
	wantFail(t, exitError, "three parts", cs(t, nil, "", "token", "decode", "abc"))
	wantFail(t, exitError, "not base64url-encoded JSON", cs(t, nil, "", "token", "decode", "a.b.c"))
	wantFail(t, exitUsage, "no token", cs(t, nil, "", "token", "decode"))
}

func TestAccountsKeysGrantsAndTokens(t *testing.T) {
	needServer(t)
	dir := t.TempDir()
	key := filepath.Join(dir, "shipping.jwk")
	pub := filepath.Join(dir, "shipping.pub.jwk")
	r := mustCS(t, nil, "keys", "keygen", "--out", key)
	if err := os.WriteFile(pub, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	asShipping := map[string]string{"CALLSIGN_ACCOUNT": "shipping", "CALLSIGN_KEY": key}

	mustCS(t, nil, "accounts", "create", "shipping", "--description", "ships orders")
	wantFail(t, exitError, "already exists", cs(t, nil, "", "accounts", "create", "shipping"))
	wantFail(t, exitError, "invalid", cs(t, nil, "", "accounts", "create", "Not A Valid Id"))
	mustCS(t, nil, "keys", "add", "shipping", "--jwk-file", pub)
	// No grant yet: the error says how to set one.
	wantFail(t, exitError, "callsign grants set", cs(t, asShipping, "", "token", "issue", "--audience", "pricing"))
	mustCS(t, nil, "grants", "set", "shipping", "pricing", "--scopes", "pricing.quote")

	if r := mustCS(t, nil, "accounts", "list"); !strings.Contains(r.stdout, "shipping") || !strings.Contains(r.stdout, "pricing[pricing.quote]") {
		t.Errorf("accounts list: %s", r)
	}
	if r := mustCS(t, nil, "accounts", "show", "shipping"); !strings.Contains(r.stdout, "ships orders") || !strings.Contains(r.stdout, "public keys:  1") {
		t.Errorf("accounts show: %s", r)
	}
	wantFail(t, exitError, "not found", cs(t, nil, "", "accounts", "show", "nobody"))

	// Issue with the new key, then decode and verify three ways.
	r = mustCS(t, asShipping, "token", "issue", "--audience", "pricing", "--json")
	var is struct {
		Token   string `json:"token"`
		TokenID string `json:"tokenId"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &is); err != nil || is.Token == "" {
		t.Fatalf("token issue --json: %s", r)
	}
	if r := mustCS(t, nil, "token", "verify", "--audience", "pricing", is.Token); !strings.Contains(r.stdout, "VALID") || !strings.Contains(r.stdout, "subject:  shipping") {
		t.Errorf("verify: %s", r)
	}
	mustCS(t, nil, "token", "verify", "--audience", "pricing", "--keys", is.Token)
	mustCS(t, nil, "token", "verify", "--audience", "pricing", "--jwks", "http://"+server.httpAddr+"/.well-known/jwks.json", is.Token)
	wantFail(t, exitError, "INVALID: AUDIENCE_MISMATCH", cs(t, nil, "", "token", "verify", "--audience", "billing", is.Token))
	wantFail(t, exitError, "INVALID: AUDIENCE_MISMATCH", cs(t, nil, "", "token", "verify", "--audience", "billing", "--keys", is.Token))
	wantFail(t, exitError, "INVALID: TYPE_MISMATCH", cs(t, nil, "", "token", "verify", "--type", "user", is.Token))
	wantFail(t, exitUsage, "pass --audience", cs(t, nil, "", "token", "verify", is.Token))

	// Revoked: callsignd's Verify and GetKeys both say so at once.
	mustCS(t, nil, "revoke", "token", "--", is.TokenID)
	wantFail(t, exitError, "INVALID: TOKEN_REVOKED", cs(t, nil, "", "token", "verify", "--audience", "pricing", is.Token))
	wantFail(t, exitError, "INVALID: TOKEN_REVOKED", cs(t, nil, "", "token", "verify", "--audience", "pricing", "--keys", is.Token))

	// Revoke every token of the account issued up to now.
	r = mustCS(t, asShipping, "token", "issue", "--audience", "pricing")
	second := strings.TrimSpace(r.stdout)
	mustCS(t, nil, "token", "verify", "--audience", "pricing", second)
	time.Sleep(1100 * time.Millisecond) // iat has a resolution of one second
	mustCS(t, nil, "revoke", "account", "shipping")
	wantFail(t, exitError, "INVALID: TOKEN_REVOKED", cs(t, nil, "", "token", "verify", "--audience", "pricing", second))

	// Disabled: no token; enabled again: tokens again.
	mustCS(t, nil, "accounts", "disable", "shipping")
	wantFail(t, exitError, "refused the credential of account shipping", cs(t, asShipping, "", "token", "issue", "--audience", "pricing"))
	mustCS(t, nil, "accounts", "enable", "shipping")
	mustCS(t, asShipping, "token", "issue", "--audience", "pricing")

	// A scope that is not granted is refused, never trimmed.
	wantFail(t, exitError, "SCOPE_NOT_GRANTED", cs(t, asShipping, "", "token", "issue", "--audience", "pricing", "--scopes", "pricing.admin"))
	mustCS(t, nil, "grants", "delete", "shipping", "pricing")
	wantFail(t, exitError, "AUDIENCE_NOT_GRANTED", cs(t, asShipping, "", "token", "issue", "--audience", "pricing"))

	// Client secret.
	mustCS(t, nil, "grants", "set", "shipping", "pricing")
	r = mustCS(t, nil, "secrets", "rotate", "shipping")
	secret := strings.TrimSpace(r.stdout)
	if !strings.HasPrefix(secret, "cs_") || !strings.Contains(r.stderr, "not shown again") {
		t.Fatalf("secrets rotate: %s", r)
	}
	mustCS(t, map[string]string{"CALLSIGN_ACCOUNT": "shipping", "CALLSIGN_SECRET": secret, "CALLSIGN_KEY": ""}, "token", "issue", "--audience", "pricing")
	wantFail(t, exitError, "refused the credential", cs(t, map[string]string{"CALLSIGN_ACCOUNT": "shipping", "CALLSIGN_SECRET": "cs_" + strings.Repeat("A", 43)}, "", "token", "issue", "--audience", "pricing"))
	wantFail(t, exitUsage, "pass one credential", cs(t, map[string]string{"CALLSIGN_ACCOUNT": "shipping", "CALLSIGN_SECRET": secret}, "", "token", "issue", "--audience", "pricing", "--key", key))

	// Removing the key ends private_key_jwt for it.
	acct := mustCS(t, nil, "accounts", "show", "shipping", "--json")
	var a struct {
		Account struct {
			PublicKeys []struct {
				KeyID string `json:"keyId"`
			} `json:"publicKeys"`
		} `json:"account"`
	}
	if err := json.Unmarshal([]byte(acct.stdout), &a); err != nil || len(a.Account.PublicKeys) != 1 {
		t.Fatalf("accounts show --json: %s", acct)
	}
	mustCS(t, nil, "keys", "remove", "shipping", a.Account.PublicKeys[0].KeyID)
	wantFail(t, exitError, "refused the credential", cs(t, asShipping, "", "token", "issue", "--audience", "pricing"))
	wantFail(t, exitError, "not found", cs(t, nil, "", "keys", "remove", "shipping", a.Account.PublicKeys[0].KeyID))
}

func TestUserTokens(t *testing.T) {
	needServer(t)
	gateway := map[string]string{"CALLSIGN_ACCOUNT": "gateway", "CALLSIGN_KEY": filepath.Join(server.creds, "gateway.jwk")}
	r := mustCS(t, gateway, "token", "issue", "--user", "alice", "--tenant", "acme", "--roles", "buyer")
	tok := strings.TrimSpace(r.stdout)
	v := mustCS(t, nil, "token", "verify", "--type", "user", tok)
	for _, want := range []string{"VALID", "type:     user", "subject:  alice", "tenant:   acme", "asserted by: gateway"} {
		if !strings.Contains(v.stdout, want) {
			t.Errorf("verify --type user lacks %q: %s", want, v)
		}
	}
	wantFail(t, exitError, "INVALID: TYPE_MISMATCH", cs(t, nil, "", "token", "verify", "--audience", "orders", tok))
	wantFail(t, exitError, "may not assert this user", cs(t, gateway, "", "token", "issue", "--user", "alice", "--tenant", "initech"))
	orders := map[string]string{"CALLSIGN_ACCOUNT": "orders", "CALLSIGN_KEY": filepath.Join(server.creds, "orders.jwk")}
	wantFail(t, exitError, "may not assert this user", cs(t, orders, "", "token", "issue", "--user", "alice", "--tenant", "acme"))
	mustCS(t, nil, "user-assertion", "set", "orders", "--tenants", "acme")
	mustCS(t, orders, "token", "issue", "--user", "alice", "--tenant", "acme")
	mustCS(t, nil, "user-assertion", "set", "orders", "--deny")
	wantFail(t, exitError, "may not assert this user", cs(t, orders, "", "token", "issue", "--user", "alice", "--tenant", "acme"))
	wantFail(t, exitUsage, "--user needs --tenant", cs(t, gateway, "", "token", "issue", "--user", "alice"))
	wantFail(t, exitUsage, "pass --tenants", cs(t, nil, "", "user-assertion", "set", "orders"))
}

func TestSigningKeys(t *testing.T) {
	needServer(t)
	active := func() string {
		r := mustCS(t, nil, "signing-keys", "list", "--json")
		var keys struct {
			Keys []struct {
				KeyID string `json:"keyId"`
				State string `json:"state"`
			} `json:"keys"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil {
			t.Fatalf("signing-keys list --json: %s", r)
		}
		for _, k := range keys.Keys {
			if k.State == "SIGNING_KEY_STATE_ACTIVE" {
				return k.KeyID
			}
		}
		t.Fatalf("no active key: %s", r)
		return ""
	}
	before := active()
	if r := mustCS(t, nil, "signing-keys", "list"); !strings.Contains(r.stdout, before) || !strings.Contains(r.stdout, "active") {
		t.Errorf("signing-keys list: %s", r)
	}
	old := mustCS(t, map[string]string{"CALLSIGN_ACCOUNT": "orders", "CALLSIGN_KEY": filepath.Join(server.creds, "orders.jwk")}, "token", "issue", "--audience", "pricing")
	r := mustCS(t, nil, "signing-keys", "rotate")
	if !strings.Contains(r.stdout, "retired") {
		t.Errorf("signing-keys rotate: %s", r)
	}
	after := active()
	if after == before {
		t.Fatalf("the active key is still %s after a rotation", before)
	}
	// A token signed by the retired key still verifies.
	mustCS(t, nil, "token", "verify", "--audience", "pricing", strings.TrimSpace(old.stdout))
	r = mustCS(t, map[string]string{"CALLSIGN_ACCOUNT": "orders", "CALLSIGN_KEY": filepath.Join(server.creds, "orders.jwk")}, "token", "issue", "--audience", "pricing")
	if !strings.Contains(r.stderr, "key "+after) {
		t.Errorf("a token issued after the rotation is not signed by %s: %s", after, r)
	}
}

func TestWrongAdmin(t *testing.T) {
	needServer(t)
	// orders is a real account, but it has no grant for callsign.admin.
	orders := map[string]string{"CALLSIGN_ACCOUNT": "orders", "CALLSIGN_KEY": filepath.Join(server.creds, "orders.jwk")}
	wantFail(t, exitError, "may not administer callsign", cs(t, orders, "", "accounts", "list"))
	// The admin's key under another account's name.
	wantFail(t, exitError, "refused the credential", cs(t, map[string]string{"CALLSIGN_ACCOUNT": "billing"}, "", "accounts", "list"))
	wantFail(t, exitError, "refused the credential", cs(t, map[string]string{"CALLSIGN_ISSUER": "someone-else"}, "", "accounts", "list"))
}
