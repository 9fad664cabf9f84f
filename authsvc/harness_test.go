package authsvc

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects log output, safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testKEK is a fixed key-encryption key for tests.
var testKEK = bytes.Repeat([]byte{7}, KEKSize)

// accountKey is a test account's private_key_jwt credential.
type accountKey struct {
	kid  string
	priv ed25519.PrivateKey
	jwk  string
}

func newAccountKey(t testing.TB, kid string) accountKey {
	t.Helper()
	priv, jwk, err := GenerateAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	// Replace the thumbprint kid by the chosen one.
	var x string
	m, err := flatJSONObject([]byte(jwk))
	if err != nil {
		t.Fatal(err)
	}
	x = m["x"]
	return accountKey{kid: kid, priv: priv, jwk: `{"kty":"OKP","crv":"Ed25519","x":"` + x + `"}`}
}

// env is a Service on a store, served over bufconn, with a fake clock and
// test accounts:
//   - orders: key orders-1, grant billing {billing.charge, billing.refund},
//     tenants [t1] (service tokens for tenant t1);
//   - edge: key edge-1, may assert users of tenants t1 and t2;
//   - nogrant: key nogrant-1, no grants, no user assertion;
//   - off: key off-1, grant billing, disabled.
type env struct {
	t      testing.TB
	clock  *fakeClock
	store  Store
	svc    *Service
	auth   callsignv1.AuthServiceClient
	admin  callsignv1.AdminServiceClient
	logs   *syncBuffer
	keys   map[string]accountKey
	cfg    Config
	closed bool
}

func testConfig(keys map[string]accountKey) Config {
	cfg := DefaultConfig()
	cfg.Accounts = []AccountConfig{
		{
			ID:         "orders",
			PublicKeys: []PublicKeyConfig{{KID: "orders-1", JWK: keys["orders"].jwk}},
			Grants:     []GrantConfig{{Audience: "billing", Scopes: []string{"billing.refund", "billing.charge"}}},
			UserAssertion: &UserAssertionConfig{
				Tenants: []string{"t1"},
			},
		},
		{
			ID:            "edge",
			PublicKeys:    []PublicKeyConfig{{KID: "edge-1", JWK: keys["edge"].jwk}},
			Grants:        []GrantConfig{{Audience: "orders", Scopes: []string{"orders.place"}}},
			UserAssertion: &UserAssertionConfig{Allowed: true, Tenants: []string{"t1", "t2"}},
		},
		{
			ID:         "nogrant",
			PublicKeys: []PublicKeyConfig{{KID: "nogrant-1", JWK: keys["nogrant"].jwk}},
		},
		{
			ID:         "off",
			Disabled:   true,
			PublicKeys: []PublicKeyConfig{{KID: "off-1", JWK: keys["off"].jwk}},
			Grants:     []GrantConfig{{Audience: "billing", Scopes: []string{"billing.charge"}}},
		},
	}
	return cfg
}

func newTestKeys(t testing.TB) map[string]accountKey {
	keys := map[string]accountKey{}
	for _, name := range []string{"orders", "edge", "nogrant", "off"} {
		keys[name] = newAccountKey(t, name+"-1")
	}
	return keys
}

// newEnv starts a Service on the memory store.
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, NewMemoryStore(), newFakeClock(), newTestKeys(t), nil)
}

func newEnvWith(t testing.TB, st Store, clock *fakeClock, keys map[string]accountKey, edit func(*Config)) *env {
	t.Helper()
	e := &env{t: t, clock: clock, store: st, logs: &syncBuffer{}, keys: keys}
	e.cfg = testConfig(keys)
	if edit != nil {
		edit(&e.cfg)
	}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	svc, err := New(context.Background(), st, testKEK, e.cfg, WithClock(clock.Now), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc

	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(MaxRequestSize))
	callsignv1.RegisterAuthServiceServer(srv, svc.AuthServer())
	callsignv1.RegisterAdminServiceServer(srv, svc.AdminServer())
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		if !e.closed {
			_ = st.Close()
		}
	})
	e.auth = callsignv1.NewAuthServiceClient(conn)
	e.admin = callsignv1.NewAdminServiceClient(conn)
	return e
}

// assertion signs a fresh client assertion for account with its key.
func (e *env) assertion(account string) string {
	e.t.Helper()
	k := e.keys[account]
	return e.assertionWith(k.priv, k.kid, account, e.cfg.Issuer, 30*time.Second)
}

func (e *env) assertionWith(priv ed25519.PrivateKey, kid, account, aud string, ttl time.Duration) string {
	e.t.Helper()
	a, err := token.SignAssertion(priv, kid, account, aud, e.clock.Now(), ttl)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// issueReq is a service token request for audience with an assertion.
func issueReq(assertion, audience string, scopes ...string) *callsignv1.IssueTokenRequest {
	return &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: assertion},
		Audience:   audience,
		Scopes:     scopes,
	}
}

func secretReq(account, secret, audience string) *callsignv1.IssueTokenRequest {
	return &callsignv1.IssueTokenRequest{
		Credential: &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: account, Secret: secret}},
		Audience:   audience,
	}
}

// rotateSecret creates a client secret for account through AdminService.
func (e *env) rotateSecret(account string, replace bool) string {
	e.t.Helper()
	resp, err := e.admin.RotateSecret(context.Background(), &callsignv1.RotateSecretRequest{AccountId: account, ReplaceExisting: replace})
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.GetSecret()
}

// keySet returns the published key set from GetKeys.
func (e *env) keySet() *token.KeySet {
	e.t.Helper()
	resp, err := e.auth.GetKeys(context.Background(), &callsignv1.GetKeysRequest{})
	if err != nil {
		e.t.Fatal(err)
	}
	ks, err := token.ParseJWKS(resp.GetJwks(), token.EdDSA)
	if err != nil {
		e.t.Fatal(err)
	}
	return ks
}

// wantStatus checks an error's code, ErrorInfo reason and fixed message.
func wantStatus(t testing.TB, err error, code codes.Code, reason callsignv1.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v %v", code, reason)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status: %v", err)
	}
	if st.Code() != code {
		t.Fatalf("code = %v (%s), want %v", st.Code(), st.Message(), code)
	}
	if reason == callsignv1.Reason_REASON_UNSPECIFIED {
		return
	}
	var got string
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != ErrorDomain {
				t.Fatalf("domain = %q", info.GetDomain())
			}
			got = info.GetReason()
		}
	}
	if got != ReasonString(reason) {
		t.Fatalf("reason = %q, want %q", got, ReasonString(reason))
	}
}

// snapshot captures everything observable in the store, to show that a failed
// request changed nothing.
func (e *env) snapshot() string {
	ctx := context.Background()
	st, err := e.store.State(ctx)
	if err != nil {
		return "state: " + err.Error()
	}
	accts, err := e.store.ListAccounts(ctx, "", 10000)
	if err != nil {
		return "accounts: " + err.Error()
	}
	var b strings.Builder
	for _, a := range accts {
		doc, _ := encodeAccount(a)
		b.WriteString(a.ID)
		b.Write(doc)
		b.WriteString(a.DisabledAt.String())
	}
	for _, k := range st.Keys {
		b.WriteString(k.ID + string(k.State) + k.RemoveAt.String())
	}
	for _, r := range st.RevokedTokens {
		b.WriteString(r.ID + r.DropAt.String())
	}
	for _, r := range st.RevokedAccounts {
		b.WriteString(r.Account + r.IssuedBefore.String())
	}
	b.WriteString(time.Duration(st.Version).String())
	return b.String()
}

var errBoom = errors.New("boom")

var _ = io.Discard

func timestampAt(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func addKeyReq(account string, k accountKey) *callsignv1.AddPublicKeyRequest {
	return &callsignv1.AddPublicKeyRequest{AccountId: account, Jwk: k.jwk, KeyId: k.kid}
}
