package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestCallsigndPublicMethodsRefuseInvalidTokens: callsignd's own public
// methods (GetKeys, IssueToken, health) need no token, but one that is present
// and invalid is refused, also next to a valid client assertion; nothing of it
// is echoed or logged.
func TestCallsigndPublicMethodsRefuseInvalidTokens(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "", "")
	cc := d.dial(t)
	auth := callsignv1.NewAuthServiceClient(cc)
	health := healthpb.NewHealthClient(cc)
	priv, kid := d.credential(t, callerAccount)
	const bogus = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYXJrZXItYm9ndXMifQ."
	for _, tc := range []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"GetKeys", func(ctx context.Context) error {
			_, err := auth.GetKeys(ctx, &callsignv1.GetKeysRequest{})
			return err
		}},
		{"IssueToken", func(ctx context.Context) error {
			a, err := token.SignAssertion(priv, kid, callerAccount, d.info.Issuer, time.Now(), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_, err = auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
				Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: a}, Audience: verifierAudience})
			return err
		}},
		{"Health", func(ctx context.Context) error {
			_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
			defer cancel()
			if err := tc.call(ctx); err != nil {
				t.Fatalf("without a token: %v", err)
			}
			err := tc.call(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bogus))
			if status.Code(err) != codes.Unauthenticated || reasonOf(err) != "TOKEN_MALFORMED" {
				t.Fatalf("with an invalid token: %v", err)
			}
			if strings.Contains(err.Error(), "marker") || strings.Contains(d.out.String(), bogus[:20]) {
				t.Fatal("the invalid token is echoed or logged")
			}
		})
	}
}
