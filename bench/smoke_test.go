package bench

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// smokeEnv, set to 1, makes every benchmark run at its smallest size.
const smokeEnv = "CALLSIGN_BENCH_SMOKE"

// TestBenchmarksSmoke runs every benchmark of this package once, at its
// smallest size, in a child process of this test binary: the suite stays
// runnable without making go test slow. It does not judge any figure.
func TestBenchmarksSmoke(t *testing.T) {
	if smoke {
		t.Skip("already inside the smoke run")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=.", "-test.benchtime=1x", "-test.benchmem")
	cmd.Env = append(os.Environ(), smokeEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "--- FAIL") {
		t.Fatalf("benchmarks failed: %v\n%s", err, out)
	}
	if testing.Verbose() {
		t.Logf("%s", out)
	}
}
