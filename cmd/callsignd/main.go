package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1 // start-up failed or a listener failed while serving
	exitUsage = 2 // bad flags or environment
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// SIGINT or SIGTERM ends the process at once.
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run is callsignd without the process around it: it parses args and the
// environment (through getenv), serves until ctx ends, and returns the exit
// status. Logs and usage go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := parseOptions(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "callsignd: %v\n", err)
		return exitUsage
	}
	logger := newLogger(stderr, o.logFormat, o.logLevel)
	if err := serve(ctx, o, logger); err != nil {
		if errors.Is(err, errUsage) {
			// A configuration problem found before anything started: said
			// the way flag errors are.
			fmt.Fprintf(stderr, "callsignd: %v\n", err)
			return exitUsage
		}
		logger.Error("callsignd stopped", "error", err.Error())
		return exitError
	}
	return exitOK
}
