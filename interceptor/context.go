package interceptor

import (
	"context"
	"slices"
	"time"

	"google.golang.org/grpc/metadata"
)

// Caller is the calling service, as verified from its service token.
type Caller struct {
	// ServiceID is the token's sub: a plain service name or a SPIFFE id.
	ServiceID string
	// Scopes are the scopes the token grants for this service.
	Scopes []string
	// TokenID is the token's jti.
	TokenID string
	// Expiry is the token's exp.
	Expiry time.Time
	// TenantID is the token's tenant_id, set only on tenant-scoped tokens.
	TenantID string
}

// HasScope reports whether the caller's token carries scope.
func (c Caller) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// User is the end user a call chain runs for, as verified from the user-context
// token (metadata x-user-token).
type User struct {
	// ID is the token's sub.
	ID string
	// TenantID is the user's tenant.
	TenantID string
	// Roles are the user's roles.
	Roles []string
	// AssertedBy is the service that asserted the user (act.sub), normally the
	// edge that authenticated them.
	AssertedBy string
	// TokenID is the token's jti.
	TokenID string
	// Expiry is the token's exp.
	Expiry time.Time
}

// RequestInfo identifies a call for tracing and audit. The ids are taken from
// incoming metadata and kept only when they are short printable ASCII without
// spaces (at most 128 bytes); they are not verified.
type RequestInfo struct {
	// CorrelationID is the workflow id (x-correlation-id).
	CorrelationID string
	// RequestID is the id of this call attempt (x-request-id).
	RequestID string
	// TraceID is the W3C trace id of the traceparent metadata, 32 lowercase hex
	// digits.
	TraceID string
}

// Identity is everything the server interceptor puts into a handler's context.
// It is used with [NewContextWithIdentity].
type Identity struct {
	// Caller is the calling service; nil on a public method called without a
	// token.
	Caller *Caller
	// User is the end user; nil when no user token was sent.
	User *User
	// Tenant is the tenant from the verified claims; empty when none.
	Tenant string
	// Request holds the correlation, request and trace ids.
	Request RequestInfo
}

type identityKey struct{}

// callIdentity is the value the interceptor stores in the context. It points at
// immutable verified data shared with the token cache; accessors copy.
type callIdentity struct {
	svc     *verified
	user    *verified
	tenant  string
	rawUser string
	request *RequestInfo // set by NewContextWithIdentity; nil means "read metadata"
}

// NewContextWithIdentity returns a copy of ctx carrying id, as the server
// interceptor would have stored it. It is meant for tests of handlers that read
// [CallerFromContext] and the other accessors; a server never needs it.
func NewContextWithIdentity(ctx context.Context, id Identity) context.Context {
	ci := &callIdentity{tenant: id.Tenant}
	if id.Caller != nil {
		ci.svc = &verified{
			subject:  id.Caller.ServiceID,
			scopes:   slices.Clone(id.Caller.Scopes),
			id:       id.Caller.TokenID,
			expiry:   id.Caller.Expiry,
			tenantID: id.Caller.TenantID,
		}
	}
	if id.User != nil {
		ci.user = &verified{
			subject:  id.User.ID,
			tenantID: id.User.TenantID,
			roles:    slices.Clone(id.User.Roles),
			actor:    id.User.AssertedBy,
			id:       id.User.TokenID,
			expiry:   id.User.Expiry,
		}
	}
	ri := id.Request
	ci.request = &ri
	return context.WithValue(ctx, identityKey{}, ci)
}

func identityFrom(ctx context.Context) (*callIdentity, bool) {
	ci, ok := ctx.Value(identityKey{}).(*callIdentity)
	return ci, ok && ci != nil
}

// CallerFromContext returns the calling service of the call whose handler got
// ctx, and false on a public method called without a service token or when ctx
// did not pass through the server interceptor. The returned value is a copy.
func CallerFromContext(ctx context.Context) (Caller, bool) {
	ci, ok := identityFrom(ctx)
	if !ok || ci.svc == nil {
		return Caller{}, false
	}
	v := ci.svc
	return Caller{
		ServiceID: v.subject,
		Scopes:    slices.Clone(v.scopes),
		TokenID:   v.id,
		Expiry:    v.expiry,
		TenantID:  v.tenantID,
	}, true
}

// UserFromContext returns the verified end user of the call, and false when the
// call carried no user token. The returned value is a copy.
func UserFromContext(ctx context.Context) (User, bool) {
	ci, ok := identityFrom(ctx)
	if !ok || ci.user == nil {
		return User{}, false
	}
	v := ci.user
	return User{
		ID:         v.subject,
		TenantID:   v.tenantID,
		Roles:      slices.Clone(v.roles),
		AssertedBy: v.actor,
		TokenID:    v.id,
		Expiry:     v.expiry,
	}, true
}

// TenantFromContext returns the tenant of the call, taken only from verified
// claims (the user token's tenant_id, else the service token's), and false when
// there is none. A tenant sent in plain metadata never counts.
func TenantFromContext(ctx context.Context) (string, bool) {
	ci, ok := identityFrom(ctx)
	if !ok || ci.tenant == "" {
		return "", false
	}
	return ci.tenant, true
}

// RequestInfoFromContext returns the correlation, request and trace ids of the
// call, and false when ctx did not pass through the server interceptor. The ids
// are read from the incoming metadata when asked for, so that calls whose
// handlers never ask pay nothing for them.
func RequestInfoFromContext(ctx context.Context) (RequestInfo, bool) {
	ci, ok := identityFrom(ctx)
	if !ok {
		return RequestInfo{}, false
	}
	if ci.request != nil {
		return *ci.request, true
	}
	return requestInfoFromMetadata(ctx), true
}

// userTokenFromContext returns the raw user token the call carried, after it
// was verified, so that outgoing calls can forward it unchanged.
func userTokenFromContext(ctx context.Context) (string, bool) {
	ci, ok := identityFrom(ctx)
	if !ok || ci.user == nil || ci.rawUser == "" {
		return "", false
	}
	return ci.rawUser, true
}

// requestInfoFromMetadata reads the ids from the incoming metadata, dropping
// any that are not safe to log.
func requestInfoFromMetadata(ctx context.Context) RequestInfo {
	var ri RequestInfo
	if v := metadata.ValueFromIncomingContext(ctx, MDCorrelationID); len(v) == 1 && safeID(v[0]) {
		ri.CorrelationID = v[0]
	}
	if v := metadata.ValueFromIncomingContext(ctx, MDRequestID); len(v) == 1 && safeID(v[0]) {
		ri.RequestID = v[0]
	}
	if v := metadata.ValueFromIncomingContext(ctx, MDTraceparent); len(v) == 1 {
		ri.TraceID, _ = traceIDFromTraceparent(v[0])
	}
	return ri
}

// maxIDLength bounds correlation, request and idempotency ids.
const maxIDLength = 128

// safeID reports whether s is 1 to 128 printable ASCII characters without
// spaces: safe to log and to compare.
func safeID(s string) bool {
	if len(s) == 0 || len(s) > maxIDLength {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// traceIDFromTraceparent extracts the trace id of a W3C traceparent
// ("00-<32 hex>-<16 hex>-<2 hex>"). Version ff, all-zero ids and upper-case hex
// are refused. Future versions may append fields after a dash.
func traceIDFromTraceparent(tp string) (string, bool) {
	const minLen = 55
	if len(tp) < minLen || (len(tp) > minLen && tp[minLen] != '-') {
		return "", false
	}
	if tp[2] != '-' || tp[35] != '-' || tp[52] != '-' {
		return "", false
	}
	version, traceID, parentID, flags := tp[0:2], tp[3:35], tp[36:52], tp[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return "", false
	}
	if version == "00" && len(tp) != minLen {
		return "", false
	}
	if allZero(traceID) || allZero(parentID) {
		return "", false
	}
	return traceID, true
}

func lowerHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := range len(s) {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
