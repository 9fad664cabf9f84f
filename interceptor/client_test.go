package interceptor

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// cliStaticTok is the token of the static sources in these tests.
const cliStaticTok = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJvcmRlcnMifQ.c2ln"

// cliClientDial returns the dial options installing both client interceptors.
func cliClientDial(ts TokenSource, opts ...ClientOption) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithUnaryInterceptor(UnaryClientInterceptor(ts, opts...)),
		grpc.WithStreamInterceptor(StreamClientInterceptor(ts, opts...)),
	}
}

// cliCallKinds runs one call of each kind against cliTarget.
var cliCallKinds = []struct {
	name string
	call func(ctx context.Context, c testv1.TestServiceClient) error
}{
	{"unary", func(ctx context.Context, c testv1.TestServiceClient) error {
		_, err := c.Scoped(ctx, &testv1.ScopedRequest{Payload: "p"})
		return err
	}},
	{"server-stream", func(ctx context.Context, c testv1.TestServiceClient) error {
		s, err := c.ServerStream(ctx, &testv1.ServerStreamRequest{Payload: "p"})
		if err != nil {
			return err
		}
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}},
	{"bidi-stream", func(ctx context.Context, c testv1.TestServiceClient) error {
		s, err := c.BidiStream(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&testv1.BidiStreamRequest{Payload: "p"}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_ = s.CloseSend()
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}},
}

func cliOne(t *testing.T, md metadata.MD, key string) string {
	t.Helper()
	v := md.Get(key)
	if len(v) != 1 {
		t.Fatalf("%s = %q, want exactly one value", key, v)
	}
	return v[0]
}

func TestClientInterceptorAttachesTokenForTheServiceAudience(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	for _, kind := range cliCallKinds {
		t.Run(kind.name, func(t *testing.T) {
			tgt, c := cliStartTarget(t, cliClientDial(ts)...)
			if err := kind.call(cliCtx(t), c); err != nil {
				t.Fatal(err)
			}
			seen := tgt.calls()
			if len(seen) != 1 {
				t.Fatalf("%d calls", len(seen))
			}
			md := seen[0]
			if got := cliOne(t, md, MDAuthorization); got != "Bearer "+cliStaticTok {
				t.Fatalf("authorization = %q", got)
			}
			if id := cliOne(t, md, MDRequestID); len(id) != 22 {
				t.Fatalf("x-request-id = %q", id)
			}
			if id := cliOne(t, md, MDCorrelationID); len(id) != 22 || id == md.Get(MDRequestID)[0] {
				t.Fatalf("x-correlation-id = %q", id)
			}
			for _, k := range []string{MDUserToken, MDTraceparent, MDTracestate, MDIdempotencyKey} {
				if v := md.Get(k); len(v) != 0 {
					t.Fatalf("%s = %q at the edge", k, v)
				}
			}
		})
	}
}

func TestClientInterceptorTargetAudience(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": "t.t.t", "billing": "b.b.b"})
	tgt, c := cliStartTarget(t, cliClientDial(ts, WithTargetAudience("billing"))...)
	for _, kind := range cliCallKinds {
		if err := kind.call(cliCtx(t), c); err != nil {
			t.Fatal(err)
		}
	}
	for i, md := range tgt.calls() {
		if got := cliOne(t, md, MDAuthorization); got != "Bearer b.b.b" {
			t.Fatalf("call %d: authorization = %q", i, got)
		}
	}
}

func TestClientInterceptorPublicMethodGetsNoToken(t *testing.T) {
	var asked atomic.Int32
	ts := &cliCountingSource{TokenSource: StaticTokenSource(map[string]string{"test": cliStaticTok}), n: &asked}
	tgt, c := cliStartTarget(t, cliClientDial(ts)...)
	if _, err := c.Public(cliCtx(t), &testv1.PublicRequest{}); err != nil {
		t.Fatal(err)
	}
	md := tgt.calls()[0]
	if v := md.Get(MDAuthorization); len(v) != 0 || asked.Load() != 0 {
		t.Fatalf("public method: authorization %q, token source asked %d times", v, asked.Load())
	}
	if len(md.Get(MDRequestID)) != 1 || len(md.Get(MDCorrelationID)) != 1 {
		t.Fatalf("public method lost the ids: %v", md)
	}
}

// cliCountingSource counts Token calls of a wrapped source (which then is
// not one of ours, so the generic path is used).
type cliCountingSource struct {
	TokenSource
	n *atomic.Int32
}

func (s *cliCountingSource) Token(ctx context.Context, audience string) (string, error) {
	s.n.Add(1)
	return s.TokenSource.Token(ctx, audience)
}

func TestClientInterceptorFailsClosed(t *testing.T) {
	noop := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		t.Fatal("the call was sent")
		return nil
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		ts     TokenSource
		opts   []ClientOption
		ctx    context.Context
		method string
		code   codes.Code
	}{
		{"unknown service, no audience", StaticTokenSource(nil), nil, ctx, "/unknown.v1.Svc/Do", codes.Internal},
		{"malformed method", StaticTokenSource(nil), nil, ctx, "nonsense", codes.Internal},
		{"no token", StaticTokenSource(nil), nil, ctx, "/callsign.test.v1.TestService/Scoped", codes.Unavailable},
		{"foreign source with a bad token", StaticTokenSource(nil), nil, ctx, "/callsign.test.v1.TestService/Scoped", codes.Unavailable},
		{
			"authorization already set", StaticTokenSource(map[string]string{"test": cliStaticTok}), nil,
			metadata.AppendToOutgoingContext(ctx, "Authorization", "Bearer x.y.z"), "/callsign.test.v1.TestService/Scoped", codes.Internal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := tc.ts
			if tc.name == "foreign source with a bad token" {
				ts = &cliCountingSource{TokenSource: StaticTokenSource(map[string]string{"test": "not a token\r\n"}), n: new(atomic.Int32)}
			}
			err := UnaryClientInterceptor(ts, tc.opts...)(tc.ctx, tc.method, nil, nil, nil, noop)
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want %v", err, tc.code)
			}
			_, err = StreamClientInterceptor(ts, tc.opts...)(tc.ctx, &grpc.StreamDesc{}, nil, tc.method,
				func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
					t.Fatal("the stream was opened")
					return nil, nil
				})
			if status.Code(err) != tc.code {
				t.Fatalf("stream: err = %v, want %v", err, tc.code)
			}
		})
	}
}

func TestClientInterceptorForwardsIncomingMetadata(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	incoming := metadata.MD{
		MDAuthorization:  {"Bearer upstream.token.value"},
		MDUserToken:      {"user.token.value"},
		MDCorrelationID:  {"corr-1"},
		MDRequestID:      {"upstream-request"},
		MDTraceparent:    {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		MDTracestate:     {"a=1", "b=2"},
		MDIdempotencyKey: {"idem-1"},
		"x-other":        {"not forwarded"},
	}
	for _, kind := range cliCallKinds {
		t.Run(kind.name, func(t *testing.T) {
			tgt, c := cliStartTarget(t, cliClientDial(ts)...)
			ctx := metadata.NewIncomingContext(cliCtx(t), incoming)
			if err := kind.call(ctx, c); err != nil {
				t.Fatal(err)
			}
			md := tgt.calls()[0]
			for key, want := range map[string][]string{
				MDAuthorization:  {"Bearer " + cliStaticTok},
				MDUserToken:      {"user.token.value"},
				MDCorrelationID:  {"corr-1"},
				MDTraceparent:    incoming[MDTraceparent],
				MDTracestate:     {"a=1", "b=2"},
				MDIdempotencyKey: nil,
				"x-other":        nil,
			} {
				if got := md.Get(key); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", key, got, want)
				}
			}
			if id := cliOne(t, md, MDRequestID); id == "upstream-request" {
				t.Errorf("the upstream request id was reused")
			}
		})
	}
}

func TestClientInterceptorKeepsCallerValues(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	tgt, c := cliStartTarget(t, cliClientDial(ts)...)
	in := metadata.NewIncomingContext(cliCtx(t), metadata.MD{
		MDUserToken:     {"first.user.token", "second.user.token"}, // two values: not forwarded
		MDCorrelationID: {"upstream-corr"},
		MDTraceparent:   {"00-upstream-01"},
	})
	ctx := metadata.AppendToOutgoingContext(in,
		MDCorrelationID, "mine", MDTraceparent, "00-mine-01", MDRequestID, "my-request", MDIdempotencyKey, "my-key")
	if _, err := c.Scoped(ctx, &testv1.ScopedRequest{}); err != nil {
		t.Fatal(err)
	}
	md := tgt.calls()[0]
	for key, want := range map[string][]string{
		MDUserToken:      nil,
		MDCorrelationID:  {"mine"},
		MDTraceparent:    {"00-mine-01"},
		MDRequestID:      {"my-request"},
		MDIdempotencyKey: {"my-key"},
	} {
		if got := md.Get(key); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
}

func TestClientInterceptorFreshRequestIDPerCall(t *testing.T) {
	ts := StaticTokenSource(map[string]string{"test": cliStaticTok})
	tgt, c := cliStartTarget(t, cliClientDial(ts)...)
	ctx := metadata.NewIncomingContext(cliCtx(t), metadata.MD{MDCorrelationID: {"corr"}})
	for range 50 {
		if _, err := c.Scoped(ctx, &testv1.ScopedRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]bool{}
	for _, md := range tgt.calls() {
		ids[cliOne(t, md, MDRequestID)] = true
		if cliOne(t, md, MDCorrelationID) != "corr" {
			t.Fatal("correlation id not forwarded unchanged")
		}
	}
	if len(ids) != 50 {
		t.Fatalf("%d distinct request ids for 50 calls", len(ids))
	}
}

// cliRetryEnv is a live token source and a target that refuses on demand.
func cliRetryEnv(t *testing.T) (*cliTarget, testv1.TestServiceClient, *tokenSource, *cliFakeAuth) {
	t.Helper()
	ts, fa, clk := cliNewSource(t, 0.5)
	tgt, c := cliStartTarget(t, cliClientDial(ts)...)
	// Warm the cache and age the token past the minimum invalidation age.
	if _, err := ts.Token(cliCtx(t), "test"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultMinInvalidateAge)
	return tgt, c, ts, fa
}

func TestClientInterceptorRetriesOnceOnCurableRefusals(t *testing.T) {
	for _, tc := range []struct{ reason, audience string }{
		{"TOKEN_EXPIRED", ""}, {"KEY_UNKNOWN", ""}, {"TOKEN_REVOKED", ""}, {"TOKEN_EXPIRED", "test"},
	} {
		t.Run(tc.reason+"/"+tc.audience, func(t *testing.T) {
			tgt, c, _, fa := cliRetryEnv(t)
			refusal := cliRefusal(codes.Unauthenticated, ErrorDomain, tc.reason)
			if tc.audience != "" {
				refusal = cliRefusal(codes.Unauthenticated, ErrorDomain, tc.reason, tc.audience)
			}
			tgt.setRefuse(refusal)
			resp, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{Payload: "p"})
			if err != nil || resp.GetPayload() != "p" {
				t.Fatalf("Scoped = %v, %v; want success after one retry", resp, err)
			}
			seen := tgt.calls()
			if len(seen) != 2 || fa.calls.Load() != 2 {
				t.Fatalf("%d attempts, %d IssueToken calls; want 2 and 2", len(seen), fa.calls.Load())
			}
			if a, b := cliOne(t, seen[0], MDAuthorization), cliOne(t, seen[1], MDAuthorization); a == b || b != "Bearer "+cliToken("test", 2) {
				t.Fatalf("retry carried %q after %q; want a fresh token", b, a)
			}
			if a, b := cliOne(t, seen[0], MDRequestID), cliOne(t, seen[1], MDRequestID); a == b {
				t.Fatal("the retry reused the request id")
			}
			if a, b := cliOne(t, seen[0], MDCorrelationID), cliOne(t, seen[1], MDCorrelationID); a != b {
				t.Fatal("the retry changed the correlation id")
			}
		})
	}
}

func TestClientInterceptorRetriesAtMostOnce(t *testing.T) {
	tgt, c, _, fa := cliRetryEnv(t)
	refusal := cliRefusal(codes.Unauthenticated, ErrorDomain, "TOKEN_EXPIRED")
	tgt.setRefuse(refusal, refusal, refusal)
	_, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("err = %v", err)
	}
	if n := len(tgt.calls()); n != 2 || fa.calls.Load() != 2 {
		t.Fatalf("%d attempts, %d IssueToken calls; want 2 and 2", n, fa.calls.Load())
	}
}

func TestClientInterceptorDoesNotRetryOtherRefusals(t *testing.T) {
	for name, refusal := range map[string]error{
		"signature invalid":    cliRefusal(codes.Unauthenticated, ErrorDomain, "SIGNATURE_INVALID"),
		"audience mismatch":    cliRefusal(codes.Unauthenticated, ErrorDomain, "AUDIENCE_MISMATCH"),
		"account disabled":     cliRefusal(codes.Unauthenticated, ErrorDomain, "ACCOUNT_DISABLED"),
		"user token invalid":   cliRefusal(codes.Unauthenticated, ErrorDomain, "USER_TOKEN_INVALID"),
		"scope missing":        cliRefusal(codes.PermissionDenied, ErrorDomain, "SCOPE_MISSING"),
		"expired but denied":   cliRefusal(codes.PermissionDenied, ErrorDomain, "TOKEN_EXPIRED"),
		"other domain":         cliRefusal(codes.Unauthenticated, "example.com", "TOKEN_EXPIRED"),
		"lowercase reason":     cliRefusal(codes.Unauthenticated, ErrorDomain, "token_expired"),
		"prefixed reason":      cliRefusal(codes.Unauthenticated, ErrorDomain, "REASON_TOKEN_EXPIRED"),
		"no details":           status.Error(codes.Unauthenticated, "TOKEN_EXPIRED"),
		"passed on from below": cliRefusal(codes.Unauthenticated, ErrorDomain, "TOKEN_EXPIRED", "inventory"),
		"unavailable":          status.Error(codes.Unavailable, "down"),
		"application NotFound": status.Error(codes.NotFound, "no such thing"),
	} {
		t.Run(name, func(t *testing.T) {
			tgt, c, ts, fa := cliRetryEnv(t)
			tgt.setRefuse(refusal)
			_, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{})
			if status.Code(err) != status.Code(refusal) {
				t.Fatalf("err = %v, want %v", err, refusal)
			}
			if n := len(tgt.calls()); n != 1 {
				t.Fatalf("%d attempts, want 1", n)
			}
			if tok, _ := ts.Token(cliCtx(t), "test"); tok != cliToken("test", 1) || fa.calls.Load() != 1 {
				t.Fatal("the cached token was dropped")
			}
		})
	}
}

func TestClientInterceptorStreamsInvalidateWithoutRetry(t *testing.T) {
	for _, kind := range cliCallKinds[1:] {
		t.Run(kind.name, func(t *testing.T) {
			tgt, c, ts, fa := cliRetryEnv(t)
			tgt.setRefuse(cliRefusal(codes.Unauthenticated, ErrorDomain, "TOKEN_REVOKED"))
			if err := kind.call(cliCtx(t), c); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("err = %v", err)
			}
			if n := len(tgt.calls()); n != 1 {
				t.Fatalf("%d attempts, want 1 (streams are not retried)", n)
			}
			if tok, _ := ts.Token(cliCtx(t), "test"); tok != cliToken("test", 2) || fa.calls.Load() != 2 {
				t.Fatalf("Token = %q after the refusal; want a fresh token", tok)
			}
		})
	}
}

func TestClientInterceptorNoRetryWithoutFreshToken(t *testing.T) {
	// A token younger than the minimum age is kept: the call is not retried
	// with the same token.
	ts, fa, _ := cliNewSource(t, 0.5)
	tgt, c := cliStartTarget(t, cliClientDial(ts)...)
	tgt.setRefuse(cliRefusal(codes.Unauthenticated, ErrorDomain, "KEY_UNKNOWN"))
	if _, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("err = %v", err)
	}
	if len(tgt.calls()) != 1 || fa.calls.Load() != 1 {
		t.Fatalf("%d attempts, %d IssueToken calls; want 1 and 1", len(tgt.calls()), fa.calls.Load())
	}
}

func TestClientInterceptorSteadyStateMakesNoIssueTokenCalls(t *testing.T) {
	ts, fa, _ := cliNewSource(t, 0.5)
	_, c := cliStartTarget(t, cliClientDial(ts)...)
	for range 200 {
		if _, err := c.Scoped(cliCtx(t), &testv1.ScopedRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := fa.calls.Load(); n != 1 {
		t.Fatalf("IssueToken calls = %d for 200 calls, want 1", n)
	}
}

// cliDynamicFiles builds, at run time, a service whose callsign options are
// unknown fields of its options messages (as when descriptors are loaded from
// a FileDescriptorSet without the callsign types).
func cliDynamicFiles(t *testing.T) *protoregistry.Files {
	t.Helper()
	svcRule, err := proto.Marshal(&callsignv1.ServiceRule{Audience: "dyn"})
	if err != nil {
		t.Fatal(err)
	}
	methodRule, err := proto.Marshal(&callsignv1.MethodRule{Public: true})
	if err != nil {
		t.Fatal(err)
	}
	unknown := func(num protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), b)
	}
	svcOpts := &descriptorpb.ServiceOptions{}
	svcOpts.ProtoReflect().SetUnknown(unknown(callsignv1.E_Service.TypeDescriptor().Number(), svcRule))
	pubOpts := &descriptorpb.MethodOptions{}
	pubOpts.ProtoReflect().SetUnknown(unknown(callsignv1.E_Method.TypeDescriptor().Number(), methodRule))
	fd := &descriptorpb.FileDescriptorProto{
		Name:    new("dyn/v1/dyn.proto"),
		Package: new("dyn.v1"),
		Syntax:  new("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: new("M")},
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    new("Dyn"),
			Options: svcOpts,
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: new("Get"), InputType: new(".dyn.v1.M"), OutputType: new(".dyn.v1.M")},
				{Name: new("Open"), InputType: new(".dyn.v1.M"), OutputType: new(".dyn.v1.M"), Options: pubOpts},
			},
		}, {
			Name:   new("Bare"),
			Method: []*descriptorpb.MethodDescriptorProto{{Name: new("Get"), InputType: new(".dyn.v1.M"), OutputType: new(".dyn.v1.M")}},
		}},
	}
	f, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(f); err != nil {
		t.Fatal(err)
	}
	return files
}

func TestClientInterceptorReadsRuntimeDescriptors(t *testing.T) {
	c := newClientAttacher(StaticTokenSource(nil), []ClientOption{WithClientDescriptors(cliDynamicFiles(t))})
	if tg := c.target("/dyn.v1.Dyn/Get"); tg.err != nil || tg.audience != "dyn" || tg.public {
		t.Fatalf("Get: %+v", tg)
	}
	if tg := c.target("/dyn.v1.Dyn/Open"); tg.err != nil || !tg.public {
		t.Fatalf("Open: %+v", tg)
	}
	if tg := c.target("/dyn.v1.Bare/Get"); tg.err == nil || status.Code(tg.err) != codes.Internal {
		t.Fatalf("a service without audience resolved: %+v", tg)
	}
	if tg := c.target("/callsign.test.v1.TestService/Scoped"); tg.err != nil || tg.audience != "test" {
		t.Fatalf("the global registry was not consulted after the given descriptors: %+v", tg)
	}
}

func TestClientTargetResolution(t *testing.T) {
	c := newClientAttacher(StaticTokenSource(nil), nil)
	for method, want := range map[string]clientTarget{
		"/callsign.test.v1.TestService/Scoped":           {audience: "test"},
		"/callsign.test.v1.TestService/Public":           {audience: "test", public: true},
		"/callsign.test.v1.DefaultScopedService/Inherit": {audience: "test"},
		"/callsign.v1.AuthService/IssueToken":            {audience: "callsign", public: true},
		"/callsign.v1.AuthService/Verify":                {audience: "callsign"},
	} {
		got := c.target(method)
		if got.err != nil || got.audience != want.audience || got.public != want.public {
			t.Errorf("%s: %+v, want %+v", method, got, want)
		}
	}
	for _, bad := range []string{"", "/", "//", "/a/", "a/b", "/callsign.test.v1.TestService", "/no.such.Service/M"} {
		if got := c.target(bad); got.err == nil {
			t.Errorf("%q resolved: %+v", bad, got)
		}
	}
	if got := c.target("/callsign.test.v1.TestService/Scoped"); got != c.target("/callsign.test.v1.TestService/Scoped") {
		t.Error("a method was resolved twice")
	}
}

func TestRetryableRefusalIgnoresHostileDetails(t *testing.T) {
	st := status.New(codes.Unauthenticated, "x")
	p := st.Proto()
	// Nine useless details before a valid one: only the first eight are read.
	for range maxDetailsInspected + 1 {
		bad, _ := status.New(codes.Unauthenticated, "x").WithDetails(&descriptorpb.FileOptions{})
		p.Details = append(p.Details, bad.Proto().GetDetails()...)
	}
	good, _ := status.FromError(cliRefusal(codes.Unauthenticated, ErrorDomain, "TOKEN_EXPIRED"))
	p.Details = append(p.Details, good.Proto().GetDetails()...)
	if retryableRefusal(status.FromProto(p).Err(), "test") {
		t.Fatal("a reason beyond the inspected details was used")
	}
	if !retryableRefusal(good.Err(), "test") {
		t.Fatal("a valid refusal was not recognised")
	}
	garbled := good.Proto()
	garbled.Details[0].Value = []byte{0xff, 0xff, 0xff}
	if retryableRefusal(status.FromProto(garbled).Err(), "test") {
		t.Fatal("an undecodable ErrorInfo was used")
	}
}

func TestNewRandomIDs(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		a, b := newRandomIDs()
		for _, id := range []string{a, b} {
			if len(id) != 22 || strings.ContainsAny(id, "+/=") || seen[id] {
				t.Fatalf("id %q (seen before: %v)", id, seen[id])
			}
			seen[id] = true
		}
	}
}

func TestClientInterceptorCallerDeadline(t *testing.T) {
	ts, fa, _ := cliNewSource(t, 0.5)
	fa.setGate(make(chan struct{}))
	_, c := cliStartTarget(t, cliClientDial(ts)...)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Scoped(ctx, &testv1.ScopedRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded while IssueToken hangs", err)
	}
}
