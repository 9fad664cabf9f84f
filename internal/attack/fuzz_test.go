package attack

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/interceptor"
)

// seqFetcher answers GetKeys with first, then with next (or its error).
type seqFetcher struct {
	calls atomic.Int64
	first *callsignv1.GetKeysResponse
	next  *callsignv1.GetKeysResponse
}

func (f *seqFetcher) GetKeys(context.Context, *callsignv1.GetKeysRequest, ...grpc.CallOption) (*callsignv1.GetKeysResponse, error) {
	if f.calls.Add(1) == 1 {
		return f.first, nil
	}
	if f.next == nil {
		return nil, errors.New("unavailable")
	}
	return f.next, nil
}

// FuzzGetKeysResponse feeds a verifier's key source with an arbitrary
// GetKeys response (the bytes a compromised or broken callsignd could send)
// after a good first one, then verifies a call with the result. It must not
// panic, and a call may pass only when the key that signed it is published.
func FuzzGetKeysResponse(f *testing.F) {
	k := newKit(f)
	good := &callsignv1.GetKeysResponse{
		Jwks:            k.jwks,
		Version:         1,
		RefreshInterval: durationpb.New(time.Minute),
	}
	seed := func(r *callsignv1.GetKeysResponse) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(good)
	seed(&callsignv1.GetKeysResponse{Jwks: []byte(`{"keys":[]}`), Version: 2})
	seed(&callsignv1.GetKeysResponse{
		Jwks:             k.jwks,
		Version:          3,
		RevokedTokens:    []*callsignv1.RevokedToken{{TokenId: "x"}, {TokenId: ""}},
		DisabledAccounts: []*callsignv1.DisabledAccount{{AccountId: "orders"}},
		RevokedAccounts:  []*callsignv1.RevokedAccount{{AccountId: "orders", IssuedBefore: timestamppb.New(time.Unix(-1<<40, 0))}},
		RefreshInterval:  durationpb.New(-time.Hour),
	})
	seed(&callsignv1.GetKeysResponse{Jwks: []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"AAAA"}]}`)})

	tok := k.svcToken()
	md := metadata.Pairs("authorization", "Bearer "+tok)
	logger := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data []byte) {
		next := &callsignv1.GetKeysResponse{}
		if err := proto.Unmarshal(data, next); err != nil {
			return
		}
		fetcher := &seqFetcher{first: good, next: next}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		src, err := interceptor.NewLiveKeySource(ctx, fetcher, interceptor.WithKeyLogger(logger), interceptor.WithKeyClock(fixedClock{}))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		snap, err := src.RefreshKeys(ctx)
		if err != nil || snap == nil {
			t.Fatalf("RefreshKeys = %v, %v: the last good set must stay", snap, err)
		}
		srv, err := interceptor.NewServer(src, interceptor.WithIssuer(issuer), interceptor.WithAudience(audience),
			interceptor.WithClock(fixedClock{}), interceptor.WithLogger(logger),
			interceptor.WithAuditSink(interceptor.AuditSinkFunc(func(context.Context, interceptor.AuditRecord) {})),
			interceptor.WithRule(svcPath+"Scoped", interceptor.Rule{Scopes: []string{"test.read"}}))
		if err != nil {
			t.Fatal(err)
		}
		ran := false
		_, err = srv.UnaryServerInterceptor()(metadata.NewIncomingContext(ctx, md), nil,
			&grpc.UnaryServerInfo{FullMethod: svcPath + "Scoped"},
			func(context.Context, any) (any, error) { ran = true; return nil, nil })
		if ran != (err == nil) {
			t.Fatalf("handler ran %v with error %v", ran, err)
		}
		if ran && snap.Len() == 0 {
			t.Fatal("a call passed with an empty key set")
		}
	})
}
