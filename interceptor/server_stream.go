package interceptor

import (
	"sync/atomic"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// expiringStream ends a stream once the service token that opened it has
// expired: its context is cancelled by a timer on the server's clock, and
// SendMsg and RecvMsg fail with Unauthenticated / TOKEN_EXPIRED from then on.
type expiringStream struct {
	identityStream
	expired atomic.Bool
}

func (w *expiringStream) SendMsg(m any) error {
	if w.expired.Load() {
		return statusError(callsignv1.Reason_REASON_TOKEN_EXPIRED)
	}
	return w.ServerStream.SendMsg(m)
}

func (w *expiringStream) RecvMsg(m any) error {
	if w.expired.Load() {
		return statusError(callsignv1.Reason_REASON_TOKEN_EXPIRED)
	}
	err := w.ServerStream.RecvMsg(m)
	if w.expired.Load() {
		return statusError(callsignv1.Reason_REASON_TOKEN_EXPIRED)
	}
	return err
}
