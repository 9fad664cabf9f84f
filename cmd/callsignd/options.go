package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Default listen addresses: loopback only, so that a server started without
// flags is never reachable from the network by accident.
const (
	defaultGRPCAddr   = "127.0.0.1:7443"
	defaultHTTPAddr   = "127.0.0.1:7080"
	defaultDevDataDir = ".callsign-dev"
	// envPrefix prefixes the environment variable of every flag:
	// --grpc-addr is also read from CALLSIGN_GRPC_ADDR.
	envPrefix = "CALLSIGN_"
	// envKEK holds the key-encryption key itself (base64), as an alternative
	// to --kek-file.
	envKEK = "CALLSIGN_KEK"
	// defaultShutdownTimeout bounds a graceful shutdown before open calls are
	// cut off.
	defaultShutdownTimeout = 10 * time.Second
)

// errUsage marks a command-line error: the process exits with status 2.
var errUsage = errors.New("usage")

// usageError is a command-line error with a message that says what to do.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// options are the settings of one callsignd process, from flags and the
// environment. Durations left at zero take their value from the configuration
// file or its defaults.
type options struct {
	dev        bool
	configPath string
	dataDir    string
	grpcAddr   string
	httpAddr   string
	readyFile  string

	kekFile string
	kekEnv  string // the value of CALLSIGN_KEK; never logged

	tlsCert        string
	tlsKey         string
	tlsClientCA    string
	allowPlaintext bool

	logLevel     slog.Level
	logFormat    string
	auditAllowed bool

	issuer           string
	tokenLifetime    time.Duration
	maxTokenLifetime time.Duration
	rotationPeriod   time.Duration
	publishLead      time.Duration
	refreshHint      time.Duration

	shutdownTimeout time.Duration
}

// tlsEnabled reports whether the gRPC and HTTP listeners serve TLS.
func (o *options) tlsEnabled() bool { return o.tlsCert != "" }

// parseOptions reads args (without the program name) and the environment
// through getenv. Every flag --x-y may also be set as CALLSIGN_X_Y; a flag on
// the command line wins. Errors wrap [errUsage] and say what to do next.
func parseOptions(args []string, getenv func(string) string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("callsignd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printUsage(fs, stderr) }

	fs.BoolVar(&o.dev, "dev", false, "development mode: zero set-up, local SQLite file, generated key-encryption key, example accounts, loopback only")
	fs.StringVar(&o.configPath, "config", "", "YAML configuration file, applied at start-up (idempotent)")
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for the SQLite database (and, with --dev, the generated key-encryption key and credentials); default "+defaultDevDataDir+" with --dev, required otherwise")
	fs.StringVar(&o.grpcAddr, "grpc-addr", defaultGRPCAddr, "gRPC listen address; port 0 picks a free port")
	fs.StringVar(&o.httpAddr, "http-addr", defaultHTTPAddr, "HTTP listen address (JWKS, health, metrics); port 0 picks a free port")
	fs.StringVar(&o.readyFile, "ready-file", "", "once serving, write the bound addresses to this file as JSON")
	fs.StringVar(&o.kekFile, "kek-file", "", "file holding the key-encryption key that protects signing keys at rest (or set "+envKEK+")")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate chain: serve gRPC and HTTP over TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "PEM CA bundle: require and verify client certificates on gRPC (mTLS)")
	fs.BoolVar(&o.allowPlaintext, "allow-plaintext", false, "allow gRPC without TLS on a non-loopback address (only behind a mesh that provides mTLS)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&o.auditAllowed, "audit-allowed", false, "log an audit record for every allowed call to AdminService and Verify too (denials are always logged)")
	fs.StringVar(&o.issuer, "issuer", "", "issuer id of this deployment (overrides the configuration file)")
	fs.DurationVar(&o.tokenLifetime, "token-lifetime", 0, "default service token lifetime (overrides the configuration file)")
	fs.DurationVar(&o.maxTokenLifetime, "max-token-lifetime", 0, "maximum token lifetime (overrides the configuration file)")
	fs.DurationVar(&o.rotationPeriod, "rotation-period", 0, "signing key rotation period (overrides the configuration file)")
	fs.DurationVar(&o.publishLead, "publish-lead", 0, "how long the next signing key is published before it signs (overrides the configuration file)")
	fs.DurationVar(&o.refreshHint, "refresh-hint", 0, "key refresh interval suggested to verifiers (overrides the configuration file)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long a graceful shutdown waits for open calls before cutting them off")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag package has already printed the error and the usage.
		return nil, &usageError{msg: err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q: callsignd takes flags only (see callsignd -help)", fs.Arg(0))
	}

	// The environment fills in every flag that is not on the command line.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || envErr != nil {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = usagef("environment variable %s: %v", name, err)
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	o.kekEnv = getenv(envKEK)

	lvl, err := parseLevel(*logLevel)
	if err != nil {
		return nil, err
	}
	o.logLevel = lvl
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

// envName is the environment variable of a flag: CALLSIGN_ and the flag name
// in upper case with dashes as underscores.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, usagef("--log-level %q is not a level: use debug, info, warn or error", s)
	}
}

// validate checks the options against each other.
func (o *options) validate() error {
	switch o.logFormat {
	case "text", "json":
	default:
		return usagef("--log-format %q is not a format: use text or json", o.logFormat)
	}
	if err := checkAddr("--grpc-addr", o.grpcAddr); err != nil {
		return err
	}
	if err := checkAddr("--http-addr", o.httpAddr); err != nil {
		return err
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usagef("--tls-cert and --tls-key go together: pass both to serve TLS, or neither")
	}
	if o.tlsClientCA != "" && o.tlsCert == "" {
		return usagef("--tls-client-ca needs --tls-cert and --tls-key: mTLS is TLS with client certificates")
	}
	if o.kekFile != "" && o.kekEnv != "" {
		return usagef("both --kek-file and %s are set: pass the key-encryption key one way only", envKEK)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--token-lifetime", o.tokenLifetime},
		{"--max-token-lifetime", o.maxTokenLifetime},
		{"--rotation-period", o.rotationPeriod},
		{"--publish-lead", o.publishLead},
		{"--refresh-hint", o.refreshHint},
		{"--shutdown-timeout", o.shutdownTimeout},
	} {
		if d.v < 0 {
			return usagef("%s %v is negative: pass a positive duration such as 30s or 5m", d.name, d.v)
		}
	}

	if o.dev {
		if o.dataDir == "" {
			o.dataDir = defaultDevDataDir
		}
		for _, a := range []struct{ name, addr string }{{"--grpc-addr", o.grpcAddr}, {"--http-addr", o.httpAddr}} {
			if !isLoopback(a.addr) {
				return usagef("%s %q is not a loopback address: --dev listens on loopback only; use 127.0.0.1:PORT (port 0 picks a free port), or run without --dev", a.name, a.addr)
			}
		}
		return nil
	}

	if o.dataDir == "" {
		return usagef("--data-dir is required: it holds the SQLite database (callsign.db); or run callsignd --dev for a local development server")
	}
	if o.kekFile == "" && o.kekEnv == "" {
		return usagef("no key-encryption key: pass --kek-file FILE or set %s (32 random bytes, base64); callsignd --dev generates one for development", envKEK)
	}
	if !o.tlsEnabled() && !o.allowPlaintext && !isLoopback(o.grpcAddr) {
		return usagef("--grpc-addr %q is not a loopback address and TLS is off: pass --tls-cert and --tls-key, or --allow-plaintext when a mesh provides mTLS", o.grpcAddr)
	}
	return nil
}

// checkAddr checks that addr is host:port with a numeric port. An empty host
// listens on every interface.
func checkAddr(name, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("%s %q is not host:port: use for example 127.0.0.1:7443 (port 0 picks a free port)", name, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return usagef("%s %q has no valid port: use a number from 0 to 65535", name, addr)
	}
	return nil
}

// isLoopback reports whether addr listens on loopback only: "localhost" or a
// loopback IP. An empty host (all interfaces) is not loopback.
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

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprint(w, `Usage: callsignd [flags]

callsignd issues short-lived signed service tokens to registered service
accounts and publishes the keys to verify them.

  callsignd --dev                     a local development server, zero set-up
  callsignd --data-dir DIR --kek-file FILE --config callsign.yaml --tls-cert CERT --tls-key KEY

Every flag --x-y may also be set in the environment as CALLSIGN_X_Y; the
key-encryption key itself may be passed base64-encoded in CALLSIGN_KEK.

Flags:
`)
	fs.PrintDefaults()
}
