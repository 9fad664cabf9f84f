package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
)

// selfAudience is the audience of callsignd's own AuthService and
// AdminService: the callsign.v1.service option of both in their .proto files.
// Operator tokens (scope callsign.admin) and Verify callers' tokens (scope
// callsign.verify) are issued for it.
const selfAudience = "callsign"

// selfRefreshInterval is how often callsignd's own verifier reloads the keys
// and revocation state from the service in the same process: a revocation or
// a disabled account reaches AdminService within about this long.
const selfRefreshInterval = time.Second

// Services callsignd serves that callsign does not own. They carry no
// callsign.v1 option, so their rules are set here, visibly: both are public.
var exemptServices = []string{
	"grpc.health.v1.Health",
	"grpc.reflection.v1.ServerReflection",
	"grpc.reflection.v1alpha.ServerReflection",
}

// selfFetcher feeds callsignd's own key source from the service in the same
// process. It drops the refresh hint meant for remote verifiers so that
// [selfRefreshInterval] applies.
type selfFetcher struct{ svc *authsvc.Service }

func (f selfFetcher) GetKeys(ctx context.Context, in *callsignv1.GetKeysRequest, opts ...grpc.CallOption) (*callsignv1.GetKeysResponse, error) {
	resp, err := f.svc.GetKeys(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	return &callsignv1.GetKeysResponse{
		Jwks:             resp.GetJwks(),
		RevokedTokens:    resp.GetRevokedTokens(),
		DisabledAccounts: resp.GetDisabledAccounts(),
		RevokedAccounts:  resp.GetRevokedAccounts(),
		Version:          resp.GetVersion(),
	}, nil
}

// selfProtection builds callsign's own server interceptor for callsignd: it
// verifies tokens against the service's own keys (loaded in process, no
// network), with the rules declared in auth.proto and admin.proto, and the
// explicit public rules of health and reflection. The returned close function
// stops the key source.
func selfProtection(ctx context.Context, svc *authsvc.Service, cfg *authsvc.Config, auditAllowed bool, reg prometheus.Registerer, logger *slog.Logger) (*interceptor.Server, func(), error) {
	alg := interceptor.Algorithm(cfg.Algorithm)
	waitCtx, cancel := context.WithTimeout(ctx, keysWait)
	defer cancel()
	keys, err := interceptor.NewLiveKeySource(waitCtx, selfFetcher{svc},
		interceptor.WithKeyAlgorithm(alg),
		interceptor.WithRefreshInterval(selfRefreshInterval),
		interceptor.WithKeyLogger(logger),
		interceptor.WithKeyMetrics(reg),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("load callsignd's own verification keys: %w", err)
	}
	opts := []interceptor.ServerOption{
		interceptor.WithIssuer(cfg.Issuer),
		interceptor.WithAudience(selfAudience),
		interceptor.WithAlgorithm(alg),
		interceptor.WithSkew(cfg.Skew),
		interceptor.WithMaxLifetime(cfg.MaxTokenLifetime),
		interceptor.WithAuditSink(interceptor.NewSlogAuditSink(logger, auditAllowed)),
		interceptor.WithMetrics(reg),
	}
	for _, name := range exemptServices {
		opts = append(opts, interceptor.WithServiceRule(name, interceptor.Rule{Public: true}))
	}
	srv, err := interceptor.NewServer(keys, opts...)
	if err != nil {
		_ = keys.Close()
		return nil, nil, fmt.Errorf("callsignd's own interceptor: %w", err)
	}
	return srv, func() { _ = keys.Close() }, nil
}

// checkServer refuses a server with a registered method that callsign would
// deny for lack of a rule: callsignd fails closed on its own methods too.
func checkServer(s *interceptor.Server, gs *grpc.Server) error {
	if missing := s.CheckServer(gs); len(missing) > 0 {
		return fmt.Errorf("refusing to start: these methods have no callsign rule: %s; declare a callsign.v1.method option in their .proto file, or an explicit rule in code", strings.Join(missing, ", "))
	}
	s.WarmRules(gs)
	return nil
}
