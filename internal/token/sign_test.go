package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, s := range []Signer{edKey, ecKey} {
		keys := testKeySet(t, s.Key.Algorithm)
		for _, tc := range []struct {
			name   string
			claims Claims
			expect Expect
		}{
			{"service", serviceClaims(), serviceExpect()},
			{"user", userClaims(), userExpect()},
		} {
			t.Run(string(s.Key.Algorithm)+" "+tc.name, func(t *testing.T) {
				c := tc.claims
				c.NotBefore = testNow.Add(-time.Second)
				tok := signToken(t, s, c)
				got, err := Verify(tok, s.Key.Algorithm, keys, tc.expect)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, c) {
					t.Fatalf("round trip\n got %+v\nwant %+v", got, c)
				}
				// The header is exactly {alg, kid, typ}, in that order.
				h, _ := b64Plain.DecodeString(tok[:strings.IndexByte(tok, '.')])
				if want := hdr(string(s.Key.Algorithm), s.Key.ID, c.Type.String()); string(h) != want {
					t.Fatalf("header %s, want %s", h, want)
				}
			})
		}
	}
}

func TestSignPayload(t *testing.T) {
	c := serviceClaims()
	c.ID = testJTI
	c.Expiry = c.Expiry.Add(999 * time.Millisecond) // truncated to whole seconds
	c.Subject = `svc "quoted" \ back`
	tok := signToken(t, edKey, c)
	p, _ := b64Plain.DecodeString(strings.Split(tok, ".")[1])
	want := `{"iss":"callsign-test","sub":"svc \"quoted\" \\ back","aud":"billing","exp":1800000300,"iat":1800000000,` +
		`"jti":"AAAAAAAAAAAAAAAAAAAAAA","scope":"billing.charge billing.refund"}`
	if string(p) != want {
		t.Fatalf("payload\n got %s\nwant %s", p, want)
	}
	u := userClaims()
	u.ID, u.Roles = testJTI, nil
	tok = signToken(t, edKey, u)
	p, _ = b64Plain.DecodeString(strings.Split(tok, ".")[1])
	want = `{"iss":"callsign-test","sub":"user-42","aud":"billing","exp":1800000300,"iat":1800000000,` +
		`"jti":"AAAAAAAAAAAAAAAAAAAAAA","tenant_id":"tenant-7","act":{"sub":"edge"},"roles":[]}`
	if string(p) != want {
		t.Fatalf("payload\n got %s\nwant %s", p, want)
	}
}

// opaqueSigner hides the concrete key type, as a KMS or HSM signer would.
type opaqueSigner struct{ crypto.Signer }

func (o opaqueSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.Signer.Sign(r, digest, opts)
}

func TestSignOpaqueSigner(t *testing.T) {
	for _, s := range []Signer{edKey, ecKey} {
		opaque := Signer{Key: s.Key, Private: opaqueSigner{s.Private}}
		tok := signToken(t, opaque, serviceClaims())
		if _, err := Verify(tok, s.Key.Algorithm, testKeySet(t, s.Key.Algorithm), serviceExpect()); err != nil {
			t.Fatalf("%s: %v", s.Key.Algorithm, err)
		}
	}
}

func TestSignRefuses(t *testing.T) {
	mod := func(f func(*Claims)) Claims {
		c := serviceClaims()
		f(&c)
		return c
	}
	umod := func(f func(*Claims)) Claims {
		c := userClaims()
		f(&c)
		return c
	}
	many := make([]string, MaxScopes+1)
	for i := range many {
		many[i] = "s"
	}
	cases := []struct {
		name   string
		signer Signer
		claims Claims
	}{
		{"unknown type", edKey, mod(func(c *Claims) { c.Type = 0 })},
		{"private key of another public key", Signer{Key: edKey.Key, Private: edOther.Private}, serviceClaims()},
		{"ecdsa private key for an EdDSA key", Signer{Key: edKey.Key, Private: ecKey.Private}, serviceClaims()},
		{"no private key", Signer{Key: edKey.Key}, serviceClaims()},
		{"nil ecdsa private key", Signer{Key: ecKey.Key, Private: (*ecdsa.PrivateKey)(nil)}, serviceClaims()},
		{"short ed25519 private key", Signer{Key: edKey.Key, Private: ed25519.PrivateKey(make([]byte, 10))}, serviceClaims()},
		{"invalid kid", Signer{Key: Key{ID: "a b", Algorithm: EdDSA, Public: edKey.Key.Public}, Private: edKey.Private}, serviceClaims()},
		{"unknown algorithm", Signer{Key: Key{ID: "k", Algorithm: "HS256", Public: edKey.Key.Public}, Private: edKey.Private}, serviceClaims()},
		{"empty issuer", edKey, mod(func(c *Claims) { c.Issuer = "" })},
		{"empty audience", edKey, mod(func(c *Claims) { c.Audience = "" })},
		{"empty subject", edKey, mod(func(c *Claims) { c.Subject = "" })},
		{"subject with a newline", edKey, mod(func(c *Claims) { c.Subject = "a\nb" })},
		{"subject invalid UTF-8", edKey, mod(func(c *Claims) { c.Subject = "a\xff" })},
		{"empty jti", edKey, mod(func(c *Claims) { c.ID = "" })},
		{"short jti", edKey, mod(func(c *Claims) { c.ID = "abc" })},
		{"no expiry", edKey, mod(func(c *Claims) { c.Expiry = time.Time{} })},
		{"no iat", edKey, mod(func(c *Claims) { c.IssuedAt = time.Time{} })},
		{"exp equal to iat", edKey, mod(func(c *Claims) { c.Expiry = c.IssuedAt })},
		{"iat before 1970", edKey, mod(func(c *Claims) { c.IssuedAt = time.Unix(-10, 0) })},
		{"exp after 9999", edKey, mod(func(c *Claims) { c.Expiry = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"nbf at exp", edKey, mod(func(c *Claims) { c.NotBefore = c.Expiry })},
		{"invalid scope", edKey, mod(func(c *Claims) { c.Scopes = []string{"a b"} })},
		{"empty scope", edKey, mod(func(c *Claims) { c.Scopes = []string{""} })},
		{"too many scopes", edKey, mod(func(c *Claims) { c.Scopes = many })},
		{"tenant with a control character", edKey, mod(func(c *Claims) { c.TenantID = "t\x00" })},
		{"actor on a service token", edKey, mod(func(c *Claims) { c.Actor = "edge" })},
		{"roles on a service token", edKey, mod(func(c *Claims) { c.Roles = []string{"admin"} })},
		{"user without tenant", edKey, umod(func(c *Claims) { c.TenantID = "" })},
		{"user without actor", edKey, umod(func(c *Claims) { c.Actor = "" })},
		{"user with scopes", edKey, umod(func(c *Claims) { c.Scopes = []string{"a"} })},
		{"user with an empty role", edKey, umod(func(c *Claims) { c.Roles = []string{""} })},
		{"user with too many roles", edKey, umod(func(c *Claims) { c.Roles = make([]string, MaxRoles+1) })},
		{"token over the size limit", edKey, umod(func(c *Claims) {
			c.Subject, c.Actor = strings.Repeat("s", MaxSubjectLength), strings.Repeat("a", MaxSubjectLength)
			c.Roles = make([]string, MaxRoles)
			for i := range c.Roles {
				c.Roles[i] = strings.Repeat("r", MaxTextLength)
			}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tok, err := tc.signer.Sign(tc.claims); err == nil {
				t.Fatalf("signed %s", tok)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 || !validID(id) {
			t.Fatalf("id %q", id)
		}
		if b, err := b64.DecodeString(id); err != nil || len(b) != 16 {
			t.Fatalf("id %q does not decode to 16 bytes", id)
		}
		if seen[id] {
			t.Fatal("repeated id")
		}
		seen[id] = true
	}
}

// TestInteropJWX: tokens and key sets written here are standard JOSE that
// jwx (and so Envoy, Istio or any JOSE library) verifies.
func TestInteropJWX(t *testing.T) {
	for _, s := range []Signer{edKey, ecKey} {
		t.Run(string(s.Key.Algorithm), func(t *testing.T) {
			doc, err := MarshalJWKS([]Key{s.Key})
			if err != nil {
				t.Fatal(err)
			}
			set, err := jwk.Parse(doc)
			if err != nil {
				t.Fatal(err)
			}
			tok := signToken(t, s, serviceClaims())
			if _, err := jws.Verify([]byte(tok), jws.WithKeySet(set)); err != nil {
				t.Fatalf("jws.Verify: %v", err)
			}
			parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set), jwt.WithClock(jwt.ClockFunc(func() time.Time { return testNow })),
				jwt.WithAudience(testAudience), jwt.WithIssuer(testIssuer))
			if err != nil {
				t.Fatalf("jwt.Parse: %v", err)
			}
			if parsed.Subject() != "orders" {
				t.Fatalf("subject %q", parsed.Subject())
			}
			// And the reverse: a token jwx signs with exactly the profile's
			// header verifies here.
			hdrs := jws.NewHeaders()
			_ = hdrs.Set(jws.KeyIDKey, s.Key.ID)
			_ = hdrs.Set(jws.TypeKey, "svc+jwt")
			payload := servicePayload().String()
			out, err := jws.Sign([]byte(payload), jws.WithKey(jwa.SignatureAlgorithm(s.Key.Algorithm), s.Private, jws.WithProtectedHeaders(hdrs)))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(string(out), s.Key.Algorithm, testKeySet(t, s.Key.Algorithm), serviceExpect()); err != nil {
				t.Fatalf("jwx-signed token: %v", err)
			}
		})
	}
}

func TestNewSigner(t *testing.T) {
	for _, s := range []Signer{edKey, ecKey} {
		got, err := NewSigner(s.Key, s.Private)
		if err != nil {
			t.Fatal(err)
		}
		tok := signToken(t, *got, serviceClaims())
		if _, err := Verify(tok, s.Key.Algorithm, testKeySet(t, s.Key.Algorithm), serviceExpect()); err != nil {
			t.Fatal(err)
		}
	}
	// A corrupt Ed25519 private key whose stored public half is the identity:
	// Sign's cheap check sees matching halves; NewSigner's full check refuses
	// the point.
	identity := badEdKeys["identity (order 1)"]
	corrupt := append(append(ed25519.PrivateKey(nil), edKey.Private.(ed25519.PrivateKey)[:32]...), identity...)
	key := Key{ID: "ed-x", Algorithm: EdDSA, Public: ed25519.PublicKey(identity)}
	if _, err := NewSigner(key, corrupt); err == nil {
		t.Fatal("NewSigner accepted a small-order public key")
	}
	for _, tc := range []struct {
		name string
		key  Key
		priv crypto.Signer
	}{
		{"other private key", edKey.Key, edOther.Private},
		{"invalid kid", Key{ID: "", Algorithm: EdDSA, Public: edKey.Key.Public}, edKey.Private},
		{"nil private key", edKey.Key, nil},
		{"algorithm of the other key", Key{ID: "k", Algorithm: ES256, Public: edKey.Key.Public}, edKey.Private},
	} {
		if _, err := NewSigner(tc.key, tc.priv); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
