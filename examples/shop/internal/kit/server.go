package kit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/callsign-dev/callsign/interceptor"
)

// NewServer returns a gRPC server that verifies every call with callsign: the
// caller's service token for audience (this service's account), the method's
// rule from the proto, and the user and tenant. It fetches callsignd's keys and
// revocation state first (and keeps them fresh on callsignd's hint). register
// adds the service implementations; the server is refused when any method has
// no rule (callsign fails closed).
func (s *Service) NewServer(ctx context.Context, register func(*grpc.Server)) (*grpc.Server, error) {
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keys, err := interceptor.NewLiveKeySource(waitCtx, s.AuthClient(), interceptor.WithKeyLogger(s.Log))
	if err != nil {
		return nil, fmt.Errorf("fetch callsignd's keys from %s: %w", s.Flags.CallsignAddr, err)
	}
	s.closers = append(s.closers, func() { _ = keys.Close() })
	return s.newServer(keys, register)
}

// newServer builds the gRPC server on keys and refuses it when a registered
// method has no callsign rule.
func (s *Service) newServer(keys interceptor.KeySource, register func(*grpc.Server)) (*grpc.Server, error) {
	auth, err := interceptor.NewServer(keys,
		interceptor.WithIssuer(s.Flags.Issuer),
		interceptor.WithAudience(s.Flags.Account),
		interceptor.WithSkew(s.Flags.Skew),
		interceptor.WithLogger(s.Log),
		interceptor.WithAuditSink(interceptor.AuditSinkFunc(s.Audit)),
	)
	if err != nil {
		return nil, err
	}
	gs := grpc.NewServer(auth.GRPCServerOptions()...)
	register(gs)
	if missing := auth.CheckServer(gs); len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s; add a callsign.v1.method option to each", ErrUnprotected, strings.Join(missing, ", "))
	}
	auth.WarmRules(gs)
	return gs, nil
}

// Serve serves gs on --listen, writes the ready file, and stops gracefully on
// SIGINT or SIGTERM or when ctx ends.
func (s *Service) Serve(ctx context.Context, gs *grpc.Server) error {
	ln, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.serve(ctx, ln, func(ln net.Listener) error { return gs.Serve(ln) }, gs.GracefulStop, gs.Stop)
}

// ServeHTTP is Serve for the gateway's HTTP server.
func (s *Service) serve(ctx context.Context, ln net.Listener, run func(net.Listener) error, graceful, hard func()) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- run(ln) }()
	if err := s.WriteReady(ln.Addr().String()); err != nil {
		hard()
		return fmt.Errorf("write --ready-file: %w", err)
	}
	s.Log.Info("serving", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	done := make(chan struct{})
	go func() { graceful(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		hard()
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) && !isClosed(err) {
		return err
	}
	return nil
}

// Run serves until stopped with a listener and a run function (the gateway's
// HTTP server).
func (s *Service) Run(ctx context.Context, run func(net.Listener) error, graceful, hard func()) error {
	ln, err := s.Listen(ctx)
	if err != nil {
		return err
	}
	return s.serve(ctx, ln, run, graceful, hard)
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "Server closed")
}

// Main runs a service's main function and exits non-zero with its error.
func Main(name string, f func(context.Context) error) {
	if err := f(context.Background()); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
