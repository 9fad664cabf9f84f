package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
)

// callsigndReady is the part of callsignd's --ready-file the demo reads.
type callsigndReady struct {
	GRPCAddr       string `json:"grpc_addr"`
	HTTPAddr       string `json:"http_addr"`
	CredentialsDir string `json:"credentials_dir"`
	DataDir        string `json:"data_dir"`
}

func (r *runner) startAll(ctx context.Context) error {
	ready := filepath.Join(r.work, "callsignd.ready.json")
	args := []string{
		"--dev", "--data-dir", filepath.Join(r.work, "data"),
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--ready-file", ready,
		"--token-lifetime", tokenLifetime.String(), "--refresh-hint", refreshHint.String(),
		"--log-level", "warn",
	}
	fmt.Fprintf(r.out, "  start   callsignd %s\n", strings.Join(args, " "))
	pr, err := r.procs.start("callsignd", filepath.Join(r.bin, "callsignd"), args...)
	if err != nil {
		return err
	}
	var info callsigndReady
	if err := waitFile(ctx, ready, pr, readyTimeout, &info); err != nil {
		return fmt.Errorf("callsignd: %w\n%s", err, r.procs.tail("callsignd", 20))
	}
	r.callsignGRPC, r.callsignHTTP = info.GRPCAddr, info.HTTPAddr
	r.creds = info.CredentialsDir
	if r.creds == "" {
		r.creds = filepath.Join(r.work, "data", "credentials")
	}
	fmt.Fprintf(r.out, "          serving gRPC on %s, JWKS on http://%s/.well-known/jwks.json\n", r.callsignGRPC, r.callsignHTTP)
	fmt.Fprintf(r.out, "          every token lives %s; verifiers refresh keys and revocations every %s\n", tokenLifetime, refreshHint)

	// The operator lets the gateway watch the inventory.
	if _, err := r.cli(ctx, 0, "grants", "set", "gateway", "inventory", "--scopes", "inventory.watch"); err != nil {
		return err
	}

	common := func(name string) []string {
		return []string{
			"--callsign", r.callsignGRPC, "--key", filepath.Join(r.creds, name+".jwk"),
			"--listen", "127.0.0.1:0", "--ready-file", filepath.Join(r.work, name+".ready.json"),
			"--skew", serviceSkew.String(),
		}
	}
	for _, s := range []struct {
		name  string
		extra func() []string
	}{
		{"pricing", nil},
		{"billing", nil},
		{"inventory", func() []string { return []string{"--interval", "500ms"} }},
		{"orders", func() []string { return []string{"--pricing", r.addrs["pricing"], "--billing", r.addrs["billing"]} }},
		{"gateway", func() []string { return []string{"--orders", r.addrs["orders"], "--inventory", r.addrs["inventory"]} }},
	} {
		args := common(s.name)
		if s.extra != nil {
			args = append(args, s.extra()...)
		}
		pr, err := r.procs.start(s.name, filepath.Join(r.bin, s.name), args...)
		if err != nil {
			return err
		}
		var rd kit.Ready
		if err := waitFile(ctx, filepath.Join(r.work, s.name+".ready.json"), pr, readyTimeout, &rd); err != nil {
			return fmt.Errorf("%s: %w\n%s", s.name, err, r.procs.tail(s.name, 20))
		}
		r.addrs[s.name] = rd.Addr
		fmt.Fprintf(r.out, "  start   %-9s as service account %-9s on %s\n", s.name, s.name, rd.Addr)
	}
	r.gatewayURL = "http://" + r.addrs["gateway"]
	return nil
}

// cli runs the callsign CLI as the operator (account callsign-admin) and
// prints the command and its output. wantExit is the expected exit status.
func (r *runner) cli(ctx context.Context, wantExit int, args ...string) (string, error) {
	return r.runCLI(ctx, wantExit, true, args...)
}

// cliQuiet is cli without printing the output (for --json, which the demo
// summarises itself).
func (r *runner) cliQuiet(ctx context.Context, args ...string) (string, error) {
	return r.runCLI(ctx, 0, false, args...)
}

func (r *runner) runCLI(ctx context.Context, wantExit int, show bool, args ...string) (string, error) {
	shown := make([]string, len(args))
	for i, a := range args {
		shown[i] = a
		if len(a) > 60 { // a token: show its start
			shown[i] = a[:24] + "..."
		}
	}
	fmt.Fprintf(r.out, "  operator$ callsign %s\n", strings.Join(shown, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "callsign"), args...) //nolint:gosec // the CLI the demo built, with the demo's own arguments
	cmd.Env = append(os.Environ(),
		"CALLSIGN_ADDR="+r.callsignGRPC,
		"CALLSIGN_ACCOUNT=callsign-admin",
		"CALLSIGN_KEY="+filepath.Join(r.creds, "callsign-admin.jwk"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok { //nolint:errorlint // exec returns it unwrapped
		code = ee.ExitCode()
	} else if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(strings.TrimRight(stdout.String()+stderr.String(), "\n"), "\n") {
		if l != "" && (show || code != wantExit) {
			fmt.Fprintf(r.out, "            %s\n", l)
		}
	}
	if code != wantExit {
		return stdout.String(), fmt.Errorf("callsign %s exited with %d, want %d", strings.Join(args, " "), code, wantExit)
	}
	return stdout.String(), nil
}

// rogueOutcome is what the rogue prints for an attack.
type rogueOutcome struct {
	Attack  string `json:"attack"`
	Method  string `json:"method"`
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// rogue runs one attack of the rogue service.
func (r *runner) rogue(ctx context.Context, attack string, extra ...string) (rogueOutcome, error) {
	args := []string{
		"--callsign", r.callsignGRPC, "--key", filepath.Join(r.creds, "rogue.jwk"),
		"--pricing", r.addrs["pricing"], "--billing", r.addrs["billing"], "--orders", r.addrs["orders"],
	}
	args = append(append(args, extra...), attack)
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "rogue"), args...) //nolint:gosec // the rogue the demo built, with the demo's own arguments
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return rogueOutcome{}, fmt.Errorf("rogue %s: %w\n%s", attack, err, stderr.String())
	}
	var o rogueOutcome
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &o); err != nil {
		return rogueOutcome{}, fmt.Errorf("rogue %s printed %q: %w", attack, stdout.String(), err)
	}
	fmt.Fprintf(r.out, "  <- %s %s\n", o.Code, o.Reason)
	return o, nil
}
