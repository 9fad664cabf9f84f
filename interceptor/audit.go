package interceptor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Decision is the outcome recorded in an [AuditRecord].
type Decision uint8

// The decisions.
const (
	DecisionDeny  Decision = 0
	DecisionAllow Decision = 1
)

func (d Decision) String() string {
	if d == DecisionAllow {
		return "allow"
	}
	return "deny"
}

// AuditRecord describes one decision of the server interceptor. It never holds
// a raw token, a secret or unverified text: the ids taken from metadata are
// kept only when they are short printable ASCII (see [RequestInfo]), and a
// token that could not be verified appears only as [AuditRecord.TokenHash].
type AuditRecord struct {
	Time     time.Time
	Decision Decision
	// Reason is why the call was denied; REASON_UNSPECIFIED when allowed.
	Reason callsignv1.Reason
	// Cause refines Reason where one reason covers several causes: for
	// USER_TOKEN_INVALID, the failure of the user token itself (for example
	// TOKEN_EXPIRED).
	Cause callsignv1.Reason
	// Code is the status code returned; OK when allowed.
	Code codes.Code
	// Method is the full method name.
	Method string
	// Stream is true for streaming RPCs.
	Stream bool
	// Caller is the verified calling service; empty when not verified.
	Caller string
	// Audience is this server's own audience.
	Audience string
	// User and Tenant come from verified claims only.
	User   string
	Tenant string
	// TokenID is the verified service token's jti.
	TokenID string
	// TokenHash identifies a token that failed verification: the first 12 hex
	// digits of its SHA-256.
	TokenHash string
	// Central is true when the token was verified by AuthService.Verify.
	Central bool
	// CorrelationID, RequestID and TraceID come from metadata (see
	// [RequestInfo]).
	CorrelationID string
	RequestID     string
	TraceID       string
	// Peer is the remote address.
	Peer string
	// Latency is the time the interceptor spent deciding.
	Latency time.Duration
}

// AuditSink receives one record per decision, synchronously, before the handler
// runs (allowed calls) or the status is returned (denials). It must be safe for
// concurrent use and should not block; it must not keep ctx.
type AuditSink interface {
	Audit(ctx context.Context, rec AuditRecord)
}

// AuditSinkFunc adapts a function to [AuditSink].
type AuditSinkFunc func(ctx context.Context, rec AuditRecord)

// Audit calls f.
func (f AuditSinkFunc) Audit(ctx context.Context, rec AuditRecord) { f(ctx, rec) }

// SlogAuditSink is the default [AuditSink]: it logs every denial at level Warn,
// and counts allowed calls without logging them unless asked to. It is safe
// for concurrent use.
type SlogAuditSink struct {
	logger     *slog.Logger
	logAllowed bool
	allowed    atomic.Uint64
	denied     atomic.Uint64
}

// NewSlogAuditSink returns a sink that logs to logger (nil means
// [slog.Default]). With logAllowed, allowed calls are logged too, at level
// Info.
func NewSlogAuditSink(logger *slog.Logger, logAllowed bool) *SlogAuditSink {
	if logger == nil {
		logger = slog.Default()
	}
	return &SlogAuditSink{logger: logger, logAllowed: logAllowed}
}

// Allowed is the number of allowed calls seen.
func (s *SlogAuditSink) Allowed() uint64 { return s.allowed.Load() }

// Denied is the number of denied calls seen.
func (s *SlogAuditSink) Denied() uint64 { return s.denied.Load() }

// Audit logs or counts rec.
func (s *SlogAuditSink) Audit(ctx context.Context, rec AuditRecord) {
	if rec.Decision == DecisionAllow {
		s.allowed.Add(1)
		if !s.logAllowed {
			return
		}
		s.logger.LogAttrs(ctx, slog.LevelInfo, "callsign: call allowed", rec.attrs()...)
		return
	}
	s.denied.Add(1)
	s.logger.LogAttrs(ctx, slog.LevelWarn, "callsign: call denied", rec.attrs()...)
}

// countsOnly reports whether allowed calls need no record at all.
func (s *SlogAuditSink) countsOnly() bool { return !s.logAllowed }

func (rec *AuditRecord) attrs() []slog.Attr {
	a := make([]slog.Attr, 0, 20)
	a = append(a,
		slog.String("decision", rec.Decision.String()),
		slog.String("method", rec.Method),
		slog.String("code", rec.Code.String()),
		slog.String("audience", rec.Audience),
		slog.Duration("latency", rec.Latency),
	)
	add := func(k, v string) {
		if v != "" {
			a = append(a, slog.String(k, v))
		}
	}
	if rec.Reason != callsignv1.Reason_REASON_UNSPECIFIED {
		add("reason", ReasonName(rec.Reason))
	}
	if rec.Cause != callsignv1.Reason_REASON_UNSPECIFIED {
		add("cause", ReasonName(rec.Cause))
	}
	if rec.Stream {
		a = append(a, slog.Bool("stream", true))
	}
	if rec.Central {
		a = append(a, slog.Bool("central", true))
	}
	add("caller", rec.Caller)
	add("user", rec.User)
	add("tenant", rec.Tenant)
	add("jti", rec.TokenID)
	add("token_hash", rec.TokenHash)
	add("correlation_id", rec.CorrelationID)
	add("request_id", rec.RequestID)
	add("trace_id", rec.TraceID)
	add("peer", rec.Peer)
	return a
}

// tokenHash is the short hash under which an unverifiable token is logged.
func tokenHash(raw string) string {
	if raw == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:6])
}
