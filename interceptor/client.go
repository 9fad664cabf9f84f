package interceptor

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// ClientOption configures [UnaryClientInterceptor], [StreamClientInterceptor]
// and [PerRPCCredentials].
type ClientOption func(*clientConfig)

type clientConfig struct {
	audience    string
	descriptors []DescriptorResolver
	newIDs      func() (string, string)
}

// WithTargetAudience sets the audience of every call made through the
// connection, instead of reading it from the target service's
// callsign.v1.service option.
func WithTargetAudience(audience string) ClientOption {
	return func(c *clientConfig) { c.audience = audience }
}

// WithClientDescriptors adds a source of service descriptors, such as a
// [protoregistry.Files] built at run time, where the calling side looks up the
// services it calls (their callsign.v1.service audience and which methods are
// public). Sources are consulted in the order given, then
// [protoregistry.GlobalFiles]. Options carried as unknown fields are
// understood. A nil d is ignored.
func WithClientDescriptors(d DescriptorResolver) ClientOption {
	return func(c *clientConfig) {
		if d != nil {
			c.descriptors = append(c.descriptors, d)
		}
	}
}

// UnaryClientInterceptor attaches callsign credentials and context to every
// unary call made through a connection:
//
//   - authorization: "Bearer <token>" from ts for the target's audience: the
//     one set by [WithTargetAudience], else the audience of the target service's
//     callsign.v1.service option (looked up once per method and cached). A
//     call whose audience cannot be told fails with Internal before anything
//     is sent. Methods whose rule is public get no token (so that
//     AuthService.IssueToken itself never needs one). A call whose outgoing
//     context already carries authorization fails with Internal: callsign
//     would otherwise send two.
//   - x-user-token, x-correlation-id, traceparent and tracestate are copied
//     from the incoming context when the call is made inside a handler, unless
//     the caller already put them on the outgoing context. x-user-token and
//     traceparent are copied only when they have exactly one value. Trace
//     context instrumentation such as OpenTelemetry's keeps working: a
//     traceparent it put on the outgoing context is left alone, and one it
//     sets later replaces the copy.
//   - x-correlation-id is created (128 random bits) when neither context has
//     one: this call starts the workflow.
//   - x-request-id: a new random id for every attempt, unless the caller set
//     one.
//   - idempotency-key is never copied from the incoming context: a handler
//     that makes two calls would send the same key twice and the second call
//     could be dropped as a duplicate. A caller that needs one puts it on the
//     outgoing context itself.
//
// When a call fails with Unauthenticated and an ErrorInfo (domain
// callsign.dev) with reason TOKEN_EXPIRED, KEY_UNKNOWN or TOKEN_REVOKED, the
// token is dropped from ts ([TokenSource.Invalidate]) and the call is retried
// exactly once with a fresh token, when ts gives a different one. A refusal
// whose ErrorInfo names another audience ([ErrorInfoAudience]) was passed on
// by a handler from a call of its own: it is neither retried nor a reason to
// drop the token.
//
// Failing to obtain a token fails the call with the error of
// [TokenSource.Token] (Unavailable, TOKEN_UNAVAILABLE). Options are evaluated
// once. The interceptor is safe for concurrent use.
func UnaryClientInterceptor(ts TokenSource, opts ...ClientOption) grpc.UnaryClientInterceptor {
	c := newClientAttacher(ts, opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		tgt := c.target(method)
		if tgt.err != nil {
			return tgt.err
		}
		out, tok, corr, err := c.attach(ctx, tgt, "")
		if err != nil {
			return err
		}
		err = invoker(out, method, req, reply, cc, callOpts...)
		if err == nil || tok == "" || !retryableRefusal(err, tgt.audience) {
			return err
		}
		c.ts.Invalidate(tgt.audience, tok)
		out, tok2, _, err2 := c.attach(ctx, tgt, corr)
		if err2 != nil || tok2 == tok {
			return err
		}
		return invoker(out, method, req, reply, cc, callOpts...)
	}
}

// StreamClientInterceptor is the streaming form of [UnaryClientInterceptor]:
// the same metadata is attached when the stream opens. A stream is never
// retried; when it ends with TOKEN_EXPIRED, KEY_UNKNOWN or TOKEN_REVOKED the
// token is dropped from ts so that the next call gets a fresh one.
func StreamClientInterceptor(ts TokenSource, opts ...ClientOption) grpc.StreamClientInterceptor {
	c := newClientAttacher(ts, opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		tgt := c.target(method)
		if tgt.err != nil {
			return nil, tgt.err
		}
		out, tok, _, err := c.attach(ctx, tgt, "")
		if err != nil {
			return nil, err
		}
		cs, err := streamer(out, desc, cc, method, callOpts...)
		if tok == "" {
			return cs, err
		}
		if err != nil {
			if retryableRefusal(err, tgt.audience) {
				c.ts.Invalidate(tgt.audience, tok)
			}
			return cs, err
		}
		return &clientStream{ClientStream: cs, ts: c.ts, audience: tgt.audience, token: tok}, nil
	}
}

// clientStream watches a stream's errors for a refused token.
type clientStream struct {
	grpc.ClientStream
	ts       TokenSource
	audience string
	token    string
	checked  atomic.Bool
}

func (s *clientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && !errors.Is(err, io.EOF) {
		s.check(err)
	}
	return err
}

func (s *clientStream) Header() (metadata.MD, error) {
	md, err := s.ClientStream.Header()
	if err != nil {
		s.check(err)
	}
	return md, err
}

func (s *clientStream) check(err error) {
	if !s.checked.Swap(true) && retryableRefusal(err, s.audience) {
		s.ts.Invalidate(s.audience, s.token)
	}
}

// retryableRefusal reports whether err is Unauthenticated with a callsign
// reason that a fresh token may cure, from the server of audience (see
// [ErrorInfoAudience]).
func retryableRefusal(err error, audience string) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unauthenticated {
		return false
	}
	r, from, ok := callsignReasonProto(st.Proto())
	return ok && refreshCures(r) && (from == "" || from == audience)
}

// refreshCures reports whether a fresh token may cure a refusal for r.
func refreshCures(r callsignv1.Reason) bool {
	switch r {
	case callsignv1.Reason_REASON_TOKEN_EXPIRED, callsignv1.Reason_REASON_KEY_UNKNOWN, callsignv1.Reason_REASON_TOKEN_REVOKED:
		return true
	default:
		return false
	}
}

// clientAttacher holds what the client interceptors and PerRPCCredentials
// share.
type clientAttacher struct {
	ts     TokenSource
	bearer bearerSource // ts, when it is one of ours
	cfg    clientConfig

	targets   atomic.Pointer[map[string]*clientTarget] // copy-on-write
	targetsMu sync.Mutex
}

// clientTarget is what the calling side knows about one method.
type clientTarget struct {
	audience string
	public   bool  // the method's rule is public: no token
	err      error // the audience cannot be told
}

// maxCachedTargets bounds the per-method cache.
const maxCachedTargets = 4096

func newClientAttacher(ts TokenSource, opts []ClientOption) *clientAttacher {
	if ts == nil {
		panic("interceptor: nil TokenSource")
	}
	c := &clientAttacher{ts: ts}
	c.bearer, _ = ts.(bearerSource)
	for _, o := range opts {
		o(&c.cfg)
	}
	c.cfg.descriptors = append(c.cfg.descriptors, protoregistry.GlobalFiles)
	if c.cfg.newIDs == nil {
		c.cfg.newIDs = newRandomIDs
	}
	empty := map[string]*clientTarget{}
	c.targets.Store(&empty)
	return c
}

// target returns what is known about method, resolving it once.
func (c *clientAttacher) target(method string) *clientTarget {
	if t := (*c.targets.Load())[method]; t != nil {
		return t
	}
	t := resolveTarget(c.cfg.descriptors, c.cfg.audience, method)
	c.targetsMu.Lock()
	defer c.targetsMu.Unlock()
	old := *c.targets.Load()
	if prev := old[method]; prev != nil {
		return prev
	}
	if len(old) < maxCachedTargets {
		next := make(map[string]*clientTarget, len(old)+1)
		maps.Copy(next, old)
		next[method] = t
		c.targets.Store(&next)
	}
	return t
}

var errNoAudience = status.Error(codes.Internal, "callsign: no audience for this method: set WithTargetAudience or the callsign.v1.service option")

// resolveTarget reads the audience and publicness of fullMethod
// ("/pkg.Service/Method") from the descriptors. fixed, when set, is the
// audience.
func resolveTarget(ds []DescriptorResolver, fixed, fullMethod string) (t *clientTarget) {
	t = &clientTarget{audience: fixed}
	defer func() {
		// A broken descriptor must not take the process down: fail closed.
		if recover() != nil {
			t = &clientTarget{err: errNoAudience}
		}
		if t.audience == "" && !t.public && t.err == nil {
			t.err = errNoAudience
		}
	}()
	svcName, methodName, ok := splitFullMethod(fullMethod)
	if !ok {
		return t
	}
	var sd protoreflect.ServiceDescriptor
	for _, d := range ds {
		if desc, err := d.FindDescriptorByName(protoreflect.FullName(svcName)); err == nil {
			if s, ok := desc.(protoreflect.ServiceDescriptor); ok {
				sd = s
				break
			}
		}
	}
	if sd == nil {
		return t
	}
	if fixed == "" {
		var rule callsignv1.ServiceRule
		if readOption(sd.Options(), &descriptorpb.ServiceOptions{}, callsignv1.E_Service, &rule) {
			t.audience = rule.GetAudience()
		}
	}
	if md := sd.Methods().ByName(protoreflect.Name(methodName)); md != nil {
		var rule callsignv1.MethodRule
		if readOption(md.Options(), &descriptorpb.MethodOptions{}, callsignv1.E_Method, &rule) {
			t.public = rule.GetPublic()
		}
	}
	return t
}

// splitFullMethod splits "/pkg.Service/Method".
func splitFullMethod(m string) (svc, method string, ok bool) {
	if len(m) < 4 || m[0] != '/' {
		return "", "", false
	}
	i := strings.LastIndexByte(m, '/')
	if i <= 1 || i == len(m)-1 {
		return "", "", false
	}
	return m[1:i], m[i+1:], true
}

// readOption reads extension xt of the options message opts into into. When
// the options carry the extension as unknown fields (descriptors built at run
// time), they are re-parsed into fresh (an empty options message of the same
// kind) with the global type registry.
func readOption(opts, fresh proto.Message, xt protoreflect.ExtensionType, into proto.Message) bool {
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return false
	}
	if m, ok := opts.(interface{ ProtoReflect() protoreflect.Message }); ok && proto.HasExtension(m, xt) {
		if v, ok := proto.GetExtension(opts, xt).(proto.Message); ok {
			proto.Merge(into, v)
			return true
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(opts)
	if err != nil {
		return false
	}
	if err := (proto.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(b, fresh); err != nil {
		return false
	}
	if !proto.HasExtension(fresh, xt) {
		return false
	}
	v, ok := proto.GetExtension(fresh, xt).(proto.Message)
	if !ok {
		return false
	}
	proto.Merge(into, v)
	return true
}

var errAuthorizationPresent = status.Error(codes.Internal, "callsign: the outgoing context already carries authorization")

// forwardedKeys are copied from the incoming to the outgoing context.
var forwardedKeys = [...]struct {
	key    string
	single bool // copied only when exactly one value
}{
	{MDUserToken, true},
	{MDCorrelationID, true},
	{MDTraceparent, true},
	{MDTracestate, false},
}

// attach returns ctx with the callsign metadata for one call attempt, the
// token it carries ("" for a public method) and the correlation id it
// created, if any. A retry passes that id back as corr so that both attempts
// carry the same.
func (c *clientAttacher) attach(ctx context.Context, t *clientTarget, corr string) (context.Context, string, string, error) {
	var buf [16]string
	kv := buf[:0]
	var tok string
	if !t.public {
		if len(metadata.ValueFromOutgoingContext(ctx, MDAuthorization)) > 0 {
			return nil, "", "", errAuthorizationPresent
		}
		bearer, tk, err := c.bearerFor(ctx, t.audience)
		if err != nil {
			return nil, "", "", err
		}
		tok = tk
		kv = append(kv, MDAuthorization, bearer)
	}
	correlated := false
	for _, f := range forwardedKeys {
		in := metadata.ValueFromIncomingContext(ctx, f.key)
		usable := len(in) > 0 && (!f.single || len(in) == 1)
		if !usable && f.key != MDCorrelationID {
			continue
		}
		if len(metadata.ValueFromOutgoingContext(ctx, f.key)) > 0 {
			correlated = correlated || f.key == MDCorrelationID
			continue
		}
		if !usable {
			continue
		}
		correlated = correlated || f.key == MDCorrelationID
		for _, v := range in {
			kv = append(kv, f.key, v)
		}
	}
	needRequestID := len(metadata.ValueFromOutgoingContext(ctx, MDRequestID)) == 0
	switch {
	case !correlated && corr == "" && needRequestID:
		var reqID string
		corr, reqID = c.cfg.newIDs()
		kv = append(kv, MDCorrelationID, corr, MDRequestID, reqID)
	default:
		if !correlated {
			if corr == "" {
				corr, _ = c.cfg.newIDs()
			}
			kv = append(kv, MDCorrelationID, corr)
		}
		if needRequestID {
			reqID, _ := c.cfg.newIDs()
			kv = append(kv, MDRequestID, reqID)
		}
	}
	return metadata.AppendToOutgoingContext(ctx, kv...), tok, corr, nil
}

// bearerFor returns "Bearer <token>" and the token for audience.
func (c *clientAttacher) bearerFor(ctx context.Context, audience string) (string, string, error) {
	if c.bearer != nil {
		return c.bearer.bearerToken(ctx, audience)
	}
	tok, err := c.ts.Token(ctx, audience)
	if err != nil {
		return "", "", err
	}
	if !wellFormedJWS(tok) {
		return "", "", tokenUnavailable(errBadIssueResponse)
	}
	return "Bearer " + tok, tok, nil
}

// newRandomIDs returns two ids of 128 random bits each, base64url without
// padding (22 characters), sharing one allocation. The generator is the
// runtime's ChaCha8: cheap, and unpredictable enough for request and
// correlation ids (never for secrets).
func newRandomIDs() (string, string) {
	var raw [32]byte
	for i := 0; i < len(raw); i += 8 {
		binary.LittleEndian.PutUint64(raw[i:], rand.Uint64()) //nolint:gosec // ids, not secrets: see above
	}
	var out [44]byte
	base64.RawURLEncoding.Encode(out[:22], raw[:16])
	base64.RawURLEncoding.Encode(out[22:], raw[16:])
	s := string(out[:])
	return s[:22], s[22:]
}
