package demo

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
)

// errExited stands for the exit of a process that reported no error.
var errExited = errors.New("exit status 0")

// proc is one process the demo started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error // set when done is closed
}

// audit is one audit line with the process that wrote it.
type audit struct {
	kit.AuditLine
	seq int
}

// procs starts processes, collects their audit lines and stops them all.
type procs struct {
	dir string

	mu     sync.Mutex
	list   []*proc
	audits []audit
	wake   chan struct{}
}

func newProcs(dir string) *procs {
	return &procs{dir: dir, wake: make(chan struct{})}
}

// start runs bin with args; its standard output and error go to
// <dir>/<name>.log, and JSON audit lines on standard output are collected.
func (p *procs) start(name, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...) //nolint:gosec,noctx // binaries the demo built; stopped by stopAll, not by a context
	setParentDeathSignal(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	p.mu.Lock()
	p.list = append(p.list, pr)
	p.mu.Unlock()
	var readers sync.WaitGroup
	readers.Go(func() { p.readOutput(stdout, logf) })
	go func() {
		readers.Wait()
		pr.err = cmd.Wait()
		_ = logf.Close()
		close(pr.done)
	}()
	return pr, nil
}

func (p *procs) readOutput(r io.Reader, logf io.Writer) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = fmt.Fprintf(logf, "%s\n", line)
		var a kit.AuditLine
		if len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &a) == nil && a.Audit != "" {
			p.mu.Lock()
			p.audits = append(p.audits, audit{AuditLine: a, seq: len(p.audits)})
			close(p.wake)
			p.wake = make(chan struct{})
			p.mu.Unlock()
		}
	}
}

// mark returns the number of audit lines seen so far.
func (p *procs) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.audits)
}

// waitAudits waits until lines after mark satisfy every expectation (each by
// a different line), or until timeout; it returns the lines after mark and the
// expectations not met.
func (p *procs) waitAudits(ctx context.Context, mark int, timeout time.Duration, want ...expect) ([]audit, []expect) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		lines := append([]audit(nil), p.audits[mark:]...)
		wake := p.wake
		p.mu.Unlock()
		missing := unmatched(lines, want)
		if len(missing) == 0 {
			return lines, nil
		}
		select {
		case <-wake:
		case <-deadline.C:
			return lines, missing
		case <-ctx.Done():
			return lines, missing
		}
	}
}

// stopAll asks every process to stop (SIGTERM, newest first), and kills
// those still running after grace.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	list := append([]*proc(nil), p.list...)
	p.mu.Unlock()
	for _, pr := range slices.Backward(list) {
		select {
		case <-pr.done:
			continue
		default:
		}
		_ = pr.cmd.Process.Signal(syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, pr := range list {
		select {
		case <-pr.done:
		case <-deadline:
			_ = pr.cmd.Process.Kill()
			<-pr.done
		}
	}
}

// exited reports a process that ended early, if any.
func (p *procs) exited() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pr := range p.list {
		select {
		case <-pr.done:
			return fmt.Errorf("%s exited early (see %s): %w", pr.name, filepath.Join(p.dir, pr.name+".log"), cmp.Or(pr.err, errExited))
		default:
		}
	}
	return nil
}

// tail returns the last lines of a process's log.
func (p *procs) tail(name string, n int) string {
	b, err := os.ReadFile(filepath.Join(p.dir, name+".log"))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFile waits for a JSON file written by a process once it is ready.
func waitFile(ctx context.Context, path string, pr *proc, timeout time.Duration, v any) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(path)
		if err == nil && json.Unmarshal(b, v) == nil {
			return nil
		}
		select {
		case <-pr.done:
			return fmt.Errorf("%s exited before it was ready: %w", pr.name, cmp.Or(pr.err, errExited))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.New(pr.name + " was not ready in time")
		}
	}
}
