package interceptor

// Metadata keys of the wire contract (DESIGN.md §2). gRPC keys are lowercase.
const (
	// MDAuthorization carries "Bearer <service token>", exactly one value.
	MDAuthorization = "authorization"
	// MDUserToken carries the user-context token, at most one value.
	MDUserToken = "x-user-token"
	// MDCorrelationID carries the workflow id, created at the edge and forwarded.
	MDCorrelationID = "x-correlation-id"
	// MDRequestID carries a new id for each outgoing call attempt.
	MDRequestID = "x-request-id"
	// MDTraceparent and MDTracestate carry W3C trace context, forwarded.
	MDTraceparent = "traceparent"
	MDTracestate  = "tracestate"
	// MDIdempotencyKey is forwarded where present and required where a rule says so.
	MDIdempotencyKey = "idempotency-key"
)
