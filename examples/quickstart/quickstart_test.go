package quickstart_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestQuickstart runs what README.md shows: callsignd --dev, the quickstart
// server, and the client as orders (allowed) and as rogue (refused).
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts processes; skipped with -short")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin") + string(filepath.Separator)
	build := exec.Command("go", "build", "-o", bin,
		"github.com/callsign-dev/callsign/cmd/callsignd",
		"github.com/callsign-dev/callsign/examples/quickstart/server",
		"github.com/callsign-dev/callsign/examples/quickstart/client")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	ready := filepath.Join(dir, "ready.json")
	data := filepath.Join(dir, "data")
	start(t, filepath.Join(bin, "callsignd"), "--dev", "--data-dir", data, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--ready-file", ready, "--log-level", "warn")
	var info struct {
		GRPCAddr string `json:"grpc_addr"`
	}
	waitFor(t, func() bool {
		b, err := os.ReadFile(ready)
		return err == nil && json.Unmarshal(b, &info) == nil && info.GRPCAddr != ""
	})

	serverLog := start(t, filepath.Join(bin, "server"), "--callsign", info.GRPCAddr, "--listen", "127.0.0.1:0")
	addrRE := regexp.MustCompile(`pricing serving on (\S+)`)
	var addr string
	waitFor(t, func() bool {
		b, _ := os.ReadFile(serverLog)
		if m := addrRE.FindSubmatch(b); m != nil {
			addr = string(m[1])
		}
		return addr != ""
	})

	creds := filepath.Join(data, "credentials")
	out, err := exec.Command(filepath.Join(bin, "client"), "--callsign", info.GRPCAddr, "--pricing", addr, "--key", filepath.Join(creds, "orders.jwk")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "3 x sku-42 cost 5997 cents") {
		t.Fatalf("client as orders: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(bin, "client"), "--callsign", info.GRPCAddr, "--pricing", addr, "--account", "rogue", "--key", filepath.Join(creds, "rogue.jwk")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PermissionDenied") || !strings.Contains(string(out), "reason SCOPE_MISSING") {
		t.Fatalf("client as rogue: %v\n%s", err, out)
	}
}

// start runs a process until the test ends and returns the file its
// standard error goes to.
func start(t *testing.T, bin string, args ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(bin)+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = logf.Close()
	})
	return logPath
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
