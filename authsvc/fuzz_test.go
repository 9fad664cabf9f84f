package authsvc

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// The fuzz targets decode arbitrary bytes as the requests that arrive from the
// network and run them through the services (no transport: the same handlers
// the gRPC server calls). They check that nothing panics, that every answer
// is one of the documented codes with a fixed message, and that a refused
// admin request changed nothing. Seed corpora are in testdata/fuzz.

// fixedMessages are the only status messages the services send.
var fixedMessages = map[string]bool{
	"callsign: invalid request":            true,
	"callsign: credential not accepted":    true,
	"callsign: audience not granted":       true,
	"callsign: scope not granted":          true,
	"callsign: lifetime too long":          true,
	"callsign: user assertion not allowed": true,
	"callsign: tenant not allowed":         true,
	"callsign: no signing key available":   true,
	"callsign: not found":                  true,
	"callsign: already exists":             true,
	"callsign: account limit reached":      true,
}

func checkAnswer(t *testing.T, err error, allowed ...codes.Code) {
	t.Helper()
	if err == nil {
		return
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status: %v", err)
	}
	if !fixedMessages[st.Message()] {
		t.Fatalf("unexpected message %q", st.Message())
	}
	for _, c := range allowed {
		if st.Code() == c {
			return
		}
	}
	t.Fatalf("unexpected code %v", st.Code())
}

func fuzzEnv(f *testing.F) *env {
	e := newEnv(f)
	if _, err := e.store.UpdateAccount(context.Background(), "orders", func(a *Account) error {
		a.Secrets = append(a.Secrets, Secret{ID: "fixed", Hash: make([]byte, 32)})
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	return e
}

func FuzzIssueTokenRequest(f *testing.F) {
	e := fuzzEnv(f)
	f.Add(mustMarshal(issueReq(e.assertion("orders"), "billing", "billing.charge")))
	f.Add(mustMarshal(secretReq("orders", "cs_"+strings.Repeat("A", 43), "billing")))
	f.Add(mustMarshal(&callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: e.assertion("edge")},
		User:       &callsignv1.UserContext{UserId: "u", TenantId: "t1", Roles: []string{"r"}},
	}))
	srv := e.svc.AuthServer()
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &callsignv1.IssueTokenRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		resp, err := srv.IssueToken(context.Background(), req)
		checkAnswer(t, err, codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied)
		if err == nil && !validIssueTokenRequest(req) {
			t.Fatal("a token for an invalid request")
		}
		if err == nil && resp.GetToken() == "" {
			t.Fatal("OK without a token")
		}
	})
}

func FuzzVerifyRequest(f *testing.F) {
	e := fuzzEnv(f)
	tok := e.issue("orders", "billing").GetToken()
	f.Add(mustMarshal(&callsignv1.VerifyRequest{Token: tok, Audience: "billing"}))
	f.Add(mustMarshal(&callsignv1.VerifyRequest{Token: tok, TokenType: callsignv1.TokenType_TOKEN_TYPE_USER}))
	f.Add(mustMarshal(&callsignv1.VerifyRequest{Token: "a.b.c", Audience: "spiffe://x/y"}))
	srv := e.svc.AuthServer()
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &callsignv1.VerifyRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		resp, err := srv.Verify(context.Background(), req)
		checkAnswer(t, err, codes.InvalidArgument)
		if err == nil && resp.GetActive() != (resp.GetClaims() != nil) {
			t.Fatal("claims without an active verdict, or the reverse")
		}
	})
}

// adminCalls maps a selector byte to one AdminService RPC on decoded bytes.
var adminCalls = []func(ctx context.Context, s callsignv1.AdminServiceServer, data []byte) (bool, error){
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.CreateAccountRequest) error {
		_, err := s.CreateAccount(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.GetAccountRequest) error {
		_, err := s.GetAccount(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.ListAccountsRequest) error {
		_, err := s.ListAccounts(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.DisableAccountRequest) error {
		_, err := s.DisableAccount(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.EnableAccountRequest) error {
		_, err := s.EnableAccount(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.AddPublicKeyRequest) error {
		_, err := s.AddPublicKey(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.RemovePublicKeyRequest) error {
		_, err := s.RemovePublicKey(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.RotateSecretRequest) error {
		_, err := s.RotateSecret(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.SetGrantRequest) error {
		_, err := s.SetGrant(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.DeleteGrantRequest) error {
		_, err := s.DeleteGrant(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.SetUserAssertionRequest) error {
		_, err := s.SetUserAssertion(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.RevokeTokenRequest) error {
		_, err := s.RevokeToken(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.RevokeAccountTokensRequest) error {
		_, err := s.RevokeAccountTokens(ctx, r)
		return err
	}),
	adminCall(func(ctx context.Context, s callsignv1.AdminServiceServer, r *callsignv1.ListSigningKeysRequest) error {
		_, err := s.ListSigningKeys(ctx, r)
		return err
	}),
}

func adminCall[R any, P interface {
	*R
	proto.Message
}](call func(context.Context, callsignv1.AdminServiceServer, P) error) func(context.Context, callsignv1.AdminServiceServer, []byte) (bool, error) {
	return func(ctx context.Context, s callsignv1.AdminServiceServer, data []byte) (bool, error) {
		req := P(new(R))
		if decoded := proto.Unmarshal(data, req) == nil; !decoded {
			return false, nil
		}
		return true, call(ctx, s, req)
	}
}

func FuzzAdminRequest(f *testing.F) {
	e := fuzzEnv(f)
	k := newAccountKey(f, "k2")
	seeds := []struct {
		sel byte
		msg proto.Message
	}{
		{0, &callsignv1.CreateAccountRequest{AccountId: "new", Description: "d"}},
		{1, &callsignv1.GetAccountRequest{AccountId: "orders"}},
		{2, &callsignv1.ListAccountsRequest{PageSize: 2, PageToken: encodePageToken("edge")}},
		{3, &callsignv1.DisableAccountRequest{AccountId: "edge"}},
		{4, &callsignv1.EnableAccountRequest{AccountId: "off"}},
		{5, &callsignv1.AddPublicKeyRequest{AccountId: "orders", Jwk: k.jwk, KeyId: "k2"}},
		{6, &callsignv1.RemovePublicKeyRequest{AccountId: "orders", KeyId: "orders-1"}},
		{7, &callsignv1.RotateSecretRequest{AccountId: "orders", ReplaceExisting: true}},
		{8, &callsignv1.SetGrantRequest{AccountId: "orders", Grant: &callsignv1.Grant{Audience: "x", Scopes: []string{"y"}}}},
		{9, &callsignv1.DeleteGrantRequest{AccountId: "orders", Audience: "billing"}},
		{10, &callsignv1.SetUserAssertionRequest{AccountId: "orders", UserAssertion: &callsignv1.UserAssertion{Allowed: true, Tenants: []string{"*"}}}},
		{11, &callsignv1.RevokeTokenRequest{TokenId: "abcdefghijklmnop"}},
		{12, &callsignv1.RevokeAccountTokensRequest{AccountId: "orders"}},
		{13, &callsignv1.ListSigningKeysRequest{}},
	}
	for _, s := range seeds {
		f.Add(s.sel, mustMarshal(s.msg))
	}
	srv := e.svc.AdminServer()
	f.Fuzz(func(t *testing.T, sel byte, data []byte) {
		call := adminCalls[int(sel)%len(adminCalls)]
		before := e.snapshot()
		decoded, err := call(context.Background(), srv, data)
		if !decoded {
			return
		}
		checkAnswer(t, err, codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition)
		if err != nil && e.snapshot() != before {
			t.Fatal("a refused request changed the store")
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(sampleConfig))
	f.Add([]byte("issuer: x\n"))
	f.Add([]byte("accounts:\n  - id: a\n    grants:\n      - audience: b\n        scopes: [c]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			if cfg != nil {
				t.Fatal("configuration and error")
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatal("error text is not UTF-8")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("parsed configuration does not validate: %v", err)
		}
		if cfg.TokenLifetime > cfg.MaxTokenLifetime || cfg.Skew > MaxSkew {
			t.Fatal("limits not enforced")
		}
	})
}

func FuzzParseAccountJWK(f *testing.F) {
	_, jwk, _ := GenerateAccountKey()
	f.Add(jwk, "")
	f.Add(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`, "k1")
	f.Add(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"x"}`, "")
	f.Fuzz(func(t *testing.T, jwk, kid string) {
		gotKID, pub, err := parseAccountJWK(jwk, kid)
		if err != nil {
			return
		}
		if len(pub) != 32 || !validKeyID(gotKID) || (kid != "" && gotKID != kid) {
			t.Fatalf("accepted a bad key: kid %q, %d bytes", gotKID, len(pub))
		}
		if strings.Contains(jwk, `"d"`) {
			t.Fatal("accepted a private member")
		}
	})
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
