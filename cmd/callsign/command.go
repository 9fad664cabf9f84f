package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
)

// errHelp is returned when --help was asked for and printed.
var errHelp = errors.New("help printed")

// runFunc runs a command with its parsed positional arguments. c is nil for a
// command that does not talk to callsignd.
type runFunc func(ctx context.Context, e *env, c *client, args []string) error

// command is one leaf command such as "accounts create".
type command struct {
	group   string
	name    string
	order   int
	args    string // the positional arguments, for the usage line
	summary string
	help    string // more text: what it does, examples
	nargs   [2]int // minimum and maximum number of positional arguments
	server  bool   // talks to callsignd: registers the connection flags
	// setup registers the command's own flags and returns the function that
	// runs it; it is called once per invocation.
	setup func(fs *flag.FlagSet) runFunc
}

func (c *command) path() string { return c.group + " " + c.name }

// execute parses args and runs the command.
func (c *command) execute(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("callsign "+c.path(), flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var cf *connFlags
	if c.server {
		cf = registerConnFlags(fs)
	}
	runner := c.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: callsign %s [flags] %s\n\n%s\n", c.path(), c.args, c.summary)
		if c.help != "" {
			fmt.Fprintf(e.stdout, "\n%s\n", strings.TrimSpace(c.help))
		}
		fmt.Fprintln(e.stdout, "\nFlags:")
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(e.stderr)
		if c.server {
			fmt.Fprint(e.stdout, "\nEvery command that talks to callsignd also reads CALLSIGN_ADDR, CALLSIGN_ACCOUNT,\nCALLSIGN_KEY, CALLSIGN_ISSUER and CALLSIGN_CA when the flag is not given.\n")
		}
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return usagef("%v (run 'callsign %s --help')", err, c.path())
	}
	if len(pos) < c.nargs[0] || len(pos) > c.nargs[1] {
		want := fmt.Sprintf("%d", c.nargs[0])
		if c.nargs[1] != c.nargs[0] {
			want = fmt.Sprintf("%d to %d", c.nargs[0], c.nargs[1])
		}
		return usagef("takes %s argument(s) (%s), got %d: run 'callsign %s --help'", want, strings.TrimSpace(c.args), len(pos), c.path())
	}
	var cl *client
	if c.server {
		if err := cf.applyEnv(fs, e.getenv); err != nil {
			return err
		}
		if err := cf.check(); err != nil {
			return err
		}
		cl = &client{flags: cf, env: e}
		defer cl.close()
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cf.timeout)
		defer cancel()
	}
	return runner(ctx, e, cl, pos)
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments. Everything after "--" is positional (for token ids
// that start with a dash).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			tail = args[i+1:]
			args = args[:i]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return append(pos, tail...), nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// allCommands lists every leaf command.
func allCommands() []*command {
	var out []*command
	out = append(out, accountCommands()...)
	out = append(out, keyCommands()...)
	out = append(out, grantCommands()...)
	out = append(out, revokeCommands()...)
	out = append(out, signingKeyCommands()...)
	out = append(out, tokenCommands()...)
	return out
}
