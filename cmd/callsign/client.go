package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// Defaults of the connection flags.
const (
	defaultAddr         = "127.0.0.1:7443" // callsignd's default --grpc-addr
	defaultAdminAccount = "callsign-admin" // the operator account of callsignd --dev
	defaultIssuer       = "callsign"       // callsignd's default issuer id
	defaultTimeout      = 10 * time.Second
	// adminAudience is the audience of callsignd's own services.
	adminAudience = "callsign"
	// assertionTTL is the lifetime of the client assertions the CLI signs.
	assertionTTL = 30 * time.Second
)

// connFlags are the flags of every command that talks to callsignd.
type connFlags struct {
	addr           string
	account        string
	key            string
	issuer         string
	ca             string
	useTLS         bool
	cert           string
	certKey        string
	allowPlaintext bool
	timeout        time.Duration
	keyFlag        bool // --key was given on the command line
}

func registerConnFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.addr, "addr", defaultAddr, "callsignd's gRPC address `host:port` (env CALLSIGN_ADDR)")
	fs.StringVar(&c.account, "account", defaultAdminAccount, "the `account` the CLI acts as: the operator account, or with token issue the account whose token is wanted (env CALLSIGN_ACCOUNT)")
	fs.StringVar(&c.key, "key", "", "private key `file` (Ed25519 JWK) of --account (env CALLSIGN_KEY)")
	fs.StringVar(&c.issuer, "issuer", defaultIssuer, "callsignd's issuer `id`, the audience of client assertions (env CALLSIGN_ISSUER)")
	fs.StringVar(&c.ca, "ca", "", "PEM CA bundle `file`: use TLS and verify callsignd's certificate against it (env CALLSIGN_CA)")
	fs.BoolVar(&c.useTLS, "tls", false, "use TLS, verifying callsignd's certificate against the system's roots")
	fs.StringVar(&c.cert, "cert", "", "PEM client certificate `file` for mTLS (with --cert-key)")
	fs.StringVar(&c.certKey, "cert-key", "", "PEM private key `file` of --cert")
	fs.BoolVar(&c.allowPlaintext, "allow-plaintext", false, "allow plaintext to a non-loopback address (only inside a mesh that provides mTLS)")
	fs.DurationVar(&c.timeout, "timeout", defaultTimeout, "give up after this `duration`")
	return c
}

// applyEnv fills the flags that were not given from the environment.
func (c *connFlags) applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c.keyFlag = set["key"]
	for name, env := range map[string]string{
		"addr":    "CALLSIGN_ADDR",
		"account": "CALLSIGN_ACCOUNT",
		"key":     "CALLSIGN_KEY",
		"issuer":  "CALLSIGN_ISSUER",
		"ca":      "CALLSIGN_CA",
	} {
		if set[name] {
			continue
		}
		if v := getenv(env); v != "" {
			if err := fs.Set(name, v); err != nil {
				return usagef("environment variable %s: %v", env, err)
			}
		}
	}
	return nil
}

func (c *connFlags) check() error {
	if _, _, err := net.SplitHostPort(c.addr); err != nil {
		return usagef("--addr %q is not host:port: pass callsignd's gRPC address, for example %s", c.addr, defaultAddr)
	}
	if (c.cert == "") != (c.certKey == "") {
		return usagef("--cert and --cert-key go together: pass both for mTLS, or neither")
	}
	if !c.secure() && !c.allowPlaintext && !isLoopback(c.addr) {
		return usagef("--addr %s is not a loopback address and TLS is off: pass --ca FILE (or --tls) to use TLS, or --allow-plaintext inside a mesh that provides mTLS", c.addr)
	}
	if c.timeout <= 0 {
		return usagef("--timeout must be positive, for example 10s")
	}
	return nil
}

func (c *connFlags) secure() bool { return c.useTLS || c.ca != "" || c.cert != "" }

// isLoopback reports whether addr names "localhost" or a loopback IP.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// client is a lazily opened connection to callsignd.
type client struct {
	flags *connFlags
	env   *env
	conn  *grpc.ClientConn
}

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

func (c *client) dial() (*grpc.ClientConn, error) {
	if c.conn != nil {
		return c.conn, nil
	}
	var tc credentials.TransportCredentials
	if c.flags.secure() {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.flags.ca != "" {
			pem, err := os.ReadFile(c.flags.ca)
			if err != nil {
				return nil, fmt.Errorf("read --ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca %s holds no PEM certificate: pass the PEM bundle of the CA that signed callsignd's certificate", c.flags.ca)
			}
			cfg.RootCAs = pool
		}
		if c.flags.cert != "" {
			cert, err := tls.LoadX509KeyPair(c.flags.cert, c.flags.certKey)
			if err != nil {
				return nil, fmt.Errorf("load --cert and --cert-key: %w (both must be PEM, and the key must match the certificate)", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tc = credentials.NewTLS(cfg)
	} else {
		tc = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(c.flags.addr, grpc.WithTransportCredentials(tc))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", c.flags.addr, err)
	}
	c.conn = conn
	return conn, nil
}

func (c *client) auth() (callsignv1.AuthServiceClient, error) {
	conn, err := c.dial()
	if err != nil {
		return nil, err
	}
	return callsignv1.NewAuthServiceClient(conn), nil
}

// admin returns an AdminService client and a context carrying a fresh admin
// token (scope callsign.admin).
func (c *client) admin(ctx context.Context) (context.Context, callsignv1.AdminServiceClient, error) {
	ctx, err := c.withToken(ctx, "callsign.admin")
	if err != nil {
		return nil, nil, err
	}
	return ctx, callsignv1.NewAdminServiceClient(c.conn), nil
}

// withToken obtains a service token for audience "callsign" with scope for the
// admin account and puts it on the outgoing context.
func (c *client) withToken(ctx context.Context, scope string) (context.Context, error) {
	if c.flags.key == "" {
		return nil, usagef("no admin credential: pass --key FILE (or set CALLSIGN_KEY) with the private key of --account %s; callsignd --dev writes it to <data-dir>/credentials/%s.jwk", c.flags.account, defaultAdminAccount)
	}
	key, err := loadAccountKey(c.flags.key)
	if err != nil {
		return nil, err
	}
	ac, err := c.auth()
	if err != nil {
		return nil, err
	}
	assertion, err := token.SignAssertion(key.priv, key.kid, c.flags.account, c.flags.issuer, time.Now(), assertionTTL)
	if err != nil {
		return nil, fmt.Errorf("sign the client assertion: %w", err)
	}
	resp, err := ac.IssueToken(ctx, &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: assertion},
		Audience:   adminAudience,
		Scopes:     []string{scope},
	})
	if err != nil {
		return nil, c.explainIssue(err, c.flags.account, adminAudience, scope, true)
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+resp.GetToken()), nil
}

// reasonOf returns the callsign reason of a status error ("" when none).
func reasonOf(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == "callsign.dev" {
			return info.GetReason()
		}
	}
	return ""
}

// describe renders a status error as "Code REASON: message".
func describe(err error) string {
	st, _ := status.FromError(err)
	s := st.Code().String()
	if r := reasonOf(err); r != "" {
		s += " " + r
	}
	return s + ": " + st.Message()
}

// explainIssue turns an IssueToken failure into an error that says what to do.
func (c *client) explainIssue(err error, account, audience, scope string, admin bool) error {
	if e := c.explainConn(err); e != nil {
		return e
	}
	who := "account " + account
	switch reasonOf(err) {
	case "CREDENTIAL_INVALID":
		return fmt.Errorf("callsignd refused the credential of %s (%s): check that the account exists and is enabled, that the key is registered for it (callsign accounts show %s), and that --issuer matches callsignd's issuer id", who, describe(err), account)
	case "AUDIENCE_NOT_GRANTED", "SCOPE_NOT_GRANTED":
		if admin {
			return fmt.Errorf("%s may not administer callsign (%s): an operator must grant it audience %s with scope %s (callsign grants set %s %s --scopes callsign.admin,callsign.verify)", who, describe(err), adminAudience, scope, account, adminAudience)
		}
		return fmt.Errorf("%s has no grant for audience %s with the scopes asked for (%s): see its grants with 'callsign accounts show %s'; set them with 'callsign grants set'", who, audience, describe(err), account)
	case "USER_ASSERTION_DENIED", "TENANT_NOT_ALLOWED":
		return fmt.Errorf("%s may not assert this user (%s): see 'callsign user-assertion set --help'", who, describe(err))
	case "LIFETIME_TOO_LONG":
		return fmt.Errorf("the requested lifetime is above callsignd's maximum (%s): ask for less with --lifetime", describe(err))
	}
	return c.explain(err)
}

// explainConn explains failures to reach callsignd at all; nil for others.
func (c *client) explainConn(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("callsignd at %s did not answer within %s: is it running there? pass --addr (or CALLSIGN_ADDR), or a longer --timeout", c.flags.addr, c.flags.timeout)
	}
	if status.Code(err) == codes.Unavailable && reasonOf(err) == "" {
		st, _ := status.FromError(err)
		return fmt.Errorf("cannot reach callsignd at %s (%s): start it (callsignd --dev for development) or pass its address with --addr (or CALLSIGN_ADDR); with TLS pass --ca or --tls", c.flags.addr, st.Message())
	}
	return nil
}

// explain turns the failure of an AdminService or AuthService call into an
// error that says what to do.
func (c *client) explain(err error) error {
	if e := c.explainConn(err); e != nil {
		return e
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("not found (%s): list what exists with 'callsign accounts list' or 'callsign accounts show ACCOUNT'", st.Message())
	case codes.AlreadyExists:
		return fmt.Errorf("already exists (%s): see it with 'callsign accounts show'", st.Message())
	case codes.InvalidArgument:
		return fmt.Errorf("callsignd refused the request as invalid (%s): check the arguments against the limits in --help", describe(err))
	case codes.Unauthenticated:
		return fmt.Errorf("callsignd refused the admin token (%s): check --account, --key and --issuer", describe(err))
	case codes.PermissionDenied:
		return fmt.Errorf("permission denied (%s): the admin account needs scope callsign.admin for audience callsign", describe(err))
	case codes.FailedPrecondition:
		return fmt.Errorf("callsignd refused (%s): a limit is reached; for keys or secrets of an account, remove old ones first (callsign accounts show ACCOUNT); for signing keys, wait until retired keys are removed (callsign signing-keys list shows when)", st.Message())
	}
	return fmt.Errorf("callsignd: %s", describe(err))
}
