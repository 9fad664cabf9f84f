package authsvc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func TestAdminAccounts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	created, err := e.admin.CreateAccount(ctx, &callsignv1.CreateAccountRequest{AccountId: "spiffe://example.org/ns/prod/sa/reports", Description: "Reports"})
	if err != nil {
		t.Fatal(err)
	}
	a := created.GetAccount()
	if a.GetStatus() != callsignv1.AccountStatus_ACCOUNT_STATUS_ACTIVE || a.GetDescription() != "Reports" || a.GetDisableTime() != nil ||
		!a.GetCreateTime().AsTime().Equal(e.clock.Now()) {
		t.Fatalf("created: %v", a)
	}
	_, err = e.admin.CreateAccount(ctx, &callsignv1.CreateAccountRequest{AccountId: "orders"})
	wantStatus(t, err, codes.AlreadyExists, 0)

	got, err := e.admin.GetAccount(ctx, &callsignv1.GetAccountRequest{AccountId: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	g := got.GetAccount()
	if len(g.GetPublicKeys()) != 1 || g.GetPublicKeys()[0].GetKeyId() != "orders-1" || len(g.GetGrants()) != 1 ||
		strings.Join(g.GetGrants()[0].GetScopes(), ",") != "billing.charge,billing.refund" || g.GetUserAssertion().GetAllowed() {
		t.Fatalf("orders: %v", g)
	}
	_, err = e.admin.GetAccount(ctx, &callsignv1.GetAccountRequest{AccountId: "nobody"})
	wantStatus(t, err, codes.NotFound, 0)

	dis, err := e.admin.DisableAccount(ctx, &callsignv1.DisableAccountRequest{AccountId: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	if dis.GetAccount().GetStatus() != callsignv1.AccountStatus_ACCOUNT_STATUS_DISABLED || dis.GetAccount().GetDisableTime() == nil {
		t.Fatalf("disabled: %v", dis.GetAccount())
	}
	_, err = e.auth.IssueToken(ctx, issueReq(e.assertion("orders"), "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
	en, err := e.admin.EnableAccount(ctx, &callsignv1.EnableAccountRequest{AccountId: "orders"})
	if err != nil || en.GetAccount().GetStatus() != callsignv1.AccountStatus_ACCOUNT_STATUS_ACTIVE || en.GetAccount().GetDisableTime() != nil {
		t.Fatalf("enabled: %v %v", en, err)
	}
	e.issue("orders", "billing")
	_, err = e.admin.DisableAccount(ctx, &callsignv1.DisableAccountRequest{AccountId: "nobody"})
	wantStatus(t, err, codes.NotFound, 0)
	_, err = e.admin.EnableAccount(ctx, &callsignv1.EnableAccountRequest{AccountId: "nobody"})
	wantStatus(t, err, codes.NotFound, 0)
}

func TestAdminListAccountsPagination(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 25 {
		if _, err := e.admin.CreateAccount(ctx, &callsignv1.CreateAccountRequest{AccountId: fmt.Sprintf("svc-%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	token := ""
	pages := 0
	for {
		resp, err := e.admin.ListAccounts(ctx, &callsignv1.ListAccountsRequest{PageSize: 10, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, a := range resp.GetAccounts() {
			ids = append(ids, a.GetAccountId())
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	// 25 created + 4 from the configuration.
	if len(ids) != 29 || pages != 3 || ids[0] != "edge" || ids[28] != "svc-24" {
		t.Fatalf("%d ids in %d pages: %v", len(ids), pages, ids)
	}
	all, err := e.admin.ListAccounts(ctx, &callsignv1.ListAccountsRequest{})
	if err != nil || len(all.GetAccounts()) != 29 || all.GetNextPageToken() != "" {
		t.Fatalf("default page: %d %v", len(all.GetAccounts()), err)
	}
	for _, bad := range []*callsignv1.ListAccountsRequest{
		{PageSize: -1}, {PageSize: 1001}, {PageToken: "!!"}, {PageToken: encodePageToken("UPPER")},
	} {
		_, err := e.admin.ListAccounts(ctx, bad)
		wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
	}
}

func TestAdminPublicKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k := newAccountKey(t, "orders-2")
	added, err := e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "orders", Jwk: k.jwk, KeyId: "orders-2"})
	if err != nil {
		t.Fatal(err)
	}
	if added.GetPublicKey().GetKeyId() != "orders-2" || added.GetPublicKey().GetJwk() != k.jwk {
		t.Fatalf("added: %v", added)
	}
	// Both keys work: rotation with overlap.
	if _, err := e.auth.IssueToken(ctx, issueReq(e.assertionWith(k.priv, "orders-2", "orders", "callsign", 30*time.Second), "billing")); err != nil {
		t.Fatal(err)
	}
	e.issue("orders", "billing")
	_, err = e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "orders", Jwk: k.jwk, KeyId: "orders-2"})
	wantStatus(t, err, codes.AlreadyExists, 0)
	_, err = e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "nobody", Jwk: k.jwk})
	wantStatus(t, err, codes.NotFound, 0)

	// Default kid: the RFC 7638 thumbprint.
	k3 := newAccountKey(t, "")
	added3, err := e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "orders", Jwk: k3.jwk})
	if err != nil {
		t.Fatal(err)
	}
	if kid := added3.GetPublicKey().GetKeyId(); len(kid) != 43 {
		t.Fatalf("thumbprint kid %q", kid)
	}

	if _, err := e.admin.RemovePublicKey(ctx, &callsignv1.RemovePublicKeyRequest{AccountId: "orders", KeyId: "orders-1"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.auth.IssueToken(ctx, issueReq(e.assertion("orders"), "billing"))
	wantStatus(t, err, codes.Unauthenticated, callsignv1.Reason_REASON_CREDENTIAL_INVALID)
	_, err = e.admin.RemovePublicKey(ctx, &callsignv1.RemovePublicKeyRequest{AccountId: "orders", KeyId: "orders-1"})
	wantStatus(t, err, codes.NotFound, 0)

	badJWKs := map[string]string{
		"private member": strings.TrimSuffix(k.jwk, "}") + `,"d":"AAAA"}`,
		"wrong kty":      strings.Replace(k.jwk, "OKP", "EC", 1),
		"wrong crv":      strings.Replace(k.jwk, "Ed25519", "X25519", 1),
		"short x":        `{"kty":"OKP","crv":"Ed25519","x":"AAAA"}`,
		"padded x":       strings.Replace(k.jwk, `"}`, `="}`, 1),
		"duplicate x":    strings.TrimSuffix(k.jwk, "}") + `,"x":"AAAA"}`,
		"not an object":  `["kty"]`,
		"trailing data":  k.jwk + "{}",
		"wrong alg":      strings.TrimSuffix(k.jwk, "}") + `,"alg":"ES256"}`,
		"nested":         strings.TrimSuffix(k.jwk, "}") + `,"key_ops":["verify"]}`,
		"too large":      strings.TrimSuffix(k.jwk, "}") + `,"kid":"` + strings.Repeat("a", 4100) + `"}`,
		"empty":          "",
	}
	for name, jwk := range badJWKs {
		before := e.snapshot()
		_, err := e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "orders", Jwk: jwk})
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
		if e.snapshot() != before {
			t.Fatalf("%s: store changed", name)
		}
	}
	// kid given twice, differently; kid charset; expiry in the past.
	for name, req := range map[string]*callsignv1.AddPublicKeyRequest{
		"kid mismatch": {AccountId: "orders", Jwk: strings.TrimSuffix(k.jwk, "}") + `,"kid":"a"}`, KeyId: "b"},
		"kid charset":  {AccountId: "orders", Jwk: k.jwk, KeyId: "a b"},
		"past expiry":  {AccountId: "orders", Jwk: k3.jwk, KeyId: "k3", ExpireTime: timestampAt(e.clock.Now().Add(-time.Second))},
	} {
		_, err := e.admin.AddPublicKey(ctx, req)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
	}
	// The account's key limit.
	for i := range MaxAccountKeys {
		nk := newAccountKey(t, "")
		_, err := e.admin.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: "nogrant", Jwk: nk.jwk, KeyId: fmt.Sprintf("n%d", i)})
		if i < MaxAccountKeys-1 && err != nil {
			t.Fatal(err)
		}
		if i == MaxAccountKeys-1 {
			wantStatus(t, err, codes.FailedPrecondition, 0)
		}
	}
}

func TestAdminGrantsAndUserAssertion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	resp, err := e.admin.SetGrant(ctx, &callsignv1.SetGrantRequest{AccountId: "nogrant", Grant: &callsignv1.Grant{Audience: "billing", Scopes: []string{"z", "a"}}})
	if err != nil {
		t.Fatal(err)
	}
	if gs := resp.GetAccount().GetGrants(); len(gs) != 1 || strings.Join(gs[0].GetScopes(), ",") != "a,z" {
		t.Fatalf("grants: %v", gs)
	}
	tok := e.issue("nogrant", "billing")
	if strings.Join(tok.GetScopes(), ",") != "a,z" {
		t.Fatalf("scopes %v", tok.GetScopes())
	}
	// A grant without scopes gives tokens without scopes.
	if _, err := e.admin.SetGrant(ctx, &callsignv1.SetGrantRequest{AccountId: "nogrant", Grant: &callsignv1.Grant{Audience: "audit"}}); err != nil {
		t.Fatal(err)
	}
	if tok := e.issue("nogrant", "audit"); len(tok.GetScopes()) != 0 {
		t.Fatalf("scopes %v", tok.GetScopes())
	}
	del, err := e.admin.DeleteGrant(ctx, &callsignv1.DeleteGrantRequest{AccountId: "nogrant", Audience: "billing"})
	if err != nil || len(del.GetAccount().GetGrants()) != 1 {
		t.Fatalf("delete: %v %v", del, err)
	}
	_, err = e.auth.IssueToken(ctx, issueReq(e.assertion("nogrant"), "billing"))
	wantStatus(t, err, codes.PermissionDenied, callsignv1.Reason_REASON_AUDIENCE_NOT_GRANTED)
	_, err = e.admin.DeleteGrant(ctx, &callsignv1.DeleteGrantRequest{AccountId: "nogrant", Audience: "billing"})
	wantStatus(t, err, codes.NotFound, 0)
	_, err = e.admin.SetGrant(ctx, &callsignv1.SetGrantRequest{AccountId: "nobody", Grant: &callsignv1.Grant{Audience: "billing"}})
	wantStatus(t, err, codes.NotFound, 0)

	ua, err := e.admin.SetUserAssertion(ctx, &callsignv1.SetUserAssertionRequest{AccountId: "nogrant", UserAssertion: &callsignv1.UserAssertion{Allowed: true, Tenants: []string{"*"}}})
	if err != nil || !ua.GetAccount().GetUserAssertion().GetAllowed() {
		t.Fatalf("user assertion: %v %v", ua, err)
	}
	e.issueUser("nogrant", "u1", "any-tenant")
	_, err = e.admin.SetUserAssertion(ctx, &callsignv1.SetUserAssertionRequest{AccountId: "nobody", UserAssertion: &callsignv1.UserAssertion{}})
	wantStatus(t, err, codes.NotFound, 0)

	for name, req := range map[string]proto.Message{
		"grant without audience": &callsignv1.SetGrantRequest{AccountId: "nogrant", Grant: &callsignv1.Grant{}},
		"grant missing":          &callsignv1.SetGrantRequest{AccountId: "nogrant"},
		"grant bad scope":        &callsignv1.SetGrantRequest{AccountId: "nogrant", Grant: &callsignv1.Grant{Audience: "x", Scopes: []string{"a b"}}},
		"rule missing":           &callsignv1.SetUserAssertionRequest{AccountId: "nogrant"},
		"duplicate tenant":       &callsignv1.SetUserAssertionRequest{AccountId: "nogrant", UserAssertion: &callsignv1.UserAssertion{Allowed: true, Tenants: []string{"a", "a"}}},
		"tenant with space":      &callsignv1.SetUserAssertionRequest{AccountId: "nogrant", UserAssertion: &callsignv1.UserAssertion{Allowed: true, Tenants: []string{"a b"}}},
		"delete grant bad aud":   &callsignv1.DeleteGrantRequest{AccountId: "nogrant", Audience: ""},
	} {
		before := e.snapshot()
		var err error
		switch r := req.(type) {
		case *callsignv1.SetGrantRequest:
			_, err = e.admin.SetGrant(ctx, r)
		case *callsignv1.SetUserAssertionRequest:
			_, err = e.admin.SetUserAssertion(ctx, r)
		case *callsignv1.DeleteGrantRequest:
			_, err = e.admin.DeleteGrant(ctx, r)
		}
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
		if e.snapshot() != before {
			t.Fatalf("%s: store changed", name)
		}
	}
}

func TestAdminSecrets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r, err := e.admin.RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := e.admin.GetAccount(ctx, &callsignv1.GetAccountRequest{AccountId: "orders"})
	if len(got.GetAccount().GetSecrets()) != 1 || got.GetAccount().GetSecrets()[0].GetSecretId() != r.GetInfo().GetSecretId() {
		t.Fatalf("secrets: %v", got.GetAccount().GetSecrets())
	}
	if strings.Contains(fmt.Sprint(got), r.GetSecret()) {
		t.Fatal("the secret is returned again")
	}
	_, err = e.admin.RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "nobody"})
	wantStatus(t, err, codes.NotFound, 0)
	_, err = e.admin.RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "orders", ExpireTime: timestampAt(e.clock.Now())})
	wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
	for range MaxAccountSecrets - 1 {
		e.rotateSecret("orders", false)
	}
	_, err = e.admin.RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: "orders"})
	wantStatus(t, err, codes.FailedPrecondition, 0)
	e.rotateSecret("orders", true)
}

func TestAdminRevocationValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	now := e.clock.Now()
	cases := map[string]*callsignv1.RevokeTokenRequest{
		"empty id":    {},
		"id charset":  {TokenId: "a.b"},
		"id too long": {TokenId: strings.Repeat("a", 129)},
		"far expiry":  {TokenId: "abc", ExpireTime: timestampAt(now.Add(time.Hour))},
	}
	for name, req := range cases {
		before := e.snapshot()
		_, err := e.admin.RevokeToken(ctx, req)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
		if e.snapshot() != before {
			t.Fatalf("%s: store changed", name)
		}
	}
	_, err := e.admin.RevokeAccountTokens(ctx, &callsignv1.RevokeAccountTokensRequest{AccountId: "orders", IssuedBefore: timestampAt(now.Add(time.Hour))})
	wantStatus(t, err, codes.InvalidArgument, callsignv1.Reason_REASON_REQUEST_INVALID)
	_, err = e.admin.RevokeAccountTokens(ctx, &callsignv1.RevokeAccountTokensRequest{AccountId: "nobody"})
	wantStatus(t, err, codes.NotFound, 0)
}
