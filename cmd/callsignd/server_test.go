package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestGracefulStopTimeout: a call that does not finish within the shutdown
// timeout is cut off, and gracefulStop returns soon after the timeout.
func TestGracefulStopTimeout(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()

	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Watch streams until the client or the server ends it: an open call.
	stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	start := time.Now()
	gracefulStop(gs, 200*time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)))
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("gracefulStop returned after %v, want just after the 200ms timeout", d)
	}
	if _, err := stream.Recv(); err == nil {
		t.Error("the open call survived the shutdown")
	}
	if !strings.Contains(logs.String(), "cutting off open calls") {
		t.Errorf("no log of the forced stop: %s", logs.String())
	}
}

// TestGracefulStopDrains: without open calls, gracefulStop returns at once.
func TestGracefulStopDrains(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	done := make(chan error, 1)
	go func() { done <- gs.Serve(lis) }()
	start := time.Now()
	gracefulStop(gs, 10*time.Second, slog.New(slog.DiscardHandler))
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gracefulStop took %v with nothing open", d)
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		t.Errorf("Serve = %v", err)
	}
}

// TestHTTPHandler: the routes of the HTTP listener, readiness following the
// flag, and nothing else served.
func TestHTTPHandler(t *testing.T) {
	jwks := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"keys":[]}`)) })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m 1\n")) })
	var ready atomic.Bool
	h := newHTTPHandler(jwks, metrics, &ready)
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, _ := get(http.MethodGet, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready = %d", code)
	}
	ready.Store(true)
	for _, tt := range []struct {
		method, path string
		code         int
		body         string
	}{
		{http.MethodGet, "/readyz", http.StatusOK, "ready\n"},
		{http.MethodGet, "/healthz", http.StatusOK, "ok\n"},
		{http.MethodHead, "/healthz", http.StatusOK, ""},
		{http.MethodGet, "/.well-known/jwks.json", http.StatusOK, `{"keys":[]}`},
		{http.MethodGet, "/metrics", http.StatusOK, "m 1\n"},
		{http.MethodPost, "/.well-known/jwks.json", http.StatusMethodNotAllowed, ""},
		{http.MethodGet, "/.well-known/jwks.json/x", http.StatusNotFound, ""},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound, ""},
	} {
		code, body := get(tt.method, tt.path)
		if code != tt.code || (tt.body != "" && body != tt.body) {
			t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, code, body, tt.code, tt.body)
		}
	}
}

// TestRecoverPanics: a panicking handler answers Internal with a fixed
// message; the log names the method, never the request.
func TestRecoverPanics(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	const secret = "request-content-that-must-not-be-logged"
	_, err := recoverUnary(logger)(context.Background(), secret, &grpc.UnaryServerInfo{FullMethod: "/x.v1.S/Unary"},
		func(context.Context, any) (any, error) { panic(secret) })
	if status.Code(err) != codes.Internal || status.Convert(err).Message() != "internal error" {
		t.Errorf("unary: %v, want Internal with a fixed message", err)
	}
	err = recoverStream(logger)(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x.v1.S/Stream"},
		func(any, grpc.ServerStream) error { panic(secret) })
	if status.Code(err) != codes.Internal {
		t.Errorf("stream: %v, want Internal", err)
	}
	out := logs.String()
	if !strings.Contains(out, "/x.v1.S/Unary") || !strings.Contains(out, "/x.v1.S/Stream") {
		t.Errorf("the panics were not logged with their methods:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Error("the log contains the request or the panic value")
	}
}
