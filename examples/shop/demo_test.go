package shop_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/callsign-dev/callsign/examples/shop/internal/demo"
)

// TestDemoScenario runs the demo's whole scenario against real processes
// (callsignd --dev and the six shop binaries, built for the test) and checks
// that every step did what it should: each step asserts the gRPC code, the
// callsign reason and the audit lines the services wrote.
func TestDemoScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts seven processes; skipped with -short")
	}
	// Building eight binaries from a cold cache can take minutes on a small
	// machine; it is bounded by go test's own timeout. The scenario itself
	// runs in about half a minute and is given 90 seconds.
	var out bytes.Buffer
	bin := t.TempDir()
	buildStart := time.Now()
	if err := demo.Build(context.Background(), "", bin, &out); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	began := time.Now()
	rep, err := demo.Run(ctx, demo.Config{Out: &out, WorkDir: t.TempDir(), BinDir: bin})
	t.Logf("built in %s; the scenario ran in %s", began.Sub(buildStart).Round(100*time.Millisecond), time.Since(began).Round(100*time.Millisecond))
	if err != nil || !rep.OK() {
		t.Logf("transcript:\n%s", out.String())
	}
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	if len(rep.Steps) != len(demo.Scenario) {
		t.Fatalf("ran %d steps, want %d", len(rep.Steps), len(demo.Scenario))
	}
	for i, s := range rep.Steps {
		if s.Title != demo.Scenario[i] {
			t.Errorf("step %d is %q, want %q", i+1, s.Title, demo.Scenario[i])
		}
		if s.Err != nil {
			t.Errorf("step %d, %s: %v", i+1, s.Title, s.Err)
		}
	}
}
