package interceptor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// Server verifies incoming calls. Build it once with [NewServer] and install
// both of its interceptors, so that they share one rule cache and one
// verified-token cache:
//
//	srv, err := interceptor.NewServer(keys,
//		interceptor.WithIssuer("callsign"), interceptor.WithAudience("billing"))
//	...
//	gs := grpc.NewServer(srv.GRPCServerOptions()...)
//
// A Server is safe for concurrent use.
type Server struct {
	cfg          serverConfig
	keys         KeySource
	refresher    KeyRefresher
	alg          token.Algorithm
	clock        Clock
	policy       *policy
	cache        *tokenCache
	centralCache *tokenCache
	sink         AuditSink
	countOnly    *SlogAuditSink // set when allowed calls are only counted
	metrics      *serverMetrics
	errs         statusErrors
}

// NewServer checks the options and returns a [Server] verifying tokens with
// the keys of keys. [WithIssuer] and [WithAudience] are required. keys may be
// nil only when [WithCentralVerification] applies to every method.
func NewServer(keys KeySource, opts ...ServerOption) (*Server, error) {
	c := defaultServerConfig()
	for _, o := range opts {
		o.applyServer(&c)
	}
	if c.issuer == "" {
		c.failf("WithIssuer is required")
	}
	if c.audience == "" {
		c.failf("WithAudience is required")
	}
	if keys == nil && (c.central == nil || !c.centralAll) {
		c.failf("a KeySource is required unless every method is verified centrally")
	}
	if keys != nil {
		if snap, err := keys.KeySnapshot(); err == nil && snap != nil && snap.Algorithm() != c.alg {
			c.failf("the key source holds %s keys, the server expects %s", snap.Algorithm(), c.alg)
		}
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	alg, _ := c.alg.token()
	s := &Server{
		cfg:    c,
		keys:   keys,
		alg:    alg,
		clock:  c.clock,
		policy: newPolicy(&c),
		cache:  newTokenCache(c.cacheSize),
		sink:   c.sink,
		errs:   newStatusErrors(c.audience),
	}
	if r, ok := keys.(KeyRefresher); ok {
		s.refresher = r
	}
	if c.central != nil && c.centralTTL > 0 {
		s.centralCache = newTokenCache(c.cacheSize)
	}
	if s.sink == nil {
		s.sink = NewSlogAuditSink(c.logger, c.logAllowed)
	}
	if ss, ok := s.sink.(*SlogAuditSink); ok && ss.countsOnly() {
		s.countOnly = ss
	}
	if c.registerer != nil {
		m, err := newServerMetrics(c.registerer)
		if err != nil {
			return nil, err
		}
		s.metrics = m
	}
	return s, nil
}

// UnaryServerInterceptor returns a unary interceptor built with [NewServer].
// It panics when the options are invalid; use [NewServer] to get the error
// instead, and to share caches with [StreamServerInterceptor].
func UnaryServerInterceptor(keys KeySource, opts ...ServerOption) grpc.UnaryServerInterceptor {
	return mustServer(keys, opts).UnaryServerInterceptor()
}

// StreamServerInterceptor returns a stream interceptor built with
// [NewServer]. It panics when the options are invalid.
func StreamServerInterceptor(keys KeySource, opts ...ServerOption) grpc.StreamServerInterceptor {
	return mustServer(keys, opts).StreamServerInterceptor()
}

func mustServer(keys KeySource, opts []ServerOption) *Server {
	s, err := NewServer(keys, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// logger is the logger for what is not an audit record.
func (s *Server) logger() *slog.Logger {
	if s.cfg.logger != nil {
		return s.cfg.logger
	}
	return slog.Default()
}

// GRPCServerOptions returns the options that install s on a grpc.Server: both
// interceptors, chained, and the 64 KiB cap on incoming header lists
// ([MaxHeaderListSize]). Append other interceptors after them.
func (s *Server) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(s.StreamServerInterceptor()),
		grpc.MaxHeaderListSize(MaxHeaderListSize),
	}
}

// WarmRules resolves the rules of every method registered on gs ahead of the
// first call.
func (s *Server) WarmRules(gs *grpc.Server) {
	for svc, info := range gs.GetServiceInfo() {
		for _, m := range info.Methods {
			s.policy.get("/" + svc + "/" + m.Name)
		}
	}
}

// UnaryServerInterceptor verifies each unary call (see the package
// documentation for the order of the checks) and runs the handler only when
// the call is allowed, with the verified identity in its context.
func (s *Server) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, _, err := s.authorize(ctx, info.FullMethod, false)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor verifies each stream once, when it opens. Unless
// [WithStreamExpiry] turned it off, the stream ends with Unauthenticated /
// TOKEN_EXPIRED once its service token, or the user token sent with it,
// expires (exp plus the allowed skew):
// the handler's context is cancelled, its SendMsg and RecvMsg fail from then
// on, and the status is sent at once, even while the handler is blocked in
// RecvMsg. To do so the handler runs in a goroutine of its own; a panic in it
// reaches the interceptor's goroutine as usual while the stream lasts.
func (s *Server) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, svc, err := s.authorize(ss.Context(), info.FullMethod, true)
		if err != nil {
			return err
		}
		if !s.cfg.streamExpiry || svc == nil {
			return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
		}
		return s.serveExpiring(ctx, srv, ss, info, handler, svc)
	}
}

// authorize runs the checks of DESIGN.md §5 for one call. It returns the
// handler's context and the verified service token (nil on a public method
// called without one), or the status error to return.
func (s *Server) authorize(ctx context.Context, method string, stream bool) (context.Context, *verified, error) {
	now := s.clock.Now()
	rule := s.policy.get(method)

	// Step 1: the authorization metadata.
	authz := metadata.ValueFromIncomingContext(ctx, MDAuthorization)
	raw, reason := bearerToken(authz)
	userVals := metadata.ValueFromIncomingContext(ctx, MDUserToken)
	switch reason {
	case callsignv1.Reason_REASON_UNSPECIFIED:
	case callsignv1.Reason_REASON_TOKEN_MISSING:
		if rule.needsCredential() {
			return s.denyNew(ctx, method, stream, now, reason, "")
		}
		return s.authorizePublic(ctx, rule, method, stream, now, userVals)
	default:
		return s.denyNew(ctx, method, stream, now, reason, firstValue(authz))
	}

	// Steps 2 to 5: the service token, from the cache or verified in full.
	var snap *KeySnapshot
	svc, snap, reason := s.verifyToken(ctx, raw, token.TypeService, s.cfg.audience, rule.central, now)
	if reason != callsignv1.Reason_REASON_UNSPECIFIED {
		return s.denyNew(ctx, method, stream, now, reason, raw)
	}
	// Step 6: revocation and account status, on every call.
	if snap != nil {
		if r := snap.revocation(svc); r != callsignv1.Reason_REASON_UNSPECIFIED {
			return s.denyVerified(ctx, method, stream, now, r, 0, svc, nil, "")
		}
	}

	// The user token, when sent: verified the same way, for the trust domain.
	user, rawUser, err := s.userToken(ctx, method, stream, now, userVals, rule.central, svc)
	if err != nil {
		return nil, nil, err
	}

	// Step 7: the method's rule.
	tenant, r := s.checkRule(ctx, rule, svc, user)
	if r != callsignv1.Reason_REASON_UNSPECIFIED {
		return s.denyVerified(ctx, method, stream, now, r, 0, svc, user, "")
	}

	// Step 8: one audit record, then the handler.
	ci := svc.svcIdentity
	if user != nil || tenant != svc.tenantID || ci == nil {
		ci = &callIdentity{svc: svc, user: user, tenant: tenant, rawUser: rawUser}
	}
	s.allow(ctx, method, stream, now, svc, user, tenant)
	return context.WithValue(ctx, identityKey{}, ci), svc, nil
}

// authorizePublic admits a call without a service token to a public method.
// A user token that is present must still verify.
func (s *Server) authorizePublic(ctx context.Context, rule *resolvedRule, method string, stream bool, now time.Time, userVals []string) (context.Context, *verified, error) {
	user, rawUser, err := s.userToken(ctx, method, stream, now, userVals, rule.central, nil)
	if err != nil {
		return nil, nil, err
	}
	if rule.rule.RequireIdempotencyKey && !idempotencyKeyOK(ctx) {
		return s.denyVerified(ctx, method, stream, now, callsignv1.Reason_REASON_IDEMPOTENCY_KEY_MISSING, 0, nil, user, "")
	}
	ci := &callIdentity{user: user, rawUser: rawUser}
	if user != nil {
		ci.tenant = user.tenantID
	}
	s.allow(ctx, method, stream, now, nil, user, ci.tenant)
	return context.WithValue(ctx, identityKey{}, ci), nil, nil
}

// userToken verifies the x-user-token values when any were sent, and returns
// the verified user token and its raw form, or the denial (USER_TOKEN_INVALID,
// with the cause in the audit record) when it fails. svc is the caller's
// verified service token, if any, for the audit record.
func (s *Server) userToken(ctx context.Context, method string, stream bool, now time.Time, vals []string, central bool, svc *verified) (*verified, string, error) {
	if len(vals) == 0 {
		return nil, "", nil
	}
	user, raw, cause := s.verifyUser(ctx, vals, central, now)
	if cause != callsignv1.Reason_REASON_UNSPECIFIED {
		_, _, err := s.denyVerified(ctx, method, stream, now, callsignv1.Reason_REASON_USER_TOKEN_INVALID, cause, svc, nil, firstValue(vals))
		return nil, "", err
	}
	return user, raw, nil
}

// verifyUser verifies the x-user-token values: exactly one, a user token for
// the trust domain (audience = issuer id), not revoked.
func (s *Server) verifyUser(ctx context.Context, vals []string, central bool, now time.Time) (*verified, string, callsignv1.Reason) {
	if len(vals) != 1 {
		return nil, "", callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	raw := vals[0]
	if len(raw) > token.MaxTokenSize {
		return nil, "", callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	aud := s.cfg.issuer
	if central {
		aud = ""
	}
	user, snap, r := s.verifyToken(ctx, raw, token.TypeUser, aud, central, now)
	if r != callsignv1.Reason_REASON_UNSPECIFIED {
		return nil, "", r
	}
	if snap != nil {
		if r := snap.revocation(user); r != callsignv1.Reason_REASON_UNSPECIFIED {
			return nil, "", r
		}
	}
	return user, raw, callsignv1.Reason_REASON_UNSPECIFIED
}

// checkRule applies a resolved rule to verified tokens (step 7) and returns
// the call's tenant.
func (s *Server) checkRule(ctx context.Context, rule *resolvedRule, svc, user *verified) (string, callsignv1.Reason) {
	switch rule.state {
	case ruleNone:
		return "", callsignv1.Reason_REASON_NO_POLICY
	case ruleInvalid:
		return "", callsignv1.Reason_REASON_POLICY_INVALID
	}
	r := &rule.rule
	for _, want := range r.Scopes {
		if !svc.hasScope(want) {
			return "", callsignv1.Reason_REASON_SCOPE_MISSING
		}
	}
	if len(r.Callers) > 0 && !slices.Contains(r.Callers, svc.subject) {
		return "", callsignv1.Reason_REASON_CALLER_NOT_ALLOWED
	}
	if r.RequireUser && user == nil {
		return "", callsignv1.Reason_REASON_USER_TOKEN_MISSING
	}
	tenant := svc.tenantID
	if user != nil && user.tenantID != "" {
		if tenant != "" && tenant != user.tenantID {
			return "", callsignv1.Reason_REASON_TENANT_MISMATCH
		}
		tenant = user.tenantID
	}
	if r.RequireTenant && tenant == "" {
		return "", callsignv1.Reason_REASON_TENANT_MISSING
	}
	if r.RequireIdempotencyKey && !idempotencyKeyOK(ctx) {
		return "", callsignv1.Reason_REASON_IDEMPOTENCY_KEY_MISSING
	}
	return tenant, callsignv1.Reason_REASON_UNSPECIFIED
}

func idempotencyKeyOK(ctx context.Context) bool {
	v := metadata.ValueFromIncomingContext(ctx, MDIdempotencyKey)
	return len(v) == 1 && safeID(v[0])
}

// verifyToken returns the verified claims of raw, from the cache or by steps 2
// to 5 of DESIGN.md §5 (or AuthService.Verify when central), with the key
// snapshot used, or the reason it fails.
func (s *Server) verifyToken(ctx context.Context, raw string, typ token.Type, aud string, central bool, now time.Time) (*verified, *KeySnapshot, callsignv1.Reason) {
	var snap *KeySnapshot
	if s.keys != nil {
		var err error
		if snap, err = s.keys.KeySnapshot(); err != nil || snap == nil {
			if !central {
				return nil, nil, callsignv1.Reason_REASON_KEYS_UNAVAILABLE
			}
			snap = nil // central verification checks revocation itself
		}
	}
	if central {
		v, r := s.verifyCentral(ctx, raw, typ, aud, now)
		return v, snap, r
	}
	if v := s.cache.get(raw, typ, now); v != nil {
		// The key that signed it must still be published.
		if k, ok := snap.lookup(v.kid); ok && v.signedBy(k) {
			s.metrics.cacheLookup(true)
			return v, snap, callsignv1.Reason_REASON_UNSPECIFIED
		}
	}
	s.metrics.cacheLookup(false)
	if headerListSize(ctx) > MaxHeaderListSize {
		return nil, snap, callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	p, err := token.Parse(raw, s.alg, typ)
	if err != nil {
		return nil, snap, tokenReason(err)
	}
	key, ok := snap.lookup(p.KID)
	if !ok && s.refresher != nil {
		if fresh, err := s.refresher.RefreshKeys(ctx); err == nil && fresh != nil {
			snap = fresh
			key, ok = snap.lookup(p.KID)
		}
	}
	if !ok {
		return nil, snap, callsignv1.Reason_REASON_KEY_UNKNOWN
	}
	if err := p.VerifySignature(key); err != nil {
		return nil, snap, callsignv1.Reason_REASON_SIGNATURE_INVALID
	}
	claims, err := p.Claims(token.Expect{
		Issuer:      s.cfg.issuer,
		Audience:    aud,
		Type:        typ,
		Now:         now,
		Skew:        tokenSkew(s.cfg.skew),
		MaxLifetime: s.cfg.maxLifetime,
	})
	if err != nil {
		return nil, snap, tokenReason(err)
	}
	v := newVerified(claims, key.ID) // the key set's copy of the kid: one string less per cached token
	v.pub = key.Public
	s.cache.put(raw, v, claims.Expiry)
	s.metrics.verified(s.clock.Now().Sub(now))
	return v, snap, callsignv1.Reason_REASON_UNSPECIFIED
}

// tokenSkew is skew as [token.Expect] takes it. There zero means the default
// of 30 s, so a skew configured as zero is passed as one nanosecond, the
// smallest skew it takes.
func tokenSkew(skew time.Duration) time.Duration {
	return max(skew, time.Nanosecond)
}

// headerListSize is the size of the incoming header list as HTTP/2 counts it.
// It copies the metadata, so it runs only when a token is not in the cache.
func headerListSize(ctx context.Context) int {
	md, _ := metadata.FromIncomingContext(ctx)
	n := 0
	for k, vs := range md {
		for _, v := range vs {
			n += len(k) + len(v) + 32
		}
	}
	return n
}

// bearerToken extracts the token from the authorization values: exactly one
// value, the scheme "Bearer" in any case, exactly one space, at most
// [MaxAuthorizationSize] bytes in all. It returns REASON_TOKEN_MISSING when
// there is no value and REASON_TOKEN_MALFORMED for anything else that is
// wrong. The token's own syntax is checked by the token parser.
func bearerToken(vals []string) (string, callsignv1.Reason) {
	switch len(vals) {
	case 0:
		return "", callsignv1.Reason_REASON_TOKEN_MISSING
	case 1:
	default:
		return "", callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	v := vals[0]
	const prefix = len("Bearer ")
	if len(v) <= prefix || len(v) > MaxAuthorizationSize || v[prefix-1] != ' ' {
		return "", callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	for i, c := range []byte("bearer") {
		if v[i]|0x20 != c {
			return "", callsignv1.Reason_REASON_TOKEN_MALFORMED
		}
	}
	tok := v[prefix:]
	if tok[0] == ' ' {
		return "", callsignv1.Reason_REASON_TOKEN_MALFORMED
	}
	return tok, callsignv1.Reason_REASON_UNSPECIFIED
}

func firstValue(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// allow records an allowed call. With the default sink that only counts, it
// builds no record.
func (s *Server) allow(ctx context.Context, method string, stream bool, start time.Time, svc, user *verified, tenant string) {
	s.metrics.decision(true, callsignv1.Reason_REASON_UNSPECIFIED)
	if s.countOnly != nil {
		s.countOnly.allowed.Add(1)
		return
	}
	rec := s.baseRecord(ctx, method, stream, start)
	rec.Decision = DecisionAllow
	rec.Code = codes.OK
	fillVerified(&rec, svc, user, tenant)
	rec.Latency = s.clock.Now().Sub(start)
	s.sink.Audit(ctx, rec)
}

// denyNew denies a call whose service token was not verified; raw, when set,
// appears in the record only as a short hash.
func (s *Server) denyNew(ctx context.Context, method string, stream bool, start time.Time, r callsignv1.Reason, raw string) (context.Context, *verified, error) {
	rec := s.baseRecord(ctx, method, stream, start)
	rec.TokenHash = tokenHash(raw)
	return nil, nil, s.deny(ctx, &rec, r)
}

// denyVerified denies a call after its tokens were (partly) verified.
func (s *Server) denyVerified(ctx context.Context, method string, stream bool, start time.Time, r, cause callsignv1.Reason, svc, user *verified, unverified string) (context.Context, *verified, error) {
	rec := s.baseRecord(ctx, method, stream, start)
	rec.Cause = cause
	rec.TokenHash = tokenHash(unverified)
	fillVerified(&rec, svc, user, "")
	return nil, nil, s.deny(ctx, &rec, r)
}

func (s *Server) deny(ctx context.Context, rec *AuditRecord, r callsignv1.Reason) error {
	rec.Decision = DecisionDeny
	rec.Reason = r
	rec.Code = codeOf(r)
	rec.Latency = s.clock.Now().Sub(rec.Time)
	s.metrics.decision(false, r)
	s.sink.Audit(ctx, *rec)
	return s.errs.get(r)
}

func (s *Server) baseRecord(ctx context.Context, method string, stream bool, start time.Time) AuditRecord {
	ri := requestInfoFromMetadata(ctx)
	rec := AuditRecord{
		Time:          start,
		Method:        method,
		Stream:        stream,
		Audience:      s.cfg.audience,
		CorrelationID: ri.CorrelationID,
		RequestID:     ri.RequestID,
		TraceID:       ri.TraceID,
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		rec.Peer = p.Addr.String()
	}
	return rec
}

func fillVerified(rec *AuditRecord, svc, user *verified, tenant string) {
	if svc != nil {
		rec.Caller = svc.subject
		rec.TokenID = svc.id
		rec.Central = svc.central
	}
	if user != nil {
		rec.User = user.subject
	}
	rec.Tenant = tenant
}

// identityStream gives a handler the context with the verified identity.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context //nolint:containedctx // a stream carries its context
}

func (w *identityStream) Context() context.Context { return w.ctx }

func (s *Server) String() string {
	return fmt.Sprintf("interceptor.Server{issuer: %q, audience: %q}", s.cfg.issuer, s.cfg.audience)
}
