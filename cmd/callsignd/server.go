package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
)

// Limits of the listeners.
const (
	maxRecvMsgSize       = 64 << 10 // a whole request is at most 64 KiB (auth.proto)
	maxHeaderListSize    = 64 << 10 // DESIGN.md §9
	maxConcurrentStreams = 1000
	httpReadHeaderLimit  = 5 * time.Second
	httpTimeout          = 30 * time.Second
	httpMaxHeaderBytes   = 64 << 10
	// keysWait bounds how long start-up waits for the first signing key.
	keysWait = 30 * time.Second
)

// serve runs callsignd until ctx ends (graceful shutdown, nil error) or a
// listener fails. It owns every resource it opens and releases them all
// before it returns.
func serve(ctx context.Context, o *options, logger *slog.Logger) error {
	started := time.Now()
	cfg, err := loadConfig(o)
	if err != nil {
		return err
	}
	// Refuse a bad configuration before anything is written.
	if err := cfg.Validate(); err != nil {
		return usagef("configuration (file and flags): %v", err)
	}
	grpcTLS, httpTLS, err := tlsConfigs(o, logger)
	if err != nil {
		return err
	}
	var kek []byte
	if o.kekFile != "" || o.kekEnv != "" {
		if kek, err = authsvc.LoadKEK(o.kekFile, o.kekEnv); err != nil {
			return usagef("%v: pass --kek-file FILE (mode 0600) or set %s to 32 random bytes, base64", err, envKEK)
		}
	}
	defer func() { clear(kek) }()

	// Bind before anything is written: a port conflict leaves no trace.
	grpcLis, err := listen(ctx, "--grpc-addr", o.grpcAddr)
	if err != nil {
		return err
	}
	defer grpcLis.Close() // closed by Serve/Stop first; this covers early returns
	httpLis, err := listen(ctx, "--http-addr", o.httpAddr)
	if err != nil {
		return err
	}
	defer httpLis.Close() // as above

	if err := ensureDir(o.dataDir); err != nil {
		return err
	}
	var credDir string
	if o.dev {
		if kek == nil {
			path, created, err := devKEK(o.dataDir)
			if err != nil {
				return err
			}
			if created {
				logger.Warn("DEVELOPMENT MODE: generated a key-encryption key on local disk; signing keys are only as safe as this file; never use --dev in production",
					"kek_file", path)
			} else {
				logger.Warn("DEVELOPMENT MODE: the key-encryption key is a file on local disk; never use --dev in production", "kek_file", path)
			}
			if kek, err = authsvc.LoadKEK(path, ""); err != nil {
				return fmt.Errorf("development key-encryption key %s: %w", path, err)
			}
		}
		credDir = filepath.Join(o.dataDir, credentialsDir)
		if err := addDevAccounts(cfg, credDir); err != nil {
			return err
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("configuration with the development accounts: %w", err)
		}
	}

	dbPath := filepath.Join(o.dataDir, dbFileName)
	store, err := authsvc.OpenSQLite(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("open database %s: %w", dbPath, err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("close database", "error", err.Error())
		}
	}()

	svc, err := authsvc.New(ctx, store, kek, *cfg, authsvc.WithLogger(logger))
	if err != nil {
		return fmt.Errorf("start the token service: %w", err)
	}

	// The key lifecycle runs in the background from now until shutdown.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancelRun() // runs before wg.Wait
	wg.Go(func() {
		if err := svc.Run(runCtx); err != nil && runCtx.Err() == nil {
			errc <- fmt.Errorf("key lifecycle: %w", err)
		}
	})
	if err := waitForKeys(ctx, svc); err != nil {
		return err
	}

	reg, metricsHandler := newMetrics()
	guard, closeKeys, err := selfProtection(ctx, svc, cfg, o.auditAllowed, reg, logger)
	if err != nil {
		return err
	}
	defer closeKeys()
	rpcm, err := newRPCMetrics(reg)
	if err != nil {
		return err
	}
	grpcSrv, healthSrv := newGRPCServer(svc, guard, rpcm, grpcTLS, logger)
	if err := checkServer(guard, grpcSrv); err != nil {
		return err
	}

	var ready atomic.Bool
	httpSrv := &http.Server{
		Handler:           newHTTPHandler(svc.JWKSHandler(), metricsHandler, &ready),
		TLSConfig:         httpTLS,
		ReadHeaderTimeout: httpReadHeaderLimit,
		ReadTimeout:       httpTimeout,
		WriteTimeout:      httpTimeout,
		IdleTimeout:       2 * httpTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	wg.Go(func() {
		if err := grpcSrv.Serve(grpcLis); err != nil {
			errc <- fmt.Errorf("gRPC listener: %w", err)
		}
	})
	wg.Go(func() {
		var err error
		if httpTLS != nil {
			err = httpSrv.ServeTLS(httpLis, "", "")
		} else {
			err = httpSrv.Serve(httpLis)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP listener: %w", err)
		}
	})

	// Keys exist and both listeners accept: serving.
	setServing(healthSrv, healthpb.HealthCheckResponse_SERVING)
	ready.Store(true)
	logger.Info("callsignd serving",
		"grpc_addr", grpcLis.Addr().String(),
		"http_addr", httpLis.Addr().String(),
		"tls", grpcTLS != nil,
		"mtls", grpcTLS != nil && grpcTLS.ClientAuth == tls.RequireAndVerifyClientCert,
		"dev", o.dev,
		"issuer", cfg.Issuer,
		"algorithm", cfg.Algorithm,
		"data_dir", absPath(o.dataDir),
		"startup", time.Since(started).Round(time.Millisecond).String())
	if o.dev {
		ids := make([]string, 0, len(devAccounts))
		for _, a := range devAccounts {
			ids = append(ids, a.id)
		}
		logger.Info("development accounts ready; their private keys are in credentials_dir",
			"accounts", strings.Join(ids, ","),
			"credentials_dir", absPath(credDir),
			"try", "callsign accounts list --addr "+grpcLis.Addr().String()+" --key "+filepath.Join(absPath(credDir), adminAccountID+".jwk"))
	}
	var serveErr error
	if o.readyFile != "" {
		serveErr = writeReadyFile(o.readyFile, readyInfo{
			PID:            os.Getpid(),
			GRPCAddr:       grpcLis.Addr().String(),
			HTTPAddr:       httpLis.Addr().String(),
			TLS:            grpcTLS != nil,
			Issuer:         cfg.Issuer,
			DataDir:        absPath(o.dataDir),
			CredentialsDir: absPath(credDir),
		})
	}
	if serveErr == nil {
		select {
		case <-ctx.Done():
			logger.Info("callsignd shutting down")
		case serveErr = <-errc:
		}
	}

	// Shutdown: stop reporting ready, drain calls, then stop the key
	// lifecycle (deferred above).
	ready.Store(false)
	healthSrv.Shutdown()
	gracefulStop(grpcSrv, o.shutdownTimeout, logger)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("HTTP shutdown timed out; closing connections", "error", err.Error())
		_ = httpSrv.Close()
	}
	if o.readyFile != "" {
		if err := os.Remove(o.readyFile); err != nil && !errors.Is(err, os.ErrNotExist) { //nolint:gosec // G703: the operator's --ready-file
			logger.Warn("remove --ready-file", "error", err.Error())
		}
	}
	if serveErr != nil {
		return serveErr
	}
	logger.Info("callsignd stopped")
	return nil
}

// loadConfig reads the configuration file (or takes the defaults) and applies
// the flags that override it.
func loadConfig(o *options) (*authsvc.Config, error) {
	var cfg *authsvc.Config
	if o.configPath != "" {
		c, err := authsvc.LoadConfig(o.configPath)
		if err != nil {
			return nil, usagef("--config %s: %v", o.configPath, err)
		}
		cfg = c
	} else {
		c := authsvc.DefaultConfig()
		cfg = &c
	}
	if o.issuer != "" {
		cfg.Issuer = o.issuer
	}
	for _, d := range []struct {
		flag time.Duration
		cfg  *time.Duration
	}{
		{o.tokenLifetime, &cfg.TokenLifetime},
		{o.maxTokenLifetime, &cfg.MaxTokenLifetime},
		{o.rotationPeriod, &cfg.RotationPeriod},
		{o.publishLead, &cfg.PublishLead},
		{o.refreshHint, &cfg.RefreshHint},
	} {
		if d.flag > 0 {
			*d.cfg = d.flag
		}
	}
	return cfg, nil
}

// addDevAccounts adds the accounts of the shop demo to cfg, each with its key
// from credDir (created on first use). An account that the configuration file
// declares itself is left as declared.
func addDevAccounts(cfg *authsvc.Config, credDir string) error {
	if err := ensureDir(credDir); err != nil {
		return err
	}
	declared := map[string]bool{}
	for _, a := range cfg.Accounts {
		declared[a.ID] = true
	}
	for _, d := range devAccounts {
		if declared[d.id] {
			continue
		}
		cred, err := loadOrCreateCredential(credDir, d.id)
		if err != nil {
			return err
		}
		ac := authsvc.AccountConfig{
			ID:          d.id,
			Description: d.description,
			PublicKeys:  []authsvc.PublicKeyConfig{{KID: cred.kid, JWK: cred.publicJWK}},
		}
		for _, g := range d.grants {
			ac.Grants = append(ac.Grants, authsvc.GrantConfig{Audience: g.audience, Scopes: g.scopes})
		}
		if len(d.userTenants) > 0 {
			ac.UserAssertion = &authsvc.UserAssertionConfig{Allowed: true, Tenants: d.userTenants}
		}
		cfg.Accounts = append(cfg.Accounts, ac)
	}
	return nil
}

// listen binds addr, with an error that says what to do when it fails.
func listen(ctx context.Context, flagName, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s %s: the address is in use (another callsignd?): stop the other process, or pick another port (port 0 picks a free one)", flagName, addr)
		}
		return nil, fmt.Errorf("%s %s: %w", flagName, addr, err)
	}
	return lis, nil
}

// newGRPCServer builds the gRPC server: AuthService and AdminService
// protected by guard and measured by m, grpc health (NOT_SERVING until
// [setServing]) and reflection.
func newGRPCServer(svc *authsvc.Service, guard *interceptor.Server, m *rpcMetrics, tlsCfg *tls.Config, logger *slog.Logger) (*grpc.Server, *health.Server) {
	// Metrics first, so that they see the guard's denials and recovered
	// panics as status codes.
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		grpc.MaxHeaderListSize(maxHeaderListSize),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
		grpc.ChainUnaryInterceptor(m.unary(), recoverUnary(logger), guard.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.stream(), recoverStream(logger), guard.StreamServerInterceptor()),
	}
	if tlsCfg != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	srv := grpc.NewServer(opts...)
	callsignv1.RegisterAuthServiceServer(srv, svc.AuthServer())
	callsignv1.RegisterAdminServiceServer(srv, svc.AdminServer())
	healthSrv := health.NewServer()
	setServing(healthSrv, healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, healthSrv)
	reflection.Register(srv)
	return srv, healthSrv
}

// setServing sets the health of the server ("") and of both callsign services.
func setServing(h *health.Server, st healthpb.HealthCheckResponse_ServingStatus) {
	for _, name := range []string{"", callsignv1.AuthService_ServiceDesc.ServiceName, callsignv1.AdminService_ServiceDesc.ServiceName} {
		h.SetServingStatus(name, st)
	}
}

// recoverUnary turns a panic in a handler into Internal, logging the method
// and the stack, never the request.
func recoverUnary(logger *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("handler panicked", "method", info.FullMethod, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// recoverStream is [recoverUnary] for streams.
func recoverStream(logger *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				logger.Error("handler panicked", "method", info.FullMethod, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

// gracefulStop stops accepting calls and waits for open ones up to timeout,
// then cuts them off.
func gracefulStop(srv *grpc.Server, timeout time.Duration, logger *slog.Logger) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		logger.Warn("graceful shutdown timed out; cutting off open calls", "timeout", timeout.String())
		srv.Stop()
		<-done
	}
}

// waitForKeys returns once the service publishes at least one signing key.
func waitForKeys(ctx context.Context, svc *authsvc.Service) error {
	deadline := time.Now().Add(keysWait)
	for {
		resp, err := svc.GetKeys(ctx, &callsignv1.GetKeysRequest{})
		if err == nil && jwksLen(resp.GetJwks()) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New("no key published")
			}
			return fmt.Errorf("no signing key after %s: %w", keysWait, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for the first signing key: %w", context.Cause(ctx))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// jwksLen is the number of keys in a JWK Set, 0 when it does not parse.
func jwksLen(data []byte) int {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(data, &set) != nil {
		return 0
	}
	return len(set.Keys)
}

// absPath is p made absolute for the ready file; "" stays "".
func absPath(p string) string {
	if p == "" {
		return ""
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
