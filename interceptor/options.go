package interceptor

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/callsign-dev/callsign/internal/token"
)

// Clock tells the time and schedules callbacks. The interceptors, key sources
// and caches take one so that tests control time instead of sleeping.
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has elapsed and returns a
	// function that cancels the call; that function reports whether it stopped
	// the call before it ran, like [time.Timer.Stop].
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the [Clock] of the operating system.
var SystemClock Clock = systemClock{}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Algorithm is the JWS algorithm of a callsign deployment. It is pinned by
// configuration and never read from a token.
type Algorithm string

// The algorithms a callsign deployment signs with.
const (
	// EdDSA is Ed25519, the default.
	EdDSA Algorithm = "EdDSA"
	// ES256 is ECDSA on P-256 with SHA-256.
	ES256 Algorithm = "ES256"
)

func (a Algorithm) token() (token.Algorithm, error) {
	switch a {
	case "", EdDSA:
		return token.EdDSA, nil
	case ES256:
		return token.ES256, nil
	default:
		return "", fmt.Errorf("%w: algorithm must be EdDSA or ES256", errConfig)
	}
}

// Defaults of the server side (DESIGN.md §9).
const (
	// DefaultSkew is the clock skew allowed when checking exp, nbf and iat.
	DefaultSkew = 30 * time.Second
	// MaxSkew is the largest skew [WithSkew] accepts.
	MaxSkew = 5 * time.Minute
	// DefaultMaxLifetime is the largest exp-iat of a token accepted.
	DefaultMaxLifetime = 15 * time.Minute
	// DefaultCacheSize is the number of verified tokens kept.
	DefaultCacheSize = 10000
	// DefaultCentralCacheFor bounds how long a positive verdict of
	// AuthService.Verify is reused.
	DefaultCentralCacheFor = 10 * time.Second
	// MaxAuthorizationSize is the largest authorization value accepted, in
	// bytes: "Bearer " and a token of at most 8 KiB.
	MaxAuthorizationSize = len("Bearer ") + token.MaxTokenSize
	// MaxHeaderListSize is the largest incoming header list accepted, counted
	// as HTTP/2 does (name, value and 32 bytes per field).
	MaxHeaderListSize = 64 << 10
)

var errConfig = errors.New("interceptor: invalid configuration")

// ServerOption configures [NewServer], [UnaryServerInterceptor] and
// [StreamServerInterceptor].
type ServerOption interface {
	applyServer(*serverConfig)
}

type serverOptionFunc func(*serverConfig)

func (f serverOptionFunc) applyServer(c *serverConfig) { f(c) }

type serverConfig struct {
	issuer       string
	audience     string
	alg          Algorithm
	skew         time.Duration
	maxLifetime  time.Duration
	clock        Clock
	logger       *slog.Logger
	logAllowed   bool
	sink         AuditSink
	registerer   prometheus.Registerer
	cacheSize    int
	rules        map[string]Rule
	serviceRules map[string]Rule
	resolvers    []RuleResolver
	descriptors  []DescriptorResolver
	streamExpiry bool
	central      Verifier
	centralAll   bool
	centralFor   map[string]bool
	centralTTL   time.Duration
	errs         []error
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		alg:          EdDSA,
		skew:         DefaultSkew,
		maxLifetime:  DefaultMaxLifetime,
		clock:        SystemClock,
		cacheSize:    DefaultCacheSize,
		rules:        map[string]Rule{},
		serviceRules: map[string]Rule{},
		streamExpiry: true,
		centralTTL:   DefaultCentralCacheFor,
	}
}

func (c *serverConfig) failf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{errConfig}, args...)...))
}

// WithIssuer sets the issuer id of the callsign deployment (the iss every token
// must carry). Required. The audience of user-context tokens is this id too.
func WithIssuer(issuer string) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.issuer = issuer })
}

// WithAudience sets the id of the service this server runs as: the aud every
// service token must carry exactly. Required.
func WithAudience(audience string) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.audience = audience })
}

// WithAlgorithm pins the signing algorithm of the deployment. Default [EdDSA].
// It must match the algorithm of the [KeySource].
func WithAlgorithm(alg Algorithm) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if _, err := alg.token(); err != nil {
			c.errs = append(c.errs, err)
		}
		if alg == "" {
			alg = EdDSA
		}
		c.alg = alg
	})
}

// WithSkew sets the clock skew allowed for exp, nbf and iat. Default
// [DefaultSkew]; more than [MaxSkew] or a negative value is refused.
func WithSkew(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if d < 0 || d > MaxSkew {
			c.failf("skew must be between 0 and %s", MaxSkew)
		}
		c.skew = d
	})
}

// WithMaxLifetime sets the largest exp-iat of an accepted token. Default
// [DefaultMaxLifetime].
func WithMaxLifetime(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if d <= 0 {
			c.failf("max lifetime must be positive")
		}
		c.maxLifetime = d
	})
}

// WithClock replaces the system clock, for tests. Default [SystemClock].
func WithClock(clock Clock) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if clock == nil {
			c.failf("nil clock")
			return
		}
		c.clock = clock
	})
}

// WithLogger sets the logger of the default [AuditSink] (see
// [NewSlogAuditSink]). Default [slog.Default]. Ignored when [WithAuditSink]
// is given.
func WithLogger(logger *slog.Logger) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.logger = logger })
}

// WithLogAllowed makes the default audit sink log allowed calls too, at level
// Info. By default they are only counted. Ignored when [WithAuditSink] is
// given.
func WithLogAllowed(logAllowed bool) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.logAllowed = logAllowed })
}

// WithAuditSink replaces the default audit sink, which logs denials with the
// logger of [WithLogger] and counts allowed calls.
func WithAuditSink(sink AuditSink) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.sink = sink })
}

// WithMetrics registers the server's Prometheus metrics with reg (see
// metrics.go for their names). Without it nothing is registered anywhere.
func WithMetrics(reg prometheus.Registerer) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.registerer = reg })
}

// WithCacheSize sets how many verified tokens are kept (default
// [DefaultCacheSize]); 0 turns the cache off.
func WithCacheSize(n int) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if n < 0 {
			c.failf("negative cache size")
		}
		c.cacheSize = n
	})
}

// WithRule sets the rule of one method, given by its full name
// ("/grpc.health.v1.Health/Check"). It takes precedence over the rule in the
// method's descriptor. Use it for services whose .proto files you do not own,
// such as grpc health and reflection:
//
//	interceptor.WithRule("/grpc.health.v1.Health/Check", interceptor.Rule{Public: true})
func WithRule(fullMethod string, rule Rule) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if _, _, ok := splitMethod(fullMethod); !ok {
			c.failf("WithRule needs a full method name of the form /package.Service/Method")
			return
		}
		c.rules[fullMethod] = rule.clone()
	})
}

// WithServiceRule sets the rule of every method of a service, given by its full
// name ("grpc.reflection.v1.ServerReflection"), that has no rule of its own set
// with [WithRule]. It takes precedence over the descriptors.
func WithServiceRule(service string, rule Rule) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if service == "" || strings.ContainsRune(service, '/') || !protoreflect.FullName(service).IsValid() {
			c.failf("WithServiceRule needs a full service name such as package.Service")
			return
		}
		c.serviceRules[service] = rule.clone()
	})
}

// WithRuleResolver adds a resolver consulted, in the order given, after the
// rules set in code and before the descriptors.
func WithRuleResolver(r RuleResolver) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if r == nil {
			c.failf("nil rule resolver")
			return
		}
		c.resolvers = append(c.resolvers, r)
	})
}

// WithDescriptors adds a source of service descriptors, such as a
// [protoregistry.Files] built at run time from a FileDescriptorSet. Sources
// are consulted in the order given, then [protoregistry.GlobalFiles]. Method
// options read from them may hold the callsign extensions as unknown fields;
// they are decoded all the same.
//
// [protoregistry.Files]: https://pkg.go.dev/google.golang.org/protobuf/reflect/protoregistry#Files
// [protoregistry.GlobalFiles]: https://pkg.go.dev/google.golang.org/protobuf/reflect/protoregistry#GlobalFiles
func WithDescriptors(d DescriptorResolver) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if d == nil {
			c.failf("nil descriptor resolver")
			return
		}
		c.descriptors = append(c.descriptors, d)
	})
}

// WithStreamExpiry turns the end of streams on token expiry on or off. When on
// (the default), a stream whose service token expires while it runs ends with
// Unauthenticated / TOKEN_EXPIRED.
func WithStreamExpiry(enforce bool) ServerOption {
	return serverOptionFunc(func(c *serverConfig) { c.streamExpiry = enforce })
}

// WithCentralVerification makes the server verify tokens by calling
// AuthService.Verify through v (a callsignv1.AuthServiceClient satisfies
// [Verifier]) instead of verifying them locally. With no methods it applies to
// every method; otherwise only to the full method names given. Positive
// verdicts are reused for at most [DefaultCentralCacheFor] (see
// [WithCentralCacheFor]), never beyond the token's expiry or the verdict's
// cache_for.
func WithCentralVerification(v Verifier, methods ...string) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if v == nil {
			c.failf("nil central verifier")
			return
		}
		c.central = v
		if len(methods) == 0 {
			c.centralAll = true
			return
		}
		if c.centralFor == nil {
			c.centralFor = map[string]bool{}
		}
		for _, m := range methods {
			if _, _, ok := splitMethod(m); !ok {
				c.failf("WithCentralVerification needs full method names of the form /package.Service/Method")
				continue
			}
			c.centralFor[m] = true
		}
	})
}

// WithCentralCacheFor bounds how long a positive verdict of AuthService.Verify
// is reused. Default [DefaultCentralCacheFor]; 0 turns the reuse off.
func WithCentralCacheFor(d time.Duration) ServerOption {
	return serverOptionFunc(func(c *serverConfig) {
		if d < 0 {
			c.failf("negative central cache duration")
		}
		c.centralTTL = d
	})
}
