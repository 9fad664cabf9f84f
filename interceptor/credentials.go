package interceptor

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// PerRPCOption configures [PerRPCCredentials].
type PerRPCOption func(*perRPCConfig)

type perRPCConfig struct {
	insecure bool
	client   []ClientOption
}

// AllowInsecure lets [PerRPCCredentials] send tokens over a connection without
// transport security. Use it only for loopback development or behind a mesh
// that already provides mTLS: anyone who can read the connection can replay
// the token until it expires.
func AllowInsecure() PerRPCOption {
	return func(c *perRPCConfig) { c.insecure = true }
}

// WithPerRPCClientOptions passes [ClientOption] values, such as
// [WithClientDescriptors], to [PerRPCCredentials].
func WithPerRPCClientOptions(opts ...ClientOption) PerRPCOption {
	return func(c *perRPCConfig) { c.client = append(c.client, opts...) }
}

// PerRPCCredentials offers a [TokenSource] as gRPC per-RPC credentials, for
// use with grpc.WithPerRPCCredentials or the grpc.PerRPCCredentials call
// option. Each call gets "authorization: Bearer <token>" for audience; an
// empty audience means the audience of the target service's
// callsign.v1.service option. Methods whose rule is public get no token.
//
// The credentials require transport security: grpc.NewClient refuses them on
// an insecure connection, and each call checks that the connection provides
// privacy and integrity ([credentials.PrivacyAndIntegrity]); otherwise the
// call fails with Unauthenticated and no token is obtained or sent.
// [AllowInsecure] lifts both checks.
//
// Unlike [UnaryClientInterceptor], per-RPC credentials see neither the
// incoming context nor the answer: they forward no metadata and do not retry
// a refused token. Use one or the other on a connection, not both (the
// server refuses two authorization values).
func PerRPCCredentials(ts TokenSource, audience string, opts ...PerRPCOption) credentials.PerRPCCredentials {
	var cfg perRPCConfig
	for _, o := range opts {
		o(&cfg)
	}
	copts := append([]ClientOption{WithTargetAudience(audience)}, cfg.client...)
	return &perRPCCreds{c: newClientAttacher(ts, copts), insecure: cfg.insecure}
}

type perRPCCreds struct {
	c        *clientAttacher
	insecure bool
}

var errInsecureTransport = status.Error(codes.Unauthenticated, "callsign: refusing to send a token over a connection without privacy and integrity")

// GetRequestMetadata implements [credentials.PerRPCCredentials].
func (p *perRPCCreds) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !p.insecure {
		if !ok || credentials.CheckSecurityLevel(ri.AuthInfo, credentials.PrivacyAndIntegrity) != nil {
			return nil, errInsecureTransport
		}
	}
	var t *clientTarget
	switch {
	case ok && ri.Method != "":
		t = p.c.target(ri.Method)
	case p.c.cfg.audience != "":
		t = &clientTarget{audience: p.c.cfg.audience}
	default:
		t = &clientTarget{err: errNoAudience}
	}
	if t.err != nil {
		return nil, t.err
	}
	if t.public {
		return nil, nil
	}
	bearer, _, err := p.c.bearerFor(ctx, t.audience)
	if err != nil {
		return nil, err
	}
	return map[string]string{MDAuthorization: bearer}, nil
}

// RequireTransportSecurity implements [credentials.PerRPCCredentials]: true
// unless [AllowInsecure] was given.
func (p *perRPCCreds) RequireTransportSecurity() bool { return !p.insecure }
