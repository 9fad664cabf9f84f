// Package interceptor gives every gRPC call between services a verifiable
// identity: server interceptors verify the caller's short-lived service token
// and enforce the rule that each RPC declares in its own .proto file; client
// interceptors attach tokens and forward the user and trace context.
//
// # Server side
//
// Build one [Server] with [NewServer] from a [KeySource] ([NewLiveKeySource]
// in production, fed by callsignd's AuthService.GetKeys; [NewStaticKeySource]
// for a fixed JWKS) and install its interceptors:
//
//	keys, err := interceptor.NewLiveKeySource(ctx, callsignv1.NewAuthServiceClient(conn))
//	srv, err := interceptor.NewServer(keys,
//		interceptor.WithIssuer("callsign"),
//		interceptor.WithAudience("billing"),
//		interceptor.WithRule("/grpc.health.v1.Health/Check", interceptor.Rule{Public: true}),
//	)
//	gs := grpc.NewServer(srv.GRPCServerOptions()...)
//	// register services, then refuse to start if any method lacks a rule:
//	if missing := srv.CheckServer(gs); len(missing) > 0 { ... }
//
// [UnaryServerInterceptor] and [StreamServerInterceptor] build a Server each,
// in the style of go-grpc-middleware, for servers that need only one of them.
//
// Handlers read the verified identity with [CallerFromContext],
// [UserFromContext], [TenantFromContext] and [RequestInfoFromContext]. Tests of
// handlers build such a context with [NewContextWithIdentity].
//
// # Order of the checks
//
// Every call is checked in this order, each step cheaper than the next, and the
// handler runs only when all pass:
//
//  1. Metadata: exactly one authorization value, "Bearer" in any case and one
//     space, at most [MaxAuthorizationSize] bytes; at most one x-user-token. A
//     public method admits a call without authorization. The whole header list
//     is capped at [MaxHeaderListSize] by the transport when the server is
//     built with [Server.GRPCServerOptions], and checked again by the
//     interceptor whenever a token is not in the cache.
//  2. The token's compact form, header allow-list, pinned algorithm and type.
//  3. The key by kid; an unknown kid makes a [KeyRefresher] fetch once
//     (coalesced, rate-limited).
//  4. The signature.
//  5. The claims: issuer, audience (this server's id; the issuer id for user
//     tokens), dates with the allowed skew, lifetime.
//  6. Revocation by token id, by account and time, and disabled accounts: on
//     every call, even when steps 2 to 5 were answered by the verified-token
//     cache. The user token, when sent, goes through steps 2 to 6 too.
//  7. The method's [Rule]: scopes, callers, user, tenant (from verified claims
//     only), idempotency key.
//  8. One [AuditRecord] to the [AuditSink], then the handler.
//
// # Streams
//
// A stream is verified once, when it opens. Unless [WithStreamExpiry] turns it
// off, it ends with Unauthenticated / TOKEN_EXPIRED when the service token that
// opened it, or the user token sent with it, expires (exp plus the allowed
// skew), even while its handler waits for a message: the handler's context is
// cancelled and its further sends and receives fail. The expiry is timed on
// the server's [Clock]. Revocation and account status are checked again on
// every message: a stream whose token was revoked, or whose account was
// disabled, since it opened ends at its next message with TOKEN_REVOKED or
// ACCOUNT_DISABLED (USER_TOKEN_INVALID for its user token).
//
// # Key sources
//
// A [KeySource] returns an immutable [KeySnapshot]: a validated key set (public
// keys only, unique kids, the pinned algorithm, exact sizes) with revocation
// state. [LiveKeySource] blocks until its first fetch, refreshes on the
// server's hint with jitter, fetches again at most once per
// [DefaultUnknownKIDInterval] when a token names an unknown kid, keeps the last
// good snapshot when fetches fail and refuses to serve it after
// [DefaultMaxStaleness]. [StaticKeySource] holds a fixed JWKS.
//
// # Audit and metrics
//
// Every decision produces one [AuditRecord]. The default sink
// ([NewSlogAuditSink]) logs denials and counts allowed calls; [WithLogAllowed]
// logs those too. [WithMetrics] and [WithKeyMetrics] register Prometheus
// metrics with the registerer given, never with the global one.
//
// # Rules
//
// A method's rule comes from, in order: [WithRule], [WithServiceRule], any
// [RuleResolver], the descriptors of [WithDescriptors], and the protobuf
// global registry, where it is the callsign.v1.method option of the method or,
// failing that, the default_scopes of the callsign.v1.service option. Rules are
// resolved once per method and cached. A method without a rule is denied, and
// a contradictory rule (public with scopes, callers or user requirements) is a
// broken policy. [CheckServer] lists the methods of a grpc.Server that lack a
// usable rule.
//
// # Codes
//
// Every refusal is a status with a fixed message and a google.rpc.ErrorInfo
// detail of domain [ErrorDomain] whose reason is a callsignv1.Reason name
// without its REASON_ prefix ([ReasonFromError] reads it back), and whose
// metadata names the refusing server's own audience under [ErrorInfoAudience],
// so that a client retries only refusals of the server it called, not errors
// that a handler passed on from a call of its own. Nothing the caller sent
// appears in a status or a log; a token that fails verification is logged only
// as a short hash.
//
//   - Unauthenticated: TOKEN_MISSING, TOKEN_MALFORMED (also several values,
//     oversized metadata), SIGNATURE_INVALID, TOKEN_EXPIRED (also a stream whose
//     token expired), TOKEN_NOT_YET_VALID, LIFETIME_TOO_LONG, KEY_UNKNOWN,
//     ISSUER_MISMATCH, AUDIENCE_MISMATCH, TYPE_MISMATCH, TOKEN_REVOKED,
//     ACCOUNT_DISABLED, USER_TOKEN_MISSING, USER_TOKEN_INVALID.
//   - PermissionDenied: SCOPE_MISSING, CALLER_NOT_ALLOWED, TENANT_MISSING,
//     TENANT_MISMATCH, NO_POLICY.
//   - InvalidArgument: IDEMPOTENCY_KEY_MISSING.
//   - Unavailable: KEYS_UNAVAILABLE (keys never loaded or too stale, or the
//     central verifier could not be reached).
//   - Internal: POLICY_INVALID.
//
// # Client side
//
// A calling service builds one [TokenSource] per credential with
// [NewTokenSource] and [PrivateKeyJWT] (an Ed25519 key whose public half is
// registered with callsignd) or [ClientSecret], and installs
// [UnaryClientInterceptor] and [StreamClientInterceptor] on its connections, or
// [PerRPCCredentials] where a grpc.CallOption fits better. The interceptors
// attach the token for the target's audience (from [WithTargetAudience] or the
// service's callsign.v1.service option), forward x-user-token,
// x-correlation-id, traceparent and tracestate from the incoming context when
// the call is made inside a handler, and set a fresh x-request-id per attempt.
// A unary call refused with TOKEN_EXPIRED, KEY_UNKNOWN or TOKEN_REVOKED by the
// server it called is retried once with a fresh token. At the edge,
// [NewUserTokenSource] obtains user-context tokens and [WithUserToken] puts one
// on the outgoing context.
//
// Client-side codes: Unavailable / TOKEN_UNAVAILABLE when no valid token can be
// obtained (the error wraps an [*IssueError]); Internal when a method has no
// audience or authorization metadata is already set; InvalidArgument for an
// invalid [EdgeUser]; Unauthenticated when [PerRPCCredentials] sees a
// connection without privacy and integrity and insecure transport was not
// allowed.
//
// # Concurrency and cost
//
// Everything exported is safe for concurrent use. On the hot path (a token
// already in the verified-token cache) the server interceptor reads two
// metadata keys without copying the metadata map, hashes the token in place,
// checks revocation and the rule with map lookups, and logs nothing for allowed
// calls unless asked.
package interceptor
