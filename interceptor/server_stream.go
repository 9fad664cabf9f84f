package interceptor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// expiringStream ends a stream once the service token that opened it has
// expired, or at its next message once its tokens were revoked. From then on,
// SendMsg, RecvMsg and the header and trailer methods fail with the reason
// (TOKEN_EXPIRED, TOKEN_REVOKED, ...) without touching the
// underlying stream; the mutex makes sure that none of them is still inside
// the underlying stream when the interceptor returns and grpc writes the
// status.
type expiringStream struct {
	identityStream
	mu      sync.Mutex // held around calls into the underlying stream that write
	expired atomic.Bool
	reason  atomic.Int32 // why the stream ended, once expired is set
	errs    statusErrors
	srv     *Server
	cancel  context.CancelFunc
	once    sync.Once
	gone    chan struct{} // closed when the stream ends
}

// end ends the stream for reason r, once.
func (w *expiringStream) end(r callsignv1.Reason) {
	w.once.Do(func() {
		w.reason.Store(int32(r))
		w.expired.Store(true)
		w.cancel()
		close(w.gone)
	})
}

// ended reports whether the stream has ended, ending it first when its tokens
// were revoked since the last message, and returns the error to answer with.
func (w *expiringStream) ended() error {
	if !w.expired.Load() {
		r := w.srv.streamRevocation(w.ctx)
		if r == callsignv1.Reason_REASON_UNSPECIFIED {
			return nil
		}
		w.end(r)
	}
	return w.errs.get(callsignv1.Reason(w.reason.Load()))
}

// drain waits until no write is in flight. Called after expired is set, it
// guarantees that none will start.
func (w *expiringStream) drain() {
	w.mu.Lock()
	w.mu.Unlock() //nolint:staticcheck // an empty critical section: waiting for in-flight writes is the point
}

func (w *expiringStream) SendMsg(m any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ended(); err != nil {
		return err
	}
	return w.ServerStream.SendMsg(m)
}

func (w *expiringStream) SetHeader(md metadata.MD) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.expired.Load() {
		return w.errs.get(callsignv1.Reason(w.reason.Load()))
	}
	return w.ServerStream.SetHeader(md)
}

func (w *expiringStream) SendHeader(md metadata.MD) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.expired.Load() {
		return w.errs.get(callsignv1.Reason(w.reason.Load()))
	}
	return w.ServerStream.SendHeader(md)
}

func (w *expiringStream) SetTrailer(md metadata.MD) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.expired.Load() {
		w.ServerStream.SetTrailer(md)
	}
}

// RecvMsg may block in the underlying stream while the stream expires: grpc
// interrupts it when the status is written.
func (w *expiringStream) RecvMsg(m any) error {
	if err := w.ended(); err != nil {
		return err
	}
	err := w.ServerStream.RecvMsg(m)
	if err := w.ended(); err != nil {
		return err
	}
	return err
}

// handlerResult is how a stream handler run in its own goroutine ends.
type handlerResult struct {
	err      error
	panicked bool
	panicVal any
}

// serveExpiring runs handler with a stream that ends when svc expires (exp plus
// the allowed skew), or the user token that came with it, whichever is first. The handler runs in its own goroutine so that the stream
// can end on time even when the handler is blocked in RecvMsg on an idle
// client: the interceptor then returns TOKEN_EXPIRED, grpc writes the status
// and cancels the stream, which unblocks the handler. A panic of the handler
// is passed on to the interceptor's goroutine while it waits, as if the
// handler had run there; after the expiry it is logged instead.
func (s *Server) serveExpiring(ctx context.Context, srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler, svc *verified) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws := &expiringStream{identityStream: identityStream{ServerStream: ss, ctx: ctx}, errs: s.errs, srv: s, cancel: cancel, gone: make(chan struct{})}
	deadline := svc.expiry
	if ci, ok := ctx.Value(identityKey{}).(*callIdentity); ok && ci.user != nil && ci.user.expiry.Before(deadline) {
		// A stream that runs on behalf of a user ends with the user's token too.
		deadline = ci.user.expiry
	}
	stop := s.clock.AfterFunc(deadline.Add(s.cfg.skew).Sub(s.clock.Now()), func() {
		ws.end(callsignv1.Reason_REASON_TOKEN_EXPIRED)
	})
	defer func() { _ = stop() }()

	var waiting atomic.Bool
	waiting.Store(true)
	done := make(chan handlerResult, 1)
	go func() {
		var res handlerResult
		defer func() {
			if p := recover(); p != nil {
				if !waiting.Load() {
					s.logger().LogAttrs(context.Background(), slog.LevelError, "callsign: stream handler panicked after its token expired",
						slog.String("method", info.FullMethod), slog.String("panic", fmt.Sprint(p)))
					return
				}
				res = handlerResult{panicked: true, panicVal: p}
			}
			done <- res
		}()
		res.err = handler(srv, ws)
	}()

	select {
	case res := <-done:
		if res.panicked {
			panic(res.panicVal)
		}
		if !ws.expired.Load() {
			return res.err
		}
	case <-ws.gone:
		waiting.Store(false)
	}
	ws.drain()
	rec := s.baseRecord(ss.Context(), info.FullMethod, true, s.clock.Now())
	rec.Caller, rec.TokenID = svc.subject, svc.id
	return s.deny(ss.Context(), &rec, callsignv1.Reason(ws.reason.Load()))
}

// streamRevocation is why the tokens of the stream whose handler context is
// ctx are no longer good: revoked, or their account disabled, in the key
// source's current state. Without a key source (central verification) it
// answers REASON_UNSPECIFIED: the stream then ends only when it expires.
func (s *Server) streamRevocation(ctx context.Context) callsignv1.Reason {
	if s.keys == nil {
		return callsignv1.Reason_REASON_UNSPECIFIED
	}
	ci, ok := ctx.Value(identityKey{}).(*callIdentity)
	if !ok {
		return callsignv1.Reason_REASON_UNSPECIFIED
	}
	snap, err := s.keys.KeySnapshot()
	if err != nil || snap == nil {
		return callsignv1.Reason_REASON_UNSPECIFIED
	}
	if ci.svc != nil {
		if r := snap.revocation(ci.svc); r != callsignv1.Reason_REASON_UNSPECIFIED {
			return r
		}
	}
	if ci.user != nil {
		if r := snap.revocation(ci.user); r != callsignv1.Reason_REASON_UNSPECIFIED {
			return callsignv1.Reason_REASON_USER_TOKEN_INVALID
		}
	}
	return callsignv1.Reason_REASON_UNSPECIFIED
}
