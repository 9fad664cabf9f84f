package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Fixed test keys, so that seed corpora and golden tokens stay valid.
var (
	edKey    = newEdSigner("ed-1", 1)
	edOther  = newEdSigner("ed-1", 2) // same kid, other key
	ecKey    = newECSigner("ec-1", 3)
	testNow  = time.Unix(testT, 0).UTC()
	b64Plain = base64.RawURLEncoding
)

const (
	testT        = 1_800_000_000 // 2027-01-15T08:00:00Z
	testIssuer   = "callsign-test"
	testAudience = "billing"
	testJTI      = "AAAAAAAAAAAAAAAAAAAAAA"
)

func newEdSigner(kid string, seed byte) Signer {
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed + byte(i)
	}
	priv := ed25519.NewKeyFromSeed(s)
	return Signer{Key: Key{ID: kid, Algorithm: EdDSA, Public: priv.Public()}, Private: priv}
}

func newECSigner(kid string, seed byte) Signer {
	d := make([]byte, 32)
	for i := range d {
		d[i] = seed + byte(i)
	}
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
	if err != nil {
		panic(err)
	}
	return Signer{Key: Key{ID: kid, Algorithm: ES256, Public: priv.Public()}, Private: priv}
}

func signerFor(alg Algorithm) Signer {
	if alg == ES256 {
		return ecKey
	}
	return edKey
}

func testKeySet(tb testing.TB, alg Algorithm) *KeySet {
	tb.Helper()
	set, err := NewKeySet(alg, []Key{signerFor(alg).Key})
	if err != nil {
		tb.Fatal(err)
	}
	return set
}

func serviceExpect() Expect {
	return Expect{Issuer: testIssuer, Audience: testAudience, Type: TypeService, Now: testNow}
}

func userExpect() Expect {
	e := serviceExpect()
	e.Type = TypeUser
	return e
}

func serviceClaims() Claims {
	id, err := NewID()
	if err != nil {
		panic(err)
	}
	return Claims{
		Type: TypeService, Issuer: testIssuer, Subject: "orders", Audience: testAudience,
		Expiry: testNow.Add(5 * time.Minute), IssuedAt: testNow, ID: id,
		Scopes: []string{"billing.charge", "billing.refund"},
	}
}

func userClaims() Claims {
	c := serviceClaims()
	c.Type, c.Subject, c.Scopes = TypeUser, "user-42", nil
	c.TenantID, c.Actor, c.Roles = "tenant-7", "edge", []string{"admin", "viewer"}
	return c
}

func signToken(tb testing.TB, s Signer, c Claims) string {
	tb.Helper()
	tok, err := s.Sign(c)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// enc is base64url without padding of s.
func enc(s string) string { return b64Plain.EncodeToString([]byte(s)) }

// hdr is the JSON header {"alg":alg,"kid":kid,"typ":typ}.
func hdr(alg, kid, typ string) string {
	return `{"alg":"` + alg + `","kid":"` + kid + `","typ":"` + typ + `"}`
}

var (
	svcHeader = hdr("EdDSA", "ed-1", "svc+jwt")
	usrHeader = hdr("EdDSA", "ed-1", "user+jwt")
)

// forge builds a compact token from raw header and payload JSON texts, signed
// by s over the encoded signing input exactly as a real issuer would, so that
// the checks after the signature are reached.
func forge(s Signer, header, payload string) string {
	msg := enc(header) + "." + enc(payload)
	return msg + "." + b64Plain.EncodeToString(signRaw(s, msg))
}

// forgeSegments signs the given encoded segments as they are.
func forgeSegments(s Signer, header, payload string) string {
	msg := header + "." + payload
	return msg + "." + b64Plain.EncodeToString(signRaw(s, msg))
}

func signRaw(s Signer, msg string) []byte {
	sig, err := signBytes(s.Private, s.Key.Algorithm, []byte(msg))
	if err != nil {
		panic(err)
	}
	return sig
}

// member is one name and raw JSON value of a payload under construction.
type member struct{ name, raw string }

// payload is an ordered JSON object under construction.
type payload []member

func servicePayload() payload {
	return payload{
		{"iss", strconv.Quote(testIssuer)},
		{"sub", `"orders"`},
		{"aud", strconv.Quote(testAudience)},
		{"exp", strconv.Itoa(testT + 300)},
		{"iat", strconv.Itoa(testT)},
		{"jti", strconv.Quote(testJTI)},
		{"scope", `"billing.charge billing.refund"`},
	}
}

func userPayload() payload {
	return payload{
		{"iss", strconv.Quote(testIssuer)},
		{"sub", `"user-42"`},
		{"aud", strconv.Quote(testAudience)},
		{"exp", strconv.Itoa(testT + 300)},
		{"iat", strconv.Itoa(testT)},
		{"jti", strconv.Quote(testJTI)},
		{"tenant_id", `"tenant-7"`},
		{"act", `{"sub":"edge"}`},
		{"roles", `["admin","viewer"]`},
	}
}

// set replaces the value of name, or appends it.
func (p payload) set(name, raw string) payload {
	out := append(payload(nil), p...)
	for i := range out {
		if out[i].name == name {
			out[i].raw = raw
			return out
		}
	}
	return append(out, member{name, raw})
}

// add appends name even when present (duplicates).
func (p payload) add(name, raw string) payload {
	return append(append(payload(nil), p...), member{name, raw})
}

func (p payload) del(name string) payload {
	var out payload
	for _, m := range p {
		if m.name != name {
			out = append(out, m)
		}
	}
	return out
}

func (p payload) String() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range p {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + m.name + `":`) // names are raw JSON string contents
		b.WriteString(m.raw)
	}
	b.WriteByte('}')
	return b.String()
}

// wantReason fails unless err is an *Error with reason want (or nil when want
// is zero), whose text is the fixed text of that reason and contains nothing
// of input.
func wantReason(t *testing.T, err error, want callsignv1.Reason, input string) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("got %v, want success", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want *Error %v", err, want)
	}
	if e.Reason != want {
		t.Fatalf("got reason %v, want %v", e.Reason, want)
	}
	if got, fixed := err.Error(), "token: "+want.String(); got != fixed {
		t.Fatalf("error text %q, want the fixed %q", got, fixed)
	}
	assertNoEcho(t, err.Error(), input)
}

// assertNoEcho fails when text contains input, or any piece of it of 8 bytes
// or more between separators (segments, JSON strings).
func assertNoEcho(t *testing.T, text, input string) {
	t.Helper()
	if input == "" {
		return
	}
	if strings.Contains(text, input) {
		t.Fatalf("error text %q repeats the input", text)
	}
	for _, piece := range strings.FieldsFunc(input, func(r rune) bool { return strings.ContainsRune(`.":,{}[] `, r) }) {
		if len(piece) >= 8 && strings.Contains(text, piece) {
			t.Fatalf("error text %q repeats %q of the input", text, piece)
		}
	}
}

const (
	rOK          = callsignv1.Reason_REASON_UNSPECIFIED
	rMalformed   = callsignv1.Reason_REASON_TOKEN_MALFORMED
	rSignature   = callsignv1.Reason_REASON_SIGNATURE_INVALID
	rExpired     = callsignv1.Reason_REASON_TOKEN_EXPIRED
	rNotYetValid = callsignv1.Reason_REASON_TOKEN_NOT_YET_VALID
	rLifetime    = callsignv1.Reason_REASON_LIFETIME_TOO_LONG
	rKeyUnknown  = callsignv1.Reason_REASON_KEY_UNKNOWN
	rIssuer      = callsignv1.Reason_REASON_ISSUER_MISMATCH
	rAudience    = callsignv1.Reason_REASON_AUDIENCE_MISMATCH
	rType        = callsignv1.Reason_REASON_TYPE_MISMATCH
)
