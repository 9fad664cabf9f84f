package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/callsign-dev/callsign/authsvc"
	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// newTestService is an authsvc.Service on an in-memory store.
func newTestService(t *testing.T) (*authsvc.Service, *authsvc.Config) {
	t.Helper()
	kek := make([]byte, kekSize)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	cfg := authsvc.DefaultConfig()
	svc, err := authsvc.New(context.Background(), authsvc.NewMemoryStore(), kek, cfg, authsvc.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	return svc, &cfg
}

// unruledServer is a service without any callsign rule.
type unruledServer interface{ Do() }

var unruledDesc = grpc.ServiceDesc{
	ServiceName: "example.v1.Unruled",
	HandlerType: (*unruledServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Do",
		Handler: func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
			return nil, nil
		},
	}},
	Metadata: "example/v1/unruled.proto",
}

type unruled struct{}

func (unruled) Do() {}

// TestCheckServer: callsignd's own server passes the start-up check (every
// method has a rule, health and reflection through explicit rules), and a
// method without a rule makes it refuse to start.
func TestCheckServer(t *testing.T) {
	svc, cfg := newTestService(t)
	reg := prometheus.NewRegistry()
	guard, closeKeys, err := selfProtection(context.Background(), svc, cfg, false, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer closeKeys()

	m, err := newRPCMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	gs, _ := newGRPCServer(svc, guard, m, nil, slog.New(slog.DiscardHandler))
	if err := checkServer(guard, gs); err != nil {
		t.Fatalf("callsignd's own server fails the check: %v", err)
	}
	for _, name := range exemptServices {
		if _, ok := gs.GetServiceInfo()[name]; !ok {
			t.Errorf("%s is not registered", name)
		}
	}

	gs.RegisterService(&unruledDesc, unruled{})
	err = checkServer(guard, gs)
	if err == nil || !strings.Contains(err.Error(), "/example.v1.Unruled/Do") {
		t.Fatalf("checkServer = %v, want a refusal naming /example.v1.Unruled/Do", err)
	}
	if strings.Contains(err.Error(), "AdminService") || strings.Contains(err.Error(), "Health") {
		t.Errorf("checkServer names methods that have rules: %v", err)
	}
}

// TestSelfAudienceMatchesProto: the audience callsignd verifies its own
// callers' tokens for is the audience declared on AuthService and
// AdminService.
func TestSelfAudienceMatchesProto(t *testing.T) {
	for _, fd := range []interface {
		Options() proto.Message
	}{
		callsignv1.File_callsign_v1_auth_proto.Services().ByName("AuthService"),
		callsignv1.File_callsign_v1_admin_proto.Services().ByName("AdminService"),
	} {
		rule, _ := proto.GetExtension(fd.Options(), callsignv1.E_Service).(*callsignv1.ServiceRule)
		if rule.GetAudience() != selfAudience {
			t.Errorf("service audience = %q, callsignd uses %q", rule.GetAudience(), selfAudience)
		}
	}
}

// TestSelfFetcherDropsHint: the in-process key source refreshes on its own
// interval, not on the hint meant for remote verifiers, and gets everything
// else unchanged.
func TestSelfFetcherDropsHint(t *testing.T) {
	svc, _ := newTestService(t)
	want, err := svc.GetKeys(context.Background(), &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := selfFetcher{svc}.GetKeys(context.Background(), &callsignv1.GetKeysRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetRefreshInterval() != nil {
		t.Error("refresh hint passed on")
	}
	if !bytes.Equal(got.GetJwks(), want.GetJwks()) || got.GetVersion() != want.GetVersion() || jwksLen(got.GetJwks()) == 0 {
		t.Error("keys or version changed")
	}
}
