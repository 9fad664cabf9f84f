package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseOptionsDev(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseOptions([]string{"--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "[::1]:0", "--token-lifetime", "20s"}, env(nil), &stderr)
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}
	if !o.dev || o.dataDir != defaultDevDataDir || o.grpcAddr != "127.0.0.1:0" || o.httpAddr != "[::1]:0" {
		t.Errorf("options = %+v", o)
	}
	if o.tokenLifetime != 20*time.Second {
		t.Errorf("tokenLifetime = %v, want 20s", o.tokenLifetime)
	}
	if o.logLevel != slog.LevelInfo || o.logFormat != "text" {
		t.Errorf("log defaults = %v %q", o.logLevel, o.logFormat)
	}
}

func TestParseOptionsEnvironment(t *testing.T) {
	e := env(map[string]string{
		"CALLSIGN_DATA_DIR":   "/var/lib/callsign",
		"CALLSIGN_GRPC_ADDR":  "127.0.0.1:9000",
		"CALLSIGN_LOG_FORMAT": "json",
		"CALLSIGN_LOG_LEVEL":  "debug",
		"CALLSIGN_KEK":        "c2VjcmV0",
	})
	o, err := parseOptions([]string{"--grpc-addr", "127.0.0.1:9001"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}
	if o.grpcAddr != "127.0.0.1:9001" {
		t.Errorf("grpcAddr = %q: the command line must win over the environment", o.grpcAddr)
	}
	if o.dataDir != "/var/lib/callsign" || o.logFormat != "json" || o.logLevel != slog.LevelDebug || o.kekEnv != "c2VjcmV0" {
		t.Errorf("options from the environment = %+v", o)
	}
}

func TestParseOptionsHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseOptions([]string{"-help"}, env(nil), &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, want := range []string{"Usage: callsignd", "-dev", "-grpc-addr", "CALLSIGN_KEK"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestParseOptionsErrors(t *testing.T) {
	prod := []string{"--data-dir", "/var/lib/callsign", "--kek-file", "/etc/callsign/kek"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // a part of the message that says what to do
	}{
		{"unknown flag", []string{"--bogus"}, nil, "flag provided but not defined"},
		{"positional argument", []string{"--dev", "serve"}, nil, "takes flags only"},
		{"dev on all interfaces", []string{"--dev", "--grpc-addr", ":7443"}, nil, "--dev listens on loopback only"},
		{"dev on a public address", []string{"--dev", "--http-addr", "10.1.2.3:80"}, nil, "--http-addr \"10.1.2.3:80\" is not a loopback address"},
		{"dev on a host name", []string{"--dev", "--grpc-addr", "example.com:1"}, nil, "loopback only"},
		{"address without port", []string{"--dev", "--grpc-addr", "127.0.0.1"}, nil, "is not host:port"},
		{"port out of range", []string{"--dev", "--grpc-addr", "127.0.0.1:70000"}, nil, "no valid port"},
		{"bad log level", []string{"--dev", "--log-level", "loud"}, nil, "use debug, info, warn or error"},
		{"bad log format", []string{"--dev", "--log-format", "xml"}, nil, "use text or json"},
		{"bad duration", []string{"--dev", "--token-lifetime", "five"}, nil, "invalid value"},
		{"negative duration", []string{"--dev", "--rotation-period", "-1m"}, nil, "is negative"},
		{"cert without key", []string{"--dev", "--tls-cert", "c.pem"}, nil, "go together"},
		{"client CA without TLS", []string{"--dev", "--tls-client-ca", "ca.pem"}, nil, "mTLS is TLS with client certificates"},
		{"kek twice", []string{"--dev", "--kek-file", "k"}, map[string]string{"CALLSIGN_KEK": "x"}, "one way only"},
		{"production without data dir", []string{"--kek-file", "k"}, nil, "--data-dir is required"},
		{"production without kek", []string{"--data-dir", "/var/lib/callsign"}, nil, "pass --kek-file FILE or set CALLSIGN_KEK"},
		{"production plaintext on the network", append(prod, "--grpc-addr", "0.0.0.0:7443"), nil, "pass --tls-cert and --tls-key, or --allow-plaintext"},
		{"bad environment value", []string{"--dev"}, map[string]string{"CALLSIGN_TOKEN_LIFETIME": "soon"}, "environment variable CALLSIGN_TOKEN_LIFETIME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseOptions(tt.args, env(tt.env), &stderr)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseOptionsProductionAccepted(t *testing.T) {
	tests := [][]string{
		{"--data-dir", "/d", "--kek-file", "/k"},
		{"--data-dir", "/d", "--kek-file", "/k", "--grpc-addr", "0.0.0.0:7443", "--allow-plaintext"},
		{"--data-dir", "/d", "--kek-file", "/k", "--grpc-addr", ":7443", "--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca"},
		{"--data-dir", "/d", "--kek-file", "/k", "--grpc-addr", "localhost:0"},
	}
	for _, args := range tests {
		if _, err := parseOptions(args, env(nil), &bytes.Buffer{}); err != nil {
			t.Errorf("parseOptions(%q): %v", args, err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:0":     true,
		"127.9.9.9:1":     true,
		"[::1]:0":         true,
		"localhost:7443":  true,
		"LOCALHOST:7443":  true,
		":7443":           false,
		"0.0.0.0:7443":    false,
		"[::]:7443":       false,
		"192.168.1.1:1":   false,
		"example.com:443": false,
		"garbage":         false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("tls-client-ca"); got != "CALLSIGN_TLS_CLIENT_CA" {
		t.Errorf("envName = %q", got)
	}
}
