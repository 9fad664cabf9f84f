// Package demo runs callsign's shop demo: it builds and starts callsignd --dev
// and the shop's services as separate processes on free loopback ports, plays
// a scripted scenario against them, and prints a transcript: each call, who
// called whom on behalf of which user and tenant, allowed or denied and why,
// with the audit lines the services wrote. Every step checks its outcome; the
// demo succeeds only when all of them did what they should.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Demo settings: short lifetimes so that expiry and rotation fit in a minute.
const (
	tokenLifetime = 10 * time.Second // every token callsignd issues
	refreshHint   = time.Second      // how often verifiers fetch keys and revocations
	serviceSkew   = time.Second      // the clock skew the shop's services allow
	readyTimeout  = 30 * time.Second
	auditTimeout  = 5 * time.Second
	stopGrace     = 5 * time.Second
)

// Config configures [Run].
type Config struct {
	// Out receives the transcript.
	Out io.Writer
	// Root is the module's root directory; default: found with 'go env GOMOD'.
	Root string
	// WorkDir holds the binaries, callsignd's data and the process logs;
	// default a new temporary directory, removed afterwards unless Keep.
	WorkDir string
	// Keep keeps WorkDir.
	Keep bool
	// BinDir holds the binaries built by [Build]; when empty, Run builds them
	// into WorkDir.
	BinDir string
}

// Step is the outcome of one step of the scenario.
type Step struct {
	Title    string
	Err      error // nil when the step did what it should
	Duration time.Duration
}

// Report lists the steps run.
type Report struct {
	Steps []Step
}

// OK reports whether every step succeeded (and there was at least one).
func (r Report) OK() bool {
	if len(r.Steps) == 0 {
		return false
	}
	for _, s := range r.Steps {
		if s.Err != nil {
			return false
		}
	}
	return true
}

// Scenario lists the titles of the scenario's steps, in order.
var Scenario = []string{
	"A normal order",
	"A call without the scope",
	"A call from a service not in callers",
	"A call without a user",
	"A tampered token",
	"A token signed with an unknown key",
	"A token revoked through the CLI",
	"A stream ended when its token expires",
	"A signing-key rotation during steady traffic",
}

// runner holds the state of one run.
type runner struct {
	cfg    Config
	out    io.Writer
	procs  *procs
	bin    string
	work   string
	report *Report

	callsignGRPC string
	callsignHTTP string
	creds        string
	addrs        map[string]string
	gatewayURL   string
	http         *http.Client
}

// Run plays the scenario. It returns the report of the steps run and an error
// when the set-up failed or ctx ended; the demo passed only when the error is
// nil and [Report.OK] is true. Every process it started is stopped before it
// returns.
func Run(ctx context.Context, cfg Config) (Report, error) {
	var rep Report
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	r := &runner{cfg: cfg, out: cfg.Out, report: &rep, addrs: map[string]string{}, http: &http.Client{Timeout: 30 * time.Second}}
	err := r.prepare(ctx)
	defer func() {
		if !cfg.Keep && cfg.WorkDir == "" && r.work != "" {
			_ = os.RemoveAll(r.work)
		}
	}()
	if err != nil {
		return rep, err
	}
	defer r.procs.stopAll(stopGrace)
	if err := r.startAll(ctx); err != nil {
		return rep, err
	}
	steps := []func(context.Context) error{
		r.stepNormalOrder,
		r.stepNoScope,
		r.stepNotCaller,
		r.stepNoUser,
		r.stepTampered,
		r.stepForged,
		r.stepRevoked,
		r.stepStreamExpiry,
		r.stepRotation,
	}
	for i, step := range steps {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		r.header(i+1, Scenario[i])
		began := time.Now()
		err := step(ctx)
		if err == nil {
			err = r.procs.exited()
		}
		if err != nil {
			fmt.Fprintf(r.out, "  [FAIL] %v\n", err)
		} else {
			fmt.Fprintln(r.out, "  [ok]")
		}
		rep.Steps = append(rep.Steps, Step{Title: Scenario[i], Err: err, Duration: time.Since(began)})
	}
	r.summary(rep)
	return rep, ctx.Err()
}

func (r *runner) header(n int, title string) {
	fmt.Fprintf(r.out, "\n== %d. %s %s\n", n, title, strings.Repeat("=", max(0, 66-len(title))))
}

func (r *runner) summary(rep Report) {
	fmt.Fprintf(r.out, "\n== Summary %s\n", strings.Repeat("=", 66))
	for i, s := range rep.Steps {
		mark := "ok  "
		if s.Err != nil {
			mark = "FAIL"
		}
		fmt.Fprintf(r.out, "  [%s] %d. %s (%.1fs)\n", mark, i+1, s.Title, s.Duration.Seconds())
	}
	if rep.OK() {
		fmt.Fprintf(r.out, "\nEvery step did what it should.\n")
	} else {
		fmt.Fprintf(r.out, "\nSome steps failed. Each process's log is in %s; run the demo with -keep to keep them.\n", r.work)
	}
	if r.cfg.Keep {
		fmt.Fprintf(r.out, "The binaries, callsignd's data and the process logs are kept in %s.\n", r.work)
	}
}

// prepare creates the work directory and builds the binaries (unless
// Config.BinDir holds them already).
func (r *runner) prepare(ctx context.Context) error {
	work := r.cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "callsign-demo-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	r.work = work
	r.procs = newProcs(work)
	fmt.Fprintf(r.out, "callsign shop demo: callsignd and six services as separate processes on loopback\n\n")
	r.bin = r.cfg.BinDir
	if r.bin != "" {
		return nil
	}
	r.bin = filepath.Join(work, "bin")
	return Build(ctx, r.cfg.Root, r.bin, r.out)
}

// Packages are the demo's binaries: callsignd, the CLI and the shop.
var Packages = []string{
	"./cmd/callsignd", "./cmd/callsign",
	"./examples/shop/cmd/gateway", "./examples/shop/cmd/orders", "./examples/shop/cmd/pricing",
	"./examples/shop/cmd/billing", "./examples/shop/cmd/inventory", "./examples/shop/cmd/rogue",
}

// Build builds [Packages] into binDir with 'go build', from root (the
// module's root directory; found with 'go env GOMOD' when empty), and reports
// on out.
func Build(ctx context.Context, root, binDir string, out io.Writer) error {
	if root == "" {
		b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		if err != nil {
			return fmt.Errorf("find the module root with 'go env GOMOD': %w", err)
		}
		gomod := strings.TrimSpace(string(b))
		if gomod == "" || gomod == os.DevNull {
			return errors.New("run the demo from inside the callsign repository (make demo)")
		}
		root = filepath.Dir(gomod)
	}
	fmt.Fprintf(out, "  build   go build -o %s %s\n", binDir, strings.Join(Packages, " "))
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", binDir + string(filepath.Separator)}, Packages...)...) //nolint:gosec // fixed package list
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %w\n%s", err, b)
	}
	fmt.Fprintf(out, "          built in %s\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}
