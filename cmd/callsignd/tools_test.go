package main

// Tests against tools that are not Go: node's jose package (an independent
// JOSE implementation) and grpcurl. Each skips with a reason when its tool is
// not installed.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// joseVerifyScript verifies TOKEN with node's jose against the JWKS fetched
// from JWKS_URL, pinning the algorithm, issuer, audience and typ. It prints
// the protected header and payload as JSON, or exits 3 with jose's error code.
const joseVerifyScript = `
const jose = require('jose');
(async () => {
  const jwks = jose.createRemoteJWKSet(new URL(process.env.JWKS_URL));
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(process.env.TOKEN, jwks, {
      issuer: process.env.ISSUER,
      audience: process.env.AUDIENCE,
      typ: process.env.TYP,
      algorithms: [process.env.ALG],
    });
    process.stdout.write(JSON.stringify({ header: protectedHeader, payload }));
  } catch (e) {
    process.stderr.write(String(e.code || e.name));
    process.exit(3);
  }
})();
`

// installJose installs jose@5 from the npm registry into a temporary
// directory and returns the node binary and that directory; it skips the test
// when node or npm is missing or the install fails (offline).
func installJose(t *testing.T) (node, dir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: skipping the check against node's jose")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed: skipping the check against node's jose")
	}
	dir = t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--no-save", "--silent", "jose@5")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("npm install jose@5 failed (no registry access?): %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "verify.cjs"), []byte(joseVerifyScript), 0o600); err != nil {
		t.Fatal(err)
	}
	return node, dir
}

type joseResult struct {
	Header  map[string]any `json:"header"`
	Payload map[string]any `json:"payload"`
}

// joseVerify runs the verify script; ok is false when jose refused the token.
func joseVerify(t *testing.T, node, dir string, env map[string]string) (res joseResult, reason string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "verify.cjs")
	cmd.Dir = dir
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 3 {
		return res, stderr.String(), false
	}
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("node output: %v\n%s", err, stdout.String())
	}
	return res, "", true
}

// TestTokensVerifyWithNodeJose: service and user-context tokens issued by
// callsignd verify with node's jose against /.well-known/jwks.json, for both
// algorithms; a tampered token and a wrong audience are refused by jose too.
func TestTokensVerifyWithNodeJose(t *testing.T) {
	node, dir := installJose(t)
	for _, alg := range []string{"EdDSA", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			cfgPath := filepath.Join(t.TempDir(), "callsign.yaml")
			if err := os.WriteFile(cfgPath, []byte("issuer: shop.example\nalgorithm: "+alg+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startDev(t, filepath.Join(t.TempDir(), "data"), "--config", cfgPath)
			ctx := rpcContext(t)
			client := callsignv1.NewAuthServiceClient(p.conn(t))

			svc, err := p.issue(ctx, t, client, "orders", "billing")
			if err != nil {
				t.Fatalf("IssueToken: %v", err)
			}
			priv, kid := p.credential(t, "gateway")
			assertion, err := token.SignAssertion(priv, kid, "gateway", p.info.Issuer, time.Now(), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			user, err := client.IssueToken(ctx, &callsignv1.IssueTokenRequest{
				Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: assertion},
				User:       &callsignv1.UserContext{UserId: "alice", TenantId: "acme", Roles: []string{"buyer"}},
			})
			if err != nil {
				t.Fatalf("IssueToken (user): %v", err)
			}

			base := map[string]string{
				"JWKS_URL": "http://" + p.info.HTTPAddr + "/.well-known/jwks.json",
				"ISSUER":   "shop.example",
				"ALG":      alg,
			}
			with := func(kv ...string) map[string]string {
				m := map[string]string{}
				maps.Copy(m, base)
				for i := 0; i+1 < len(kv); i += 2 {
					m[kv[i]] = kv[i+1]
				}
				return m
			}

			res, reason, ok := joseVerify(t, node, dir, with("TOKEN", svc.GetToken(), "AUDIENCE", "billing", "TYP", "svc+jwt"))
			if !ok {
				t.Fatalf("jose refused a service token: %s", reason)
			}
			if res.Payload["sub"] != "orders" || res.Payload["jti"] != svc.GetTokenId() || res.Header["kid"] != svc.GetKeyId() || res.Header["alg"] != alg {
				t.Errorf("jose saw header %v payload %v", res.Header, res.Payload)
			}
			if len(res.Header) != 3 {
				t.Errorf("header %v has members other than alg, kid, typ", res.Header)
			}

			res, reason, ok = joseVerify(t, node, dir, with("TOKEN", user.GetToken(), "AUDIENCE", "shop.example", "TYP", "user+jwt"))
			if !ok {
				t.Fatalf("jose refused a user-context token: %s", reason)
			}
			if res.Payload["sub"] != "alice" || res.Payload["tenant_id"] != "acme" {
				t.Errorf("jose saw user payload %v", res.Payload)
			}

			// The refusals prove that jose really checked.
			if _, reason, ok := joseVerify(t, node, dir, with("TOKEN", tamper(svc.GetToken()), "AUDIENCE", "billing", "TYP", "svc+jwt")); ok {
				t.Error("jose accepted a tampered token")
			} else {
				t.Logf("tampered token: %s", reason)
			}
			if _, reason, ok := joseVerify(t, node, dir, with("TOKEN", svc.GetToken(), "AUDIENCE", "pricing", "TYP", "svc+jwt")); ok {
				t.Error("jose accepted a token for the wrong audience")
			} else {
				t.Logf("wrong audience: %s", reason)
			}
		})
	}
}

// tamper changes one claim of a compact JWS and keeps its signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tok + "x"
	}
	changed := strings.Replace(string(payload), `"sub":"orders"`, `"sub":"rogue1"`, 1)
	if changed == string(payload) {
		// Unexpected layout: change the signature instead.
		sig := []byte(parts[2])
		sig[0] = map[bool]byte{true: 'B', false: 'A'}[sig[0] == 'A']
		parts[2] = string(sig)
		return strings.Join(parts, ".")
	}
	parts[1] = base64.RawURLEncoding.EncodeToString([]byte(changed))
	return strings.Join(parts, ".")
}

// grpcurlPath finds grpcurl in the repository's .bin or on PATH.
func grpcurlPath(t *testing.T) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", "..", ".bin", "grpcurl")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Skip("grpcurl is not installed (make tools installs it into .bin): skipping")
	}
	return p
}

func runGrpcurl(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-max-time", "10"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestGrpcurl: grpcurl lists callsignd's services through reflection,
// describes them and calls GetKeys; AdminService needs a token.
func TestGrpcurl(t *testing.T) {
	bin := grpcurlPath(t)
	p := startDev(t, filepath.Join(t.TempDir(), "data"))
	addr := p.info.GRPCAddr

	out, err := runGrpcurl(t, bin, "-plaintext", addr, "list")
	if err != nil {
		t.Fatalf("grpcurl list: %v\n%s", err, out)
	}
	for _, svc := range []string{"callsign.v1.AuthService", "callsign.v1.AdminService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !strings.Contains(out, svc+"\n") {
			t.Errorf("grpcurl list lacks %s:\n%s", svc, out)
		}
	}

	out, err = runGrpcurl(t, bin, "-plaintext", addr, "describe", "callsign.v1.AuthService")
	if err != nil || !strings.Contains(out, "rpc GetKeys") {
		t.Errorf("grpcurl describe: %v\n%s", err, out)
	}

	out, err = runGrpcurl(t, bin, "-plaintext", "-d", "{}", addr, "callsign.v1.AuthService/GetKeys")
	if err != nil {
		t.Fatalf("grpcurl GetKeys: %v\n%s", err, out)
	}
	var resp struct {
		JWKS []byte `json:"jwks"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("grpcurl GetKeys output: %v\n%s", err, out)
	}
	if ks, err := token.ParseJWKS(resp.JWKS, token.EdDSA); err != nil || ks.Len() == 0 {
		t.Errorf("JWKS from grpcurl: %v", err)
	}

	out, err = runGrpcurl(t, bin, "-plaintext", addr, "grpc.health.v1.Health/Check")
	if err != nil || !strings.Contains(out, "SERVING") {
		t.Errorf("grpcurl health check: %v\n%s", err, out)
	}

	out, err = runGrpcurl(t, bin, "-plaintext", "-d", "{}", addr, "callsign.v1.AdminService/ListAccounts")
	if err == nil || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("grpcurl ListAccounts without a token: %v\n%s", err, out)
	}
}
