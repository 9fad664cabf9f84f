// Command callsign is the operator CLI of callsign: it manages service
// accounts, their keys and grants, revokes tokens, rotates callsignd's signing
// keys, and issues, decodes and verifies tokens.
//
// It talks to callsignd's AdminService with its own admin credential: an
// account with a grant for audience "callsign" and scope "callsign.admin"
// (callsignd --dev registers callsign-admin and writes its key to
// <data-dir>/credentials/callsign-admin.jwk). Run "callsign help" for the
// commands, "callsign <command> --help" for the flags of one.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed, or a verified token is not valid
	exitUsage = 2 // the command line is wrong
)

// errUsage marks a command-line error (exit status 2).
var errUsage = errors.New("usage")

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }
func (e *usageError) Unwrap() error { return errUsage }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errSilent is returned by a command that has already reported its outcome
// (token verify of an invalid token): exit status 1 without another message.
var errSilent = errors.New("silent failure")

// env is what a command runs with.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// run executes the command line args and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	if len(args) == 0 {
		printHelp(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return run(ctx, append(args[1:], "--help"), stdin, stdout, stderr, getenv)
		}
		printHelp(stdout)
		return exitOK
	}
	group, rest := args[0], args[1:]
	cmds := commandsOf(group)
	if len(cmds) == 0 {
		fmt.Fprintf(stderr, "callsign: unknown command %q: run 'callsign help' for the list of commands\n", group)
		return exitUsage
	}
	if len(rest) == 0 || isHelp(rest[0]) {
		printGroupHelp(stdout, group, cmds)
		if len(rest) == 0 {
			return exitUsage
		}
		return exitOK
	}
	var c *command
	for _, cand := range cmds {
		if cand.name == rest[0] {
			c = cand
		}
	}
	if c == nil {
		fmt.Fprintf(stderr, "callsign %s: unknown command %q: run 'callsign %s --help' for its commands\n", group, rest[0], group)
		return exitUsage
	}
	err := c.execute(ctx, e, rest[1:])
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, errSilent):
		return exitError
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "callsign %s: %v\n", c.path(), err)
		return exitUsage
	default:
		fmt.Fprintf(stderr, "callsign %s: %v\n", c.path(), err)
		return exitError
	}
}

func isHelp(s string) bool {
	switch s {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// groups lists the command groups in the order of the help text.
var groups = []struct{ name, summary string }{
	{"accounts", "create, list, show, disable and enable service accounts"},
	{"keys", "add and remove an account's public keys; generate a key pair"},
	{"secrets", "create a client secret for an account"},
	{"grants", "set and delete which audiences and scopes an account may get tokens for"},
	{"user-assertion", "set whether an account may assert users, and for which tenants"},
	{"revoke", "revoke one token, or every token of an account"},
	{"signing-keys", "list and rotate callsignd's signing keys"},
	{"token", "issue, decode and verify tokens"},
}

func commandsOf(group string) []*command {
	var out []*command
	for _, c := range allCommands() {
		if c.group == group {
			out = append(out, c)
		}
	}
	return out
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, `callsign is the operator CLI of callsign.

Usage:
  callsign <command> <subcommand> [flags] [arguments]
  callsign <command> <subcommand> --help

Commands:
`)
	for _, g := range groups {
		var subs []string
		for _, c := range commandsOf(g.name) {
			subs = append(subs, c.name)
		}
		fmt.Fprintf(w, "  %-15s %s\n  %-15s   (%s)\n", g.name, g.summary, "", strings.Join(subs, ", "))
	}
	fmt.Fprint(w, connectionHelp)
	fmt.Fprint(w, `
Examples (against callsignd --dev --data-dir .callsign-dev):
  export CALLSIGN_KEY=.callsign-dev/credentials/callsign-admin.jwk
  callsign accounts list
  callsign token issue --account orders --key .callsign-dev/credentials/orders.jwk --audience pricing
  callsign revoke token <token id>
  callsign signing-keys rotate
`)
}

func printGroupHelp(w io.Writer, group string, cmds []*command) {
	for _, g := range groups {
		if g.name == group {
			fmt.Fprintf(w, "callsign %s: %s\n\nCommands:\n", group, g.summary)
		}
	}
	sorted := append([]*command(nil), cmds...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].order < sorted[j].order })
	for _, c := range sorted {
		fmt.Fprintf(w, "  callsign %s %s %s\n      %s\n", group, c.name, c.args, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'callsign %s <command> --help' for its flags.\n", group)
}

const connectionHelp = `
Connecting to callsignd (every command that talks to callsignd):
  --addr HOST:PORT   callsignd's gRPC address (env CALLSIGN_ADDR; default ` + defaultAddr + `)
  --account ID       the admin account (env CALLSIGN_ACCOUNT; default ` + defaultAdminAccount + `)
  --key FILE         its private key, a JWK file (env CALLSIGN_KEY)
  --issuer ID        callsignd's issuer id (env CALLSIGN_ISSUER; default ` + defaultIssuer + `)
  --ca FILE          PEM CA bundle: connect with TLS and verify callsignd's certificate (env CALLSIGN_CA)
  --tls              connect with TLS, verifying against the system's roots
  --cert, --cert-key PEM client certificate and key for mTLS
  --allow-plaintext  allow plaintext to an address that is not loopback (only inside a mesh that provides mTLS)
  --timeout D        give up after this long (default ` + "10s" + `)
Without --ca or --tls the connection is plaintext, which callsign allows only on loopback.
`
