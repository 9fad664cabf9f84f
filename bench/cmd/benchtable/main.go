// Command benchtable runs callsign's benchmark suite (package bench) in
// interleaved rounds and prints the ratios between callsign and its
// baselines, each computed within one round, with the median and the range
// over the rounds, next to the targets of the project.
//
// Usage (from the module root; make bench runs it):
//
//	go run ./bench/cmd/benchtable [-count 6] [-benchtime 300ms] [-bench .] [-o bench.out]
//
// Every round runs each benchmark once, so that a slow phase of a shared
// machine affects all variants of a round alike instead of a few of them.
// Benchmarks that are a whole run by themselves (the 10⁶-token memory run)
// run once, after the rounds. The raw output of every round is written to
// -o in the format benchstat reads.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	count := flag.Int("count", 6, "rounds of the repeated benchmarks")
	benchtime := flag.String("benchtime", "300ms", "-test.benchtime of each benchmark")
	bench := flag.String("bench", ".", "regular expression selecting the benchmarks")
	once := flag.String("once", "^BenchmarkCacheMemory$", "benchmarks run once, after the rounds")
	out := flag.String("o", "bench.out", "file for the raw results (benchstat format); empty for none")
	pkg := flag.String("pkg", "./bench", "package of the benchmarks")
	flag.Parse()
	if err := run(*count, *benchtime, *bench, *once, *out, *pkg); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(count int, benchtime, bench, once, out, pkg string) error {
	if count < 1 {
		return errors.New("-count must be at least 1")
	}
	selected, err := regexp.Compile(bench)
	if err != nil {
		return fmt.Errorf("-bench: %w", err)
	}
	onceRE, err := regexp.Compile(once)
	if err != nil {
		return fmt.Errorf("-once: %w", err)
	}
	dir, err := os.MkdirTemp("", "benchtable-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bench.test")
	ctx := context.Background()
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", bin, pkg) //nolint:gosec // G204: the go tool on the package named by -pkg
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the benchmarks: %w", err)
	}
	names, err := listBenchmarks(ctx, bin)
	if err != nil {
		return err
	}
	var repeated, single []string
	for _, n := range names {
		switch {
		case !selected.MatchString(n):
		case onceRE.MatchString(n):
			single = append(single, n)
		default:
			repeated = append(repeated, n)
		}
	}
	if len(repeated)+len(single) == 0 {
		return errors.New("no benchmark matches -bench")
	}

	var raw bytes.Buffer
	res := results{}
	start := time.Now()
	runOne := func(round int, pattern string) error {
		if pattern == anchored(single) {
			fmt.Fprintf(os.Stderr, "once: %s (%s elapsed)\n", strings.Join(single, ", "), time.Since(start).Round(time.Second))
		} else {
			fmt.Fprintf(os.Stderr, "round %d of %d (%s elapsed)\n", round+1, count, time.Since(start).Round(time.Second))
		}
		args := []string{"-test.run=^$", "-test.bench=" + pattern, "-test.benchtime=" + benchtime, "-test.benchmem", "-test.timeout=20m"}
		cmd := exec.CommandContext(ctx, bin, args...) //nolint:gosec // G204: the test binary built above, with the -bench and -benchtime of the command line
		cmd.Dir = pkgDir(pkg)
		var buf bytes.Buffer
		cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		raw.Write(buf.Bytes())
		res.parse(buf.String(), round)
		if err != nil {
			return fmt.Errorf("round %d: %w", round+1, err)
		}
		return nil
	}
	if len(repeated) > 0 {
		pattern := anchored(repeated)
		for r := range count {
			if err := runOne(r, pattern); err != nil {
				return err
			}
		}
	}
	if len(single) > 0 {
		if err := runOne(0, anchored(single)); err != nil {
			return err
		}
	}
	if out != "" {
		if err := os.WriteFile(out, raw.Bytes(), 0o600); err != nil {
			return err
		}
	}
	fmt.Printf("\ncallsign benchmarks: %d rounds, -benchtime %s, %s (%s)\n", count, benchtime, res.cpu, time.Since(start).Round(time.Second))
	fmt.Printf("%s %s/%s, GOMAXPROCS %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, res.procs)
	printFigures(os.Stdout, res)
	printChecks(os.Stdout, res)
	if out != "" {
		fmt.Printf("\nraw results in %s (benchstat %s)\n", out, out)
	}
	return nil
}

// pkgDir is the directory of a package path given relative to the module
// root, where go test would run its binary.
func pkgDir(pkg string) string {
	if strings.HasPrefix(pkg, "./") || strings.HasPrefix(pkg, "../") {
		return pkg
	}
	return "."
}

// listBenchmarks returns the top-level benchmarks of the test binary.
func listBenchmarks(ctx context.Context, bin string) ([]string, error) {
	outb, err := exec.CommandContext(ctx, bin, "-test.list=^Benchmark").Output()
	if err != nil {
		return nil, fmt.Errorf("listing the benchmarks: %w", err)
	}
	var names []string
	for l := range strings.Lines(string(outb)) {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "Benchmark") {
			names = append(names, l)
		}
	}
	return names, nil
}

func anchored(names []string) string {
	return "^(" + strings.Join(names, "|") + ")$"
}

// results holds, per benchmark (name without "Benchmark" and the GOMAXPROCS
// suffix) and unit, the value of each round.
type results struct {
	cpu, procs string
	m          map[string]map[string]map[int]float64
	order      []string
}

var procSuffix = regexp.MustCompile(`-(\d+)$`)

func (r *results) parse(out string, round int) {
	if r.m == nil {
		r.m = map[string]map[string]map[int]float64{}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			r.cpu = cpu
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if m := procSuffix.FindStringSubmatch(name); m != nil {
			name = strings.TrimSuffix(name, m[0])
			r.procs = m[1]
		}
		if _, ok := r.m[name]; !ok {
			r.m[name] = map[string]map[int]float64{}
			r.order = append(r.order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if r.m[name][unit] == nil {
				r.m[name][unit] = map[int]float64{}
			}
			r.m[name][unit][round] = v
		}
	}
}

// values returns the values of a benchmark's unit, by round.
func (r results) values(name, unit string) map[int]float64 { return r.m[name][unit] }

// stats are the median, minimum and maximum of a sample.
type stats struct {
	med, lo, hi float64
	n           int
}

func summarize(vs []float64) stats {
	if len(vs) == 0 {
		return stats{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{med: med, lo: s[0], hi: s[len(s)-1], n: len(s)}
}

// spread is the larger distance from the median to an extreme, in percent of
// the median, as benchstat's "±" reads.
func (s stats) spread() float64 {
	if s.med == 0 {
		return 0
	}
	return 100 * math.Max(s.hi-s.med, s.med-s.lo) / math.Abs(s.med)
}

func mapValues(m map[int]float64) []float64 {
	var out []float64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// printFigures prints every benchmark's figures: median ± spread of ns/op,
// median allocs/op, and the medians of the custom metrics.
func printFigures(w io.Writer, r results) {
	fmt.Fprintln(w, "\nFigures (median ± largest deviation over the rounds)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "benchmark\tns/op\t\tallocs/op\tother")
	for _, name := range r.order {
		units := r.m[name]
		ns := summarize(mapValues(units["ns/op"]))
		nsText, sp := "", ""
		if ns.n > 0 && ns.med > 0 {
			nsText = formatNum(ns.med)
			sp = fmt.Sprintf("± %.0f%%", ns.spread())
		}
		allocs := ""
		if a := summarize(mapValues(units["allocs/op"])); a.n > 0 {
			allocs = formatNum(a.med)
		}
		var other []string
		keys := make([]string, 0, len(units))
		for u := range units {
			keys = append(keys, u)
		}
		slices.Sort(keys)
		for _, u := range keys {
			if u == "ns/op" || u == "allocs/op" || u == "B/op" {
				continue
			}
			s := summarize(mapValues(units[u]))
			other = append(other, fmt.Sprintf("%s %s (± %.0f%%)", formatNum(s.med), u, s.spread()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, nsText, sp, allocs, strings.Join(other, ", "))
	}
	_ = tw.Flush()
}

func formatNum(v float64) string {
	switch a := math.Abs(v); {
	case a == 0:
		return "0"
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

// check is one line of the ratio table: num/den (or den/num when inverse,
// which turns ns/op into a throughput ratio), computed within each round; or
// an absolute figure when den is empty.
type check struct {
	label    string
	num      string // benchmark
	numUnit  string
	den      string // benchmark; empty for an absolute figure
	denUnit  string
	inverse  bool
	op       string // "<=", ">=", "==", or "" (reported, no target)
	target   float64
	fraction bool // print as a ratio (×) rather than a plain number
}

func ratio(label, num, den, op string, target float64) check {
	return check{label: label, num: num, numUnit: "ns/op", den: den, denUnit: "ns/op", op: op, target: target, fraction: true}
}

// paired is the ratio a paired benchmark measured itself, interleaved.
func paired(label, name, op string, target float64) check {
	return check{label: label, num: name, numUnit: "ratio", op: op, target: target, fraction: true}
}

func throughput(label, num, den, op string, target float64) check {
	c := ratio(label, num, den, op, target)
	c.inverse = true
	return c
}

func absolute(label, name, unit, op string, target float64) check {
	return check{label: label, num: name, numUnit: unit, op: op, target: target}
}

func checks() []check {
	var cs []check
	for _, tr := range []string{"tcp", "bufconn"} {
		for _, kind := range []string{"unary", "stream"} {
			p := "Paired/" + kind + "-" + tr + "/callsign-warm-vs-"
			cs = append(cs, paired(kind+" "+tr+": callsign warm / pass-through, interleaved", p+"passthrough", "<=", 1.05))
			if kind == "unary" {
				cs = append(cs, paired(kind+" "+tr+": callsign warm / bare, interleaved", p+"bare", "", 0))
			}
		}
	}
	for _, tr := range []string{"tcp", "bufconn"} {
		cs = append(cs, paired("stream "+tr+": callsign warm, no stream expiry / pass-through, interleaved",
			"Paired/stream-"+tr+"/callsign-warm-noexpiry-vs-passthrough", "", 0))
	}
	for _, tr := range []string{"tcp", "bufconn"} {
		cs = append(cs,
			paired("unary "+tr+": pass-through with callsign's metadata / bare, interleaved", "Paired/unary-"+tr+"/passthrough-vs-bare", "", 0),
			paired("unary "+tr+": pass-through with authorization only / bare, interleaved", "Paired/unary-"+tr+"/passthrough-authonly-vs-bare", "", 0))
	}
	cs = append(cs, paired("cold verification: callsign / ed25519.Verify, interleaved", "Paired/verify/callsign-vs-ed25519", "<=", 1.3))
	for _, tr := range []string{"tcp", "bufconn"} {
		u := "Unary/" + tr + "/"
		cs = append(cs,
			ratio("unary "+tr+": callsign warm / pass-through", u+"callsign-warm", u+"passthrough", "<=", 1.05),
			ratio("unary "+tr+": callsign warm / bare", u+"callsign-warm", u+"bare", "", 0),
			ratio("unary "+tr+": pass-through / bare", u+"passthrough", u+"bare", "", 0),
			ratio("unary "+tr+": authz static policy / pass-through", u+"authz", u+"passthrough", "", 0),
			ratio("unary "+tr+": naive jwx / pass-through", u+"naive-jwx", u+"passthrough", "", 0),
			ratio("unary "+tr+": naive golang-jwt / pass-through", u+"naive-jwt", u+"passthrough", "", 0),
			ratio("unary "+tr+": callsign cold / pass-through", u+"callsign-cold", u+"passthrough", "", 0),
			ratio("unary "+tr+": callsign central / pass-through", u+"callsign-central", u+"passthrough", "", 0),
			ratio("unary "+tr+": naive jwx / callsign warm", u+"naive-jwx", u+"callsign-warm", "", 0),
		)
		s := "Stream/" + tr + "/"
		cs = append(cs,
			ratio("stream "+tr+": callsign warm / pass-through", s+"callsign-warm", s+"passthrough", "<=", 1.05),
			ratio("stream "+tr+": naive jwx / pass-through", s+"naive-jwx", s+"passthrough", "", 0),
			ratio("stream "+tr+": callsign cold / pass-through", s+"callsign-cold", s+"passthrough", "", 0),
		)
	}
	cs = append(cs,
		absolute("server interceptor alone, callsign warm (ns)", "ServerInterceptor/callsign-warm", "ns/op", "<=", 1000),
		absolute("server interceptor alone, callsign warm (CPU ns)", "ServerInterceptor/callsign-warm", "cpu-ns/op", "<=", 1000),
		absolute("server interceptor alone, callsign warm (allocs)", "ServerInterceptor/callsign-warm", "allocs/op", "<=", 5),
		ratio("server interceptor alone: naive jwx / callsign warm", "ServerInterceptor/naive-jwx", "ServerInterceptor/callsign-warm", "", 0),
		ratio("server interceptor alone: callsign cold / ed25519.Verify", "ServerInterceptor/callsign-cold", "Verify/ed25519", "", 0),
		ratio("cold verification: callsign / ed25519.Verify", "Verify/callsign", "Verify/ed25519", "<=", 1.3),
		ratio("cold verification: jwx / ed25519.Verify", "Verify/naive-jwx", "Verify/ed25519", "", 0),
		ratio("cold verification: golang-jwt / ed25519.Verify", "Verify/naive-jwt", "Verify/ed25519", "", 0),
		paired("parallel throughput: callsign warm / bare, interleaved", "PairedParallel/tcp/callsign-warm-vs-bare", ">=", 0.9),
		paired("parallel throughput: callsign warm / naive jwx, interleaved", "PairedParallel/tcp/callsign-warm-vs-naive-jwx", ">=", 3),
		paired("parallel throughput: callsign warm / pass-through, interleaved", "PairedParallel/tcp/callsign-warm-vs-passthrough", "", 0),
		check{label: "parallel, CPU per call: bare / callsign warm, interleaved", num: "PairedParallel/tcp/callsign-warm-vs-bare", numUnit: "cpu-ratio", fraction: true},
		check{label: "parallel, CPU per call: naive jwx / callsign warm, interleaved", num: "PairedParallel/tcp/callsign-warm-vs-naive-jwx", numUnit: "cpu-ratio", fraction: true},
		throughput("parallel throughput: callsign warm / bare", "Parallel/callsign-warm", "Parallel/bare", ">=", 0.9),
		throughput("parallel throughput: callsign warm / naive jwx", "Parallel/callsign-warm", "Parallel/naive-jwx", ">=", 3),
		throughput("parallel throughput: callsign warm / naive golang-jwt", "Parallel/callsign-warm", "Parallel/naive-jwt", "", 0),
		throughput("parallel throughput: callsign warm / pass-through", "Parallel/callsign-warm", "Parallel/passthrough", "", 0),
		check{label: "p50 at 2,000/s: callsign warm / bare", num: "Load/2000rps/callsign-warm", numUnit: "p50-us", den: "Load/2000rps/bare", denUnit: "p50-us", fraction: true},
		check{label: "p99 at 2,000/s: callsign warm / bare", num: "Load/2000rps/callsign-warm", numUnit: "p99-us", den: "Load/2000rps/bare", denUnit: "p99-us", fraction: true},
		check{label: "p50 at 2,000/s: naive jwx / bare", num: "Load/2000rps/naive-jwx", numUnit: "p50-us", den: "Load/2000rps/bare", denUnit: "p50-us", fraction: true},
		absolute("client interceptor alone, static source (ns)", "Client/static", "ns/op", "<=", 1000),
		absolute("client interceptor alone, live source (ns)", "Client/live", "ns/op", "<=", 1000),
		absolute("client interceptor alone, live source (CPU ns)", "Client/live", "cpu-ns/op", "<=", 1000),
		absolute("client hot path: IssueToken calls", "Client/live", "IssueToken-calls", "==", 0),
		absolute("1,000 concurrent cold callers: IssueToken calls", "RefreshHerd", "IssueToken/herd", "==", 1),
		absolute("IssueToken private_key_jwt (tokens/s)", "IssueToken/private_key_jwt", "tokens/s", ">=", 5000),
		absolute("IssueToken private_key_jwt, 2 idle cores at the CPU per token (tokens/s)", "IssueToken/private_key_jwt", "tokens/s-2cores", ">=", 5000),
		absolute("IssueToken private_key_jwt, CPU per token, client included (ns)", "IssueToken/private_key_jwt", "cpu-ns/op", "", 0),
		absolute("IssueToken secret (tokens/s)", "IssueToken/secret", "tokens/s", "", 0),
		absolute("IssueToken secret, 2 idle cores at the CPU per token (tokens/s)", "IssueToken/secret", "tokens/s-2cores", "", 0),
		absolute("IssueToken private_key_jwt, memory store (tokens/s)", "IssueToken/private_key_jwt/memory-store", "tokens/s", "", 0),
		check{label: "IssueToken: secret / private_key_jwt (tokens/s)", num: "IssueToken/secret", numUnit: "tokens/s", den: "IssueToken/private_key_jwt", denUnit: "tokens/s", fraction: true},
		check{label: "IssueToken private_key_jwt: ns per token / raw sign+verify", num: "IssueToken/private_key_jwt", numUnit: "ns/op", den: "Verify/ed25519-sign+verify", denUnit: "ns/op", fraction: true},
		absolute("IssueToken private_key_jwt at 1,000/s: p99 (ms)", "IssueLoad/1000rps/private_key_jwt", "p99-ms", "<=", 10),
		absolute("IssueToken secret at 1,000/s: p99 (ms)", "IssueLoad/1000rps/secret", "p99-ms", "<=", 10),
		check{label: "heap after 10⁶ tokens / heap with the cache just full", num: "CacheMemory", numUnit: "heap-MB", den: "CacheMemory", denUnit: "full-MB", op: "<=", target: 1.05, fraction: true},
		absolute("heap after 10⁶ tokens (MB)", "CacheMemory", "heap-MB", "", 0),
		absolute("heap per cached token, the token included (bytes)", "CacheMemory", "B/entry", "", 0),
		check{label: "heap after 10⁶ tokens / documented bound (450 B + token per entry)", num: "CacheMemory", numUnit: "heap-MB", den: "CacheMemory", denUnit: "bound-MB", op: "<=", target: 1, fraction: true},
		absolute("token size (bytes)", "TokenSize/warm/issued", "token-B", "", 0),
		ratio("warm RPC: token without nbf / issued token", "TokenSize/warm/no-nbf", "TokenSize/warm/issued", "", 0),
		ratio("cold RPC: token without nbf / issued token", "TokenSize/cold/no-nbf", "TokenSize/cold/issued", "", 0),
	)
	return cs
}

// evaluate returns the per-round values of a check.
func (c check) evaluate(r results) []float64 {
	nums := r.values(c.num, c.numUnit)
	if c.den == "" {
		return mapValues(nums)
	}
	dens := r.values(c.den, c.denUnit)
	var out []float64
	for round, n := range nums {
		d, ok := dens[round]
		if !ok || d == 0 || n == 0 {
			continue
		}
		if c.inverse {
			out = append(out, d/n)
		} else {
			out = append(out, n/d)
		}
	}
	return out
}

func (c check) verdict(v float64) string {
	switch c.op {
	case "<=":
		return okText(v <= c.target)
	case ">=":
		return okText(v >= c.target)
	case "==":
		return okText(v == c.target)
	}
	return ""
}

func okText(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (c check) format(v float64) string {
	if c.fraction {
		return strconv.FormatFloat(v, 'f', 3, 64) + "×"
	}
	return formatNum(v)
}

func (c check) targetText() string {
	if c.op == "" {
		return ""
	}
	op := map[string]string{"<=": "≤", ">=": "≥", "==": "="}[c.op]
	t := formatNum(c.target)
	if c.fraction {
		t += "×"
	}
	return op + " " + t
}

// printChecks prints the ratio table: the median over the rounds (the
// target is judged on it) and the range.
func printChecks(w io.Writer, r results) {
	fmt.Fprintln(w, "\nRatios (each computed within one round; median [min – max] over the rounds)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "check\tmedian\trange\ttarget\t")
	for _, c := range checks() {
		vs := c.evaluate(r)
		if len(vs) == 0 {
			continue
		}
		s := summarize(vs)
		rng := ""
		if s.n > 1 {
			rng = "[" + c.format(s.lo) + " – " + c.format(s.hi) + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.label, c.format(s.med), rng, c.targetText(), c.verdict(s.med))
	}
	_ = tw.Flush()
}
