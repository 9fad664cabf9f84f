package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// prodSetup is what a production start needs.
type prodSetup struct {
	kekFile string             // mode 0600
	kekB64  string             // the same key, for CALLSIGN_KEK
	cfgFile string             // declares the account "reporter"
	priv    ed25519.PrivateKey // reporter's key
	kid     string
}

// productionSetup writes a key-encryption key (mode 0600) and a configuration
// declaring one account with a fresh Ed25519 key and a grant.
func productionSetup(t *testing.T) prodSetup {
	t.Helper()
	dir := t.TempDir()
	var kekFile, kekB64, cfgFile string
	raw := make([]byte, kekSize)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	kekB64 = base64.StdEncoding.EncodeToString(raw)
	kekFile = filepath.Join(dir, "kek")
	if err := os.WriteFile(kekFile, []byte(kekB64+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	priv, pubJWK, err := authsvc.GenerateAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal([]byte(pubJWK), &j); err != nil {
		t.Fatal(err)
	}
	cfgFile = filepath.Join(dir, "callsign.yaml")
	cfg := "issuer: shop.example\ntoken_lifetime: 2m\naccounts:\n" +
		"  - id: reporter\n    description: nightly report\n    public_keys:\n      - jwk: '" + pubJWK + "'\n" +
		"    grants:\n      - audience: billing\n        scopes: [billing.read]\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return prodSetup{kekFile: kekFile, kekB64: kekB64, cfgFile: cfgFile, priv: priv, kid: j.Kid}
}

func issueWith(ctx context.Context, t *testing.T, p *proc, priv ed25519.PrivateKey, kid, account, audience string) (*callsignv1.IssueTokenResponse, error) {
	t.Helper()
	assertion, err := token.SignAssertion(priv, kid, account, p.info.Issuer, time.Now(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return callsignv1.NewAuthServiceClient(p.conn(t)).IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: assertion},
		Audience:   audience,
	})
}

// TestProductionMode: without --dev, callsignd takes its key-encryption key
// from --kek-file or CALLSIGN_KEK, its accounts from --config only, writes no
// key or credential files, and applies the configuration idempotently across
// restarts.
func TestProductionMode(t *testing.T) {
	s := productionSetup(t)
	kekFile, kekB64, cfgFile, priv, kid := s.kekFile, s.kekB64, s.cfgFile, s.priv, s.kid
	dataDir := filepath.Join(t.TempDir(), "data")

	start := func(env []string, args ...string) *proc {
		p := launchEnv(t, dataDir, env, append([]string{"--config", cfgFile}, args...)...)
		if err := p.waitReady(startTimeout); err != nil {
			t.Fatalf("callsignd did not become ready: %v\n%s", err, p.stderr.String())
		}
		return p
	}
	for i, run := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"--kek-file", kekFile}},
		{[]string{"CALLSIGN_KEK=" + kekB64}, nil}, // the same key from the environment
	} {
		p := start(run.env, run.args...)
		ctx := rpcContext(t)
		if p.info.Issuer != "shop.example" || p.info.CredentialsDir != "" {
			t.Errorf("run %d: ready file = %+v", i, p.info)
		}
		tok, err := issueWith(ctx, t, p, priv, kid, "reporter", "billing")
		if err != nil {
			t.Fatalf("run %d: IssueToken for the configured account: %v", i, err)
		}
		c := decodeClaims(t, tok.GetToken())
		if c["exp"]-c["iat"] != 120 {
			t.Errorf("run %d: lifetime = %vs, want the configured 2m", i, c["exp"]-c["iat"])
		}
		// No development account exists.
		if _, err := issueWith(ctx, t, p, priv, kid, "orders", "billing"); err == nil {
			t.Errorf("run %d: a development account exists in production mode", i)
		}
		if strings.Contains(p.stderr.String(), "DEVELOPMENT MODE") {
			t.Errorf("run %d: development warning in production mode", i)
		}
		if code := p.stop(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("run %d: exit code %d\n%s", i, code, p.stderr.String())
		}
		p.assertLogsClean(t, kekB64, tok.GetToken())
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), dbFileName) {
			t.Errorf("production mode wrote %s into the data directory", e.Name())
		}
	}
}

// TestWrongKEKRefused: a restart with another key-encryption key cannot
// decrypt the signing keys and refuses to start, and a key file readable by
// others is refused.
func TestWrongKEKRefused(t *testing.T) {
	s := productionSetup(t)
	kekFile, cfgFile := s.kekFile, s.cfgFile
	dataDir := filepath.Join(t.TempDir(), "data")
	p := launchEnv(t, dataDir, nil, "--config", cfgFile, "--kek-file", kekFile)
	if err := p.waitReady(startTimeout); err != nil {
		t.Fatalf("callsignd did not become ready: %v\n%s", err, p.stderr.String())
	}
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d", code)
	}

	other := make([]byte, kekSize)
	if _, err := rand.Read(other); err != nil {
		t.Fatal(err)
	}
	otherB64 := base64.StdEncoding.EncodeToString(other)
	run := func(env []string, args ...string) (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, callsignd(t), append([]string{"--data-dir", dataDir, "--config", cfgFile,
			"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}, args...)...)
		cmd.Env = append(cleanEnv(), env...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	code, out := run([]string{"CALLSIGN_KEK=" + otherB64})
	if code != exitError {
		t.Errorf("start with another KEK: exit %d, want %d\n%s", code, exitError, out)
	}
	if strings.Contains(out, otherB64) {
		t.Error("the key-encryption key is in the output")
	}

	if err := os.Chmod(kekFile, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out = run(nil, "--kek-file", kekFile)
	if code != exitUsage || !strings.Contains(out, "chmod 600") {
		t.Errorf("KEK file readable by others: exit %d, want %d and advice\n%s", code, exitUsage, out)
	}
}
