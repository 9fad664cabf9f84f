package interceptor

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

func srvOpenStream(t *testing.T, e *srvEnv, desc *grpc.StreamDesc, method string, md metadata.MD) grpc.ClientStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	cs, err := e.conn.NewStream(metadata.NewOutgoingContext(ctx, md), desc, srvTestSvc+method)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// TestStreamEndsWhenTokenExpires: a server stream that outlives its token ends
// with Unauthenticated / TOKEN_EXPIRED, recorded once more in the audit.
func TestStreamEndsWhenTokenExpires(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	e.svc.streamStarted = make(chan struct{}, 1)
	cs := srvOpenStream(t, e, &grpc.StreamDesc{ServerStreams: true}, "ServerStream",
		srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read"))))
	if err := cs.SendMsg(&testv1.ServerStreamRequest{Payload: "hold"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var m testv1.ServerStreamResponse
	if err := cs.RecvMsg(&m); err != nil || m.GetPayload() != "hold" {
		t.Fatalf("first message %q, %v", m.GetPayload(), err)
	}
	<-e.svc.streamStarted
	e.clock.Advance(5 * time.Minute) // exp reached, still within the skew
	if e.clock.pending() != 1 {
		t.Fatalf("%d timers armed, want the stream's", e.clock.pending())
	}
	e.clock.Advance(DefaultSkew)
	err := cs.RecvMsg(&m)
	if _, reason := srvReason(t, err); reason != "TOKEN_EXPIRED" {
		t.Fatalf("after expiry: %v", err)
	}
	recs := e.audit.take()
	if len(recs) != 2 || recs[0].Decision != DecisionAllow || recs[1].Decision != DecisionDeny ||
		ReasonName(recs[1].Reason) != "TOKEN_EXPIRED" || recs[1].Caller != "orders" || !recs[1].Stream {
		t.Fatalf("audit %+v", recs)
	}
}

// TestBidiStreamEndsWhenTokenExpires: a handler blocked in Recv sees the expiry
// with the next message and the stream ends with TOKEN_EXPIRED.
func TestBidiStreamEndsWhenTokenExpires(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	cs := srvOpenStream(t, e, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "BidiStream",
		srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")), MDUserToken, e.userToken("u1", "t1")))
	var m testv1.BidiStreamResponse
	if err := cs.SendMsg(&testv1.BidiStreamRequest{Payload: "one"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(&m); err != nil || m.GetPayload() != "one" {
		t.Fatalf("echo %q, %v", m.GetPayload(), err)
	}
	e.clock.Advance(5*time.Minute + DefaultSkew)
	_ = cs.SendMsg(&testv1.BidiStreamRequest{Payload: "two"})
	err := cs.RecvMsg(&m)
	if _, reason := srvReason(t, err); reason != "TOKEN_EXPIRED" {
		t.Fatalf("after expiry: %v (payload %q)", err, m.GetPayload())
	}
}

// TestStreamExpiryOff: with WithStreamExpiry(false) the stream outlives its
// token.
func TestStreamExpiryOff(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{opts: []ServerOption{WithStreamExpiry(false)}})
	cs := srvOpenStream(t, e, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "BidiStream",
		srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")), MDUserToken, e.userToken("u1", "t1")))
	var m testv1.BidiStreamResponse
	for i, p := range []string{"one", "two"} {
		if err := cs.SendMsg(&testv1.BidiStreamRequest{Payload: p}); err != nil {
			t.Fatal(err)
		}
		if err := cs.RecvMsg(&m); err != nil || m.GetPayload() != p {
			t.Fatalf("echo %d: %q, %v", i, m.GetPayload(), err)
		}
		e.clock.Advance(time.Hour)
	}
	if e.clock.pending() != 0 {
		t.Fatalf("a timer was armed with expiry off")
	}
}

// TestStreamTimerStopped: a stream that ends before its token leaves no timer.
func TestStreamTimerStopped(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	for kind := kindServerStream; kind <= kindBidi; kind++ {
		md := srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read", "test.write")), MDUserToken, e.userToken("u1", "t1"))
		if _, err := e.call(kind, srvKindMethods[kind], md); err != nil {
			t.Fatalf("%v: %v", kind, err)
		}
	}
	// The handler has returned when the client sees the status; the timer is
	// stopped right after.
	deadline := time.Now().Add(5 * time.Second)
	for e.clock.pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d timers left", e.clock.pending())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStreamExpiresWithIdleClient: handlers blocked in Recv on a client that
// sends nothing still see their streams end with TOKEN_EXPIRED, and return.
func TestStreamExpiresWithIdleClient(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	md := srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read", "test.write")), MDUserToken, e.userToken("u1", "t1"))
	bidi := srvOpenStream(t, e, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "BidiStream", md)
	client := srvOpenStream(t, e, &grpc.StreamDesc{ClientStreams: true}, "ClientStream", md)
	// Both handlers run (and wait in Recv) once their audit records exist.
	srvEventually(t, "both handlers", func() bool { return e.svc.runs.Load() == 2 })
	srvEventually(t, "both timers", func() bool { return e.clock.pending() == 2 })
	e.clock.Advance(5*time.Minute + DefaultSkew)
	var m testv1.BidiStreamResponse
	if _, r := srvReason(t, bidi.RecvMsg(&m)); r != "TOKEN_EXPIRED" {
		t.Fatalf("bidi: %s", r)
	}
	if _, r := srvReason(t, client.RecvMsg(&m)); r != "TOKEN_EXPIRED" {
		t.Fatalf("client stream: %s", r)
	}
}

// srvPanicService panics in its bidi handler.
type srvPanicService struct {
	testv1.UnimplementedTestServiceServer
}

func (srvPanicService) BidiStream(grpc.BidiStreamingServer[testv1.BidiStreamRequest, testv1.BidiStreamResponse]) error {
	panic("handler bug")
}

// TestStreamHandlerPanicReachesInterceptors: a panic of a stream handler is
// seen by an interceptor chained before callsign, as if the handler had run in
// the interceptor's goroutine.
func TestStreamHandlerPanicReachesInterceptors(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	recovered := make(chan any, 1)
	recovery := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				recovered <- p
				err = status.Error(codes.Internal, "recovered")
			}
		}()
		return handler(srv, ss)
	}
	gs := grpc.NewServer(grpc.ChainStreamInterceptor(recovery, e.server.StreamServerInterceptor()))
	testv1.RegisterTestServiceServer(gs, srvPanicService{})
	lis := bufconn.Listen(1 << 16)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	md := srvMD(MDAuthorization, srvBearer(e.svcToken("orders", "test.read")), MDUserToken, e.userToken("u1", "t1"))
	_, err = srvInvoke(srvOutgoing(t, md), conn, kindBidi, srvTestSvc+"BidiStream")
	if status.Code(err) != codes.Internal {
		t.Fatalf("call: %v", err)
	}
	if p := <-recovered; p != "handler bug" {
		t.Fatalf("recovered %v", p)
	}
}

// TestStreamEndsWhenUserTokenExpires: a stream opened on behalf of a user ends
// with TOKEN_EXPIRED when the user token expires, even though the service token
// is still valid.
func TestStreamEndsWhenUserTokenExpires(t *testing.T) {
	e := newSrvEnv(t, srvEnvConfig{})
	svcTok := e.svcToken("orders", "test.read")
	e.clock.Advance(2 * time.Minute) // the user token is minted later, but expires first below
	uc := srvUserClaims(e.clock.Now(), "u1", "t1")
	uc.Expiry = e.clock.Now().Add(time.Minute)
	cs := srvOpenStream(t, e, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "BidiStream",
		srvMD(MDAuthorization, srvBearer(svcTok), MDUserToken, e.keys.sign(t, uc)))
	var m testv1.BidiStreamResponse
	if err := cs.SendMsg(&testv1.BidiStreamRequest{Payload: "one"}); err != nil {
		t.Fatal(err)
	}
	if err := cs.RecvMsg(&m); err != nil || m.GetPayload() != "one" {
		t.Fatalf("echo %q, %v", m.GetPayload(), err)
	}
	e.clock.Advance(time.Minute + DefaultSkew) // user token expired; service token has 2 min left
	_ = cs.SendMsg(&testv1.BidiStreamRequest{Payload: "two"})
	err := cs.RecvMsg(&m)
	if _, reason := srvReason(t, err); reason != "TOKEN_EXPIRED" {
		t.Fatalf("after the user token expired: %v", err)
	}
}

// srvAtomicSource is a key source whose snapshot a test swaps while a server
// reads it.
type srvAtomicSource struct{ snap atomic.Pointer[KeySnapshot] }

func (s *srvAtomicSource) KeySnapshot() (*KeySnapshot, error) { return s.snap.Load(), nil }

// TestStreamEndsWhenTokenRevoked: a stream whose service token is revoked, or
// whose account is disabled, while it runs ends at its next message.
func TestStreamEndsWhenTokenRevoked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(jti string) Revocation
		reason string
	}{
		{"token revoked", func(jti string) Revocation { return Revocation{TokenIDs: []string{jti}} }, "TOKEN_REVOKED"},
		{"account disabled", func(string) Revocation { return Revocation{DisabledAccounts: []string{"orders"}} }, "ACCOUNT_DISABLED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &srvAtomicSource{}
			e := newSrvEnv(t, srvEnvConfig{source: func(e *srvEnv) KeySource {
				snap, err := NewKeySnapshot(e.keys.jwks, EdDSA, Revocation{})
				if err != nil {
					t.Fatal(err)
				}
				src.snap.Store(snap)
				return src
			}})
			claims := srvSvcClaims(e.clock.Now(), "orders", "test.read")
			cs := srvOpenStream(t, e, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "BidiStream",
				srvMD(MDAuthorization, srvBearer(e.keys.sign(t, claims)), MDUserToken, e.userToken("u1", "t1")))
			var m testv1.BidiStreamResponse
			if err := cs.SendMsg(&testv1.BidiStreamRequest{Payload: "one"}); err != nil {
				t.Fatal(err)
			}
			if err := cs.RecvMsg(&m); err != nil || m.GetPayload() != "one" {
				t.Fatalf("echo %q, %v", m.GetPayload(), err)
			}
			revoked, err := NewKeySnapshot(e.keys.jwks, EdDSA, tc.revoke(claims.ID))
			if err != nil {
				t.Fatal(err)
			}
			src.snap.Store(revoked)
			_ = cs.SendMsg(&testv1.BidiStreamRequest{Payload: "two"})
			err = cs.RecvMsg(&m)
			if _, reason := srvReason(t, err); reason != tc.reason {
				t.Fatalf("after revocation: %v (payload %q)", err, m.GetPayload())
			}
			recs := e.audit.take()
			if len(recs) != 2 || recs[1].Decision != DecisionDeny || ReasonName(recs[1].Reason) != tc.reason {
				t.Fatalf("audit %+v", recs)
			}
		})
	}
}
