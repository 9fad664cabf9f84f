package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/cli.md from the CLI's help")

const cliDoc = "../../docs/cli.md"

// renderCLIDoc renders docs/cli.md from the help texts, so that the reference
// is the help the CLI prints.
func renderCLIDoc() string {
	var b strings.Builder
	b.WriteString(`# The callsign CLI

` + "`callsign`" + ` is the operator CLI of callsign. It manages service accounts, their keys,
secrets and grants, revokes tokens, rotates callsignd's signing keys, and issues, decodes
and verifies tokens. Build it with ` + "`go build -o bin/ ./cmd/callsign`" + `.

This page is generated from the CLI's own help (` + "`go test ./cmd/callsign -run TestCLIDoc -update-docs`" + `),
and a test fails when the two differ.

## Connecting

Every command that talks to callsignd authenticates as an account with a grant for
audience ` + "`callsign`" + ` (scope ` + "`callsign.admin`" + `, and ` + "`callsign.verify`" + ` for ` + "`token verify`" + `).
` + "`callsignd --dev`" + ` creates such an account, ` + "`callsign-admin`" + `, and writes its key to
` + "`<data-dir>/credentials/callsign-admin.jwk`" + `:

` + "```sh" + `
export CALLSIGN_ADDR=127.0.0.1:7443
export CALLSIGN_KEY=.callsign-dev/credentials/callsign-admin.jwk
callsign accounts list
` + "```" + `

For each request the CLI signs a fresh client assertion with the key (valid 30 s, used
once), exchanges it for a service token, and sends the token with the request.

Exit status: 0 on success; 1 when the command failed (the message says what to do next) or
` + "`token verify`" + ` found the token invalid; 2 when the command line is wrong.

`)
	var out bytes.Buffer
	printHelp(&out)
	b.WriteString("## Overview\n\n```text\n" + out.String() + "```\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "\n## %s\n", g.name)
		cmds := commandsOf(g.name)
		sort.SliceStable(cmds, func(i, j int) bool { return cmds[i].order < cmds[j].order })
		for _, c := range cmds {
			out.Reset()
			_ = run(context.Background(), []string{c.group, c.name, "--help"}, strings.NewReader(""), &out, &out, func(string) string { return "" })
			fmt.Fprintf(&b, "\n### callsign %s\n\n```text\n%s```\n", c.path(), out.String())
		}
	}
	return b.String()
}

func TestCLIDoc(t *testing.T) {
	want := renderCLIDoc()
	if *updateDocs {
		if err := os.WriteFile(cliDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(cliDoc)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s differs from the CLI's help: run go test ./cmd/callsign -run TestCLIDoc -update-docs", cliDoc)
	}
}

// TestDocsNameRealCommandsAndFlags checks README.md and the operators' pages
// in docs/: every
// "callsign GROUP COMMAND" names a command of the CLI, and every --flag is a
// flag of callsignd, of the CLI, or of the example programs.
func TestDocsNameRealCommandsAndFlags(t *testing.T) {
	needServer(t)
	known := map[string]bool{}
	// callsignd's flags, from its own help.
	out, _ := exec.Command(server.bin, "-help").CombinedOutput()
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z-]+)`).FindAllStringSubmatch(string(out), -1) {
		known[m[1]] = true
	}
	if !known["grpc-addr"] || !known["dev"] {
		t.Fatalf("could not read callsignd's flags from its help:\n%s", out)
	}
	// The CLI's flags.
	for _, c := range allCommands() {
		fs := flag.NewFlagSet(c.path(), flag.ContinueOnError)
		if c.server {
			registerConnFlags(fs)
		}
		c.setup(fs)
		fs.VisitAll(func(f *flag.Flag) { known[f.Name] = true })
	}
	// The examples' flags (examples/shop/internal/kit, the shop's and the
	// quickstart's main packages, the demo).
	for _, f := range []string{"help", "x-y", "callsign", "listen", "ready-file", "skew", "pricing", "billing", "orders", "inventory", "interval", "token-file", "keep", "work-dir"} {
		known[f] = true
	}
	var files []string
	for _, f := range []string{"deploying", "configuration", "key-rotation", "revocation", "tls-and-mesh", "metrics", "cli", "THREAT_MODEL"} {
		files = append(files, "../../docs/"+f+".md")
	}
	files = append(files, "../../README.md")
	flagRE := regexp.MustCompile("(?:^|[\\s`(\\[])--([a-z][a-z0-9-]*)")
	// Commands in code: at the start of a line, after a backtick, "$ " or "/".
	cmdRE := regexp.MustCompile("(?m)(?:^\\s*|`|\\$ |/)callsign ([a-z-]+) ([a-z-]+)")
	groupNames := map[string]bool{}
	for _, g := range groups {
		groupNames[g.name] = true
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagRE.FindAllStringSubmatch(string(data), -1) {
			if !known[m[1]] {
				t.Errorf("%s mentions --%s, which no program has", f, m[1])
			}
		}
		for _, m := range cmdRE.FindAllStringSubmatch(string(data), -1) {
			if !groupNames[m[1]] {
				continue
			}
			found := false
			for _, c := range commandsOf(m[1]) {
				found = found || c.name == m[2]
			}
			if !found && !isHelp(m[2]) && m[2] != "command" && m[2] != "subcommand" {
				t.Errorf("%s mentions 'callsign %s %s', which is not a command", f, m[1], m[2])
			}
		}
	}
}
