// Command demo runs callsign's shop demo end to end (make demo): it builds and
// starts callsignd --dev and the shop's services as separate processes on free
// loopback ports, plays the scenario and prints the transcript. It exits 0
// only when every step did what it should, and stops every process it started,
// also on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/callsign-dev/callsign/examples/shop/internal/demo"
)

func main() {
	keep := flag.Bool("keep", false, "keep the work directory (binaries, callsignd's data, process logs)")
	work := flag.String("work-dir", "", "work directory; default a new temporary directory")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := demo.Run(ctx, demo.Config{Out: os.Stdout, WorkDir: *work, Keep: *keep})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "\ndemo: interrupted; every process it started has been stopped")
		} else {
			fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		}
		os.Exit(1)
	}
	if !rep.OK() {
		os.Exit(1)
	}
}
