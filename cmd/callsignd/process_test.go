package main

// Process-level tests: they build the callsignd binary once, start it as a
// real process with --dev on loopback port 0, and find its ports through the
// ready file.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// Bounds of the process tests.
const (
	startTimeout = 20 * time.Second // the race detector and a shared machine are slow
	stopTimeout  = 20 * time.Second
	rpcTimeout   = 10 * time.Second
)

var (
	binOnce  sync.Once
	binPath  string
	errBuild error
	binDir   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// callsignd returns the path of the callsignd binary, built once per test run.
func callsignd(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
		}
		binDir, errBuild = os.MkdirTemp("", "callsignd-test-")
		if errBuild != nil {
			return
		}
		binPath = filepath.Join(binDir, "callsignd")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		args := []string{"build", "-o", binPath}
		if os.Getenv("GOCOVERDIR") != "" {
			// Coverage of the processes: they write it into GOCOVERDIR
			// (go tool covdata percent -i DIR).
			args = append(args, "-cover")
		}
		out, err := exec.CommandContext(ctx, goBin, append(args, ".")...).CombinedOutput()
		if err != nil {
			errBuild = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if errBuild != nil {
		tb.Fatal(errBuild)
	}
	return binPath
}

// syncBuffer collects a process's output for inspection while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is one running callsignd.
type proc struct {
	cmd       *exec.Cmd
	dataDir   string
	readyFile string
	info      readyInfo
	stderr    *syncBuffer
	done      chan struct{}
	waitErr   error
}

// startDev starts callsignd --dev on dataDir with free loopback ports and
// waits until it has written its ready file. It is stopped (killed) when the
// test ends if it still runs.
func startDev(tb testing.TB, dataDir string, args ...string) *proc {
	tb.Helper()
	p := launch(tb, dataDir, args...)
	if err := p.waitReady(startTimeout); err != nil {
		tb.Fatalf("callsignd did not become ready: %v\n%s", err, p.stderr.String())
	}
	return p
}

// launch starts callsignd --dev without waiting.
func launch(tb testing.TB, dataDir string, args ...string) *proc {
	tb.Helper()
	return launchEnv(tb, dataDir, nil, append([]string{"--dev"}, args...)...)
}

// launchEnv starts callsignd with args and extra environment variables,
// without --dev unless args have it, on dataDir and free loopback ports.
func launchEnv(tb testing.TB, dataDir string, env []string, args ...string) *proc {
	tb.Helper()
	bin := callsignd(tb)
	readyFile := filepath.Join(tb.TempDir(), "ready.json")
	all := append([]string{
		"--data-dir", dataDir,
		"--grpc-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0",
		"--ready-file", readyFile,
		"--log-format", "json",
	}, args...)
	p := &proc{dataDir: dataDir, readyFile: readyFile, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, all...)
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start callsignd: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// cleanEnv is the test's environment without CALLSIGN_ variables, so that
// nothing from the developer's shell changes the process under test.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls the ready file until it names this process.
func (p *proc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(p.readyFile)
		if err == nil {
			var info readyInfo
			if err := json.Unmarshal(data, &info); err != nil {
				return fmt.Errorf("ready file: %w", err)
			}
			if info.PID == p.cmd.Process.Pid {
				p.info = info
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %w", p.waitErr)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// signal sends sig and waits for the process to exit; it returns the exit code.
func (p *proc) stop(tb testing.TB, sig os.Signal) int {
	tb.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		tb.Fatalf("signal: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		tb.Fatalf("callsignd did not exit within %s after %v\n%s", stopTimeout, sig, p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// conn dials the process's gRPC listener.
func (p *proc) conn(tb testing.TB) *grpc.ClientConn {
	tb.Helper()
	cc, err := grpc.NewClient(p.info.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// httpGet fetches path from the process's HTTP listener.
func (p *proc) httpGet(tb testing.TB, path string) (int, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.info.HTTPAddr+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, body
}

// credential reads the private key of a dev account from credentials/.
func (p *proc) credential(tb testing.TB, account string) (ed25519.PrivateKey, string) {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(p.dataDir, credentialsDir, account+".jwk"))
	if err != nil {
		tb.Fatal(err)
	}
	priv, err := parsePrivateJWK(data)
	if err != nil {
		tb.Fatal(err)
	}
	var j privateJWK
	_ = json.Unmarshal(data, &j)
	return priv, j.Kid
}

// issue obtains a service token for account and audience with private_key_jwt.
func (p *proc) issue(ctx context.Context, tb testing.TB, client callsignv1.AuthServiceClient, account, audience string) (*callsignv1.IssueTokenResponse, error) {
	tb.Helper()
	return p.issuer(tb, account)(ctx, client, audience)
}

// issueFunc obtains a service token for one account; it is safe to call from
// any goroutine.
type issueFunc func(ctx context.Context, client callsignv1.AuthServiceClient, audience string) (*callsignv1.IssueTokenResponse, error)

// issuer returns an issueFunc for a dev account, its key read once.
func (p *proc) issuer(tb testing.TB, account string) issueFunc {
	tb.Helper()
	priv, kid := p.credential(tb, account)
	iss := p.info.Issuer
	return func(ctx context.Context, client callsignv1.AuthServiceClient, audience string) (*callsignv1.IssueTokenResponse, error) {
		assertion, err := token.SignAssertion(priv, kid, account, iss, time.Now(), 30*time.Second)
		if err != nil {
			return nil, err
		}
		return client.IssueToken(ctx, &callsignv1.IssueTokenRequest{
			Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: assertion},
			Audience:   audience,
		})
	}
}

// withToken returns ctx with "authorization: Bearer tok".
func withToken(ctx context.Context, tok string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
}

// adminContext returns ctx with a callsign-admin token attached.
func (p *proc) adminContext(ctx context.Context, tb testing.TB, client callsignv1.AuthServiceClient) context.Context {
	tb.Helper()
	resp, err := p.issue(ctx, tb, client, adminAccountID, "callsign")
	if err != nil {
		tb.Fatalf("issue an admin token: %v", err)
	}
	return withToken(ctx, resp.GetToken())
}

// jwks fetches /.well-known/jwks.json and parses it strictly.
func (p *proc) jwks(tb testing.TB) *token.KeySet {
	tb.Helper()
	code, body := p.httpGet(tb, "/.well-known/jwks.json")
	if code != http.StatusOK {
		tb.Fatalf("GET /.well-known/jwks.json = %d", code)
	}
	ks, err := token.ParseJWKS(body, token.EdDSA)
	if err != nil {
		tb.Fatalf("parse the JWKS: %v", err)
	}
	return ks
}

// waitLog reports whether the process's output contains s, waiting a little
// for output still in the pipe.
func (p *proc) waitLog(s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// assertLogsClean stops the process (SIGTERM) if it still runs, so that all
// of its output is in, and fails when that output contains any of secrets.
func (p *proc) assertLogsClean(tb testing.TB, secrets ...string) {
	tb.Helper()
	select {
	case <-p.done:
	default:
		if code := p.stop(tb, syscall.SIGTERM); code != 0 {
			tb.Errorf("exit code %d after SIGTERM", code)
		}
	}
	out := p.stderr.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(out, s) {
			tb.Errorf("callsignd's log contains a credential (%d bytes)", len(s))
			return
		}
	}
}

// portClosed reports whether nothing accepts connections on addr any more.
func portClosed(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	_ = c.Close()
	return false
}

func rpcContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	tb.Cleanup(cancel)
	return ctx
}
