// Package kit is what the shop's services share: flags, the service account's
// key, the connection to callsignd, callsign's interceptors on both sides, an
// audit sink that writes one JSON line per decision, and a ready file.
//
// It is example code: each service's main shows the callsign calls that
// matter, and kit keeps the plumbing out of the way.
package kit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
	"github.com/callsign-dev/callsign/internal/token"
)

// Flags are the flags every shop service takes.
type Flags struct {
	Account      string        // the service account the process runs as
	CallsignAddr string        // callsignd's gRPC address
	Issuer       string        // callsignd's issuer id
	KeyFile      string        // the account's private JWK
	Listen       string        // where to serve (servers only)
	ReadyFile    string        // written once serving: {"addr": ..., "pid": ...}
	Skew         time.Duration // the clock skew the server side allows
}

// Register adds the common flags to fs. account is the default service account.
func (f *Flags) Register(fs *flag.FlagSet, account string) {
	fs.StringVar(&f.Account, "account", account, "the service account this process runs as")
	fs.StringVar(&f.CallsignAddr, "callsign", "127.0.0.1:7443", "callsignd's gRPC address")
	fs.StringVar(&f.Issuer, "issuer", "callsign", "callsignd's issuer id")
	fs.StringVar(&f.KeyFile, "key", "", "the account's private key (JWK file); default .callsign-dev/credentials/<account>.jwk")
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:0", "listen address (port 0 picks a free port)")
	fs.StringVar(&f.ReadyFile, "ready-file", "", "once serving, write the bound address to this file as JSON")
	fs.DurationVar(&f.Skew, "skew", interceptor.DefaultSkew, "clock skew allowed when checking token times")
}

// Service is a running shop service's callsign plumbing.
type Service struct {
	Flags  Flags
	Log    *slog.Logger
	Tokens interceptor.TokenSource

	key       ed25519.PrivateKey
	kid       string
	authConn  *grpc.ClientConn
	closers   []func()
	auditOut  io.Writer
	auditLock sync.Mutex
}

// Start loads the key, connects to callsignd and starts the token source.
// Servers call [Service.StartKeys] too.
func Start(ctx context.Context, f Flags) (*Service, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("service", f.Account)
	if f.KeyFile == "" {
		f.KeyFile = filepath.Join(".callsign-dev", "credentials", f.Account+".jwk")
	}
	key, kid, err := LoadKey(f.KeyFile)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(f.CallsignAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to callsignd at %s: %w", f.CallsignAddr, err)
	}
	s := &Service{Flags: f, Log: log, key: key, kid: kid, authConn: conn, auditOut: os.Stdout}
	s.closers = append(s.closers, func() { _ = conn.Close() })
	ts, err := interceptor.NewTokenSource(callsignv1.NewAuthServiceClient(conn),
		interceptor.PrivateKeyJWT(f.Account, key, kid, f.Issuer),
		interceptor.WithTokenSourceLogger(log))
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Tokens = ts
	s.closers = append(s.closers, func() { _ = ts.Close() })
	return s, nil
}

// AuthClient is the AuthService client of callsignd.
func (s *Service) AuthClient() callsignv1.AuthServiceClient {
	return callsignv1.NewAuthServiceClient(s.authConn)
}

// Close stops everything Start and StartKeys started.
func (s *Service) Close() {
	for _, c := range slices.Backward(s.closers) {
		c()
	}
	s.closers = nil
}

// Dial opens a connection to another shop service with callsign's client
// interceptors: each call gets a token for the target's audience (read from
// its callsign.v1.service option) and carries the user token, correlation id
// and trace context of the handler it is made from.
func (s *Service) Dial(target string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()), // loopback demo; use TLS or a mesh in production
		grpc.WithUnaryInterceptor(interceptor.UnaryClientInterceptor(s.Tokens)),
		grpc.WithStreamInterceptor(interceptor.StreamClientInterceptor(s.Tokens)),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", target, err)
	}
	s.closers = append(s.closers, func() { _ = conn.Close() })
	return conn, nil
}

// LoadKey reads an Ed25519 private JWK (the format of callsignd --dev's
// credentials and of 'callsign keys keygen'). The kid is the JWK's kid, else
// its RFC 7638 thumbprint.
func LoadKey(path string) (ed25519.PrivateKey, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read the service account's key: %w (callsignd --dev writes it to <data-dir>/credentials/<account>.jwk; pass --key)", err)
	}
	key, kid, err := token.ParseAccountKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return key, kid, nil
}

// AuditLine is the JSON line the shop's audit sink writes to standard output
// for every decision of a server interceptor. The demo reads these lines.
type AuditLine struct {
	Audit         string `json:"audit"` // the service that decided
	Decision      string `json:"decision"`
	Code          string `json:"code"`
	Reason        string `json:"reason,omitempty"`
	Cause         string `json:"cause,omitempty"`
	Method        string `json:"method"`
	Stream        bool   `json:"stream,omitempty"`
	Caller        string `json:"caller,omitempty"`
	User          string `json:"user,omitempty"`
	Tenant        string `json:"tenant,omitempty"`
	TokenID       string `json:"jti,omitempty"`
	TokenHash     string `json:"token_hash,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	Time          string `json:"time"`
}

// String renders the line as the demo prints it.
func (a AuditLine) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", a.Decision, a.Method)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	kv("code", a.Code)
	kv("reason", a.Reason)
	kv("cause", a.Cause)
	kv("caller", a.Caller)
	kv("user", a.User)
	kv("tenant", a.Tenant)
	kv("jti", a.TokenID)
	kv("token_hash", a.TokenHash)
	kv("correlation_id", a.CorrelationID)
	return b.String()
}

func reasonName(r callsignv1.Reason) string {
	if r == callsignv1.Reason_REASON_UNSPECIFIED {
		return ""
	}
	return interceptor.ReasonName(r)
}

// Audit implements interceptor.AuditSink: one JSON line per decision.
func (s *Service) Audit(_ context.Context, rec interceptor.AuditRecord) {
	line := AuditLine{
		Audit: s.Flags.Account, Decision: rec.Decision.String(), Code: rec.Code.String(),
		Reason: reasonName(rec.Reason), Cause: reasonName(rec.Cause), Method: rec.Method, Stream: rec.Stream,
		Caller: rec.Caller, User: rec.User, Tenant: rec.Tenant, TokenID: rec.TokenID, TokenHash: rec.TokenHash,
		CorrelationID: rec.CorrelationID, RequestID: rec.RequestID, Time: rec.Time.UTC().Format(time.RFC3339Nano),
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	s.auditLock.Lock()
	defer s.auditLock.Unlock()
	_, _ = s.auditOut.Write(append(b, '\n'))
}

// Ready is the content of a ready file.
type Ready struct {
	Addr string `json:"addr"`
	PID  int    `json:"pid"`
}

// WriteReady writes the ready file atomically, if one was asked for.
func (s *Service) WriteReady(addr string) error {
	if s.Flags.ReadyFile == "" {
		return nil
	}
	b, _ := json.Marshal(Ready{Addr: addr, PID: os.Getpid()})
	tmp := s.Flags.ReadyFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.Flags.ReadyFile)
}

// Listen opens the listener of --listen.
func (s *Service) Listen(ctx context.Context) (net.Listener, error) {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", s.Flags.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.Flags.Listen, err)
	}
	return ln, nil
}

// ErrUnprotected is returned when a gRPC server has methods without a
// callsign rule: the service refuses to start.
var ErrUnprotected = errors.New("methods without a callsign rule")

// UserTokens returns a source of user-context tokens for the edge: the
// account must be allowed to assert users of their tenants.
func (s *Service) UserTokens() (*interceptor.UserTokenSource, error) {
	u, err := interceptor.NewUserTokenSource(s.AuthClient(), interceptor.PrivateKeyJWT(s.Flags.Account, s.key, s.kid, s.Flags.Issuer))
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { _ = u.Close() })
	return u, nil
}
