package token

import (
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

const testAccount = "acct-orders"

func assertionPayload() payload {
	return payload{
		{"iss", strconv.Quote(testAccount)},
		{"sub", strconv.Quote(testAccount)},
		{"aud", strconv.Quote(testIssuer)},
		{"exp", itoa(testT + 60)},
		{"iat", itoa(testT)},
		{"jti", strconv.Quote(testJTI)},
	}
}

var assertionHeader = `{"alg":"EdDSA","kid":"ed-1","typ":"JWT"}`

// checkAssertion runs the issuer's sequence: parse, claims (to learn the
// account), signature with that account's key.
func checkAssertion(raw string, now time.Time) (AssertionClaims, error) {
	p, err := ParseAssertion(raw)
	if err != nil {
		return AssertionClaims{}, err
	}
	c, err := p.AssertionClaims(testIssuer, now, 0, 0)
	if err != nil {
		return AssertionClaims{}, err
	}
	if err := p.VerifySignature(edKey.Key); err != nil {
		return AssertionClaims{}, err
	}
	return c, nil
}

func TestAssertionRoundTrip(t *testing.T) {
	raw, err := SignAssertion(edKey.Private, "ed-1", testAccount, testIssuer, testNow, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseAssertion(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.KID != "ed-1" || p.Type != 0 {
		t.Fatalf("parsed %+v", p)
	}
	hdrJSON, _ := b64Plain.DecodeString(raw[:strings.IndexByte(raw, '.')])
	if string(hdrJSON) != assertionHeader {
		t.Fatalf("header %s", hdrJSON)
	}
	c, err := checkAssertion(raw, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != testAccount || c.Audience != testIssuer || !c.Expiry.Equal(testNow.Add(time.Minute)) ||
		!c.IssuedAt.Equal(testNow) || len(c.ID) != 22 {
		t.Fatalf("claims %+v", c)
	}
	// Each assertion has its own jti.
	raw2, _ := SignAssertion(edKey.Private, "ed-1", testAccount, testIssuer, testNow, time.Minute)
	c2, err := checkAssertion(raw2, testNow)
	if err != nil || c2.ID == c.ID {
		t.Fatalf("second assertion: %v, same jti %v", err, c2.ID == c.ID)
	}
	// An assertion is not a token, and a token is not an assertion.
	if _, err := Parse(raw, EdDSA, TypeService); ReasonOf(err) != rMalformed {
		t.Fatalf("assertion parsed as a token: %v", err)
	}
	tok := signToken(t, edKey, serviceClaims())
	if _, err := ParseAssertion(tok); ReasonOf(err) != rMalformed {
		t.Fatalf("token parsed as an assertion: %v", err)
	}
	pt, err := Parse(tok, EdDSA, TypeService)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pt.AssertionClaims(testIssuer, testNow, 0, 0); ReasonOf(err) != rMalformed {
		t.Fatalf("token claims read as an assertion: %v", err)
	}
	if _, err := p.Claims(serviceExpect()); ReasonOf(err) != rMalformed {
		t.Fatalf("assertion claims read as a token: %v", err)
	}
	var nilParsed *Parsed
	if _, err := nilParsed.AssertionClaims(testIssuer, testNow, 0, 0); ReasonOf(err) != rMalformed {
		t.Fatal(err)
	}
}

func TestAssertionHeader(t *testing.T) {
	body := assertionPayload().String()
	cases := []struct {
		name   string
		header string
		want   callsignv1.Reason
	}{
		{"typ JWT", assertionHeader, rOK},
		{"no typ", `{"alg":"EdDSA","kid":"ed-1"}`, rOK},
		{"typ jwt", `{"alg":"EdDSA","kid":"ed-1","typ":"jwt"}`, rMalformed},
		{"typ of a service token", hdr("EdDSA", "ed-1", "svc+jwt"), rMalformed},
		{"typ empty", `{"alg":"EdDSA","kid":"ed-1","typ":""}`, rMalformed},
		{"alg none", `{"alg":"none","kid":"ed-1"}`, rMalformed},
		{"alg ES256", `{"alg":"ES256","kid":"ed-1"}`, rMalformed},
		{"alg HS256", `{"alg":"HS256","kid":"ed-1"}`, rMalformed},
		{"no kid", `{"alg":"EdDSA"}`, rMalformed},
		{"bad kid", `{"alg":"EdDSA","kid":"a b"}`, rMalformed},
		{"embedded jwk", `{"alg":"EdDSA","kid":"ed-1","jwk":{"kty":"OKP"}}`, rMalformed},
		{"x5c", `{"alg":"EdDSA","kid":"ed-1","x5c":["MIIB"]}`, rMalformed},
		{"crit", `{"alg":"EdDSA","kid":"ed-1","crit":["exp"]}`, rMalformed},
		{"duplicate alg", `{"alg":"EdDSA","alg":"EdDSA","kid":"ed-1"}`, rMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := forge(edKey, tc.header, body)
			_, err := checkAssertion(raw, testNow)
			wantReason(t, err, tc.want, raw)
		})
	}
	for _, raw := range []string{"", "a.b", "a.b.c.d", strings.Repeat("a", MaxTokenSize+1)} {
		_, err := ParseAssertion(raw)
		wantReason(t, err, rMalformed, raw)
	}
}

func TestAssertionClaims(t *testing.T) {
	base := assertionPayload()
	cases := []struct {
		name    string
		payload string
		want    callsignv1.Reason
		now     time.Time
	}{
		{name: "valid", payload: base.String()},
		{name: "aud array of one", payload: base.set("aud", `["`+testIssuer+`"]`).String()},
		{name: "aud array of two", payload: base.set("aud", `["`+testIssuer+`","other"]`).String(), want: rMalformed},
		{name: "aud empty array", payload: base.set("aud", `[]`).String(), want: rMalformed},
		{name: "aud array of a number", payload: base.set("aud", `[1]`).String(), want: rMalformed},
		{name: "aud other", payload: base.set("aud", `"other"`).String(), want: rAudience},
		{name: "aud array of another", payload: base.set("aud", `["other"]`).String(), want: rAudience},
		{name: "aud case", payload: base.set("aud", `"Callsign-test"`).String(), want: rAudience},
		{name: "aud token endpoint URL", payload: base.set("aud", `"https://callsign.example/callsign.v1.AuthService/IssueToken"`).String(), want: rAudience},
		{name: "iss differs from sub", payload: base.set("iss", `"acct-other"`).String(), want: rIssuer},
		{name: "iss missing", payload: base.del("iss").String(), want: rMalformed},
		{name: "sub missing", payload: base.del("sub").String(), want: rMalformed},
		{name: "sub empty", payload: base.set("sub", `""`).set("iss", `""`).String(), want: rMalformed},
		{name: "sub with a control character", payload: base.set("sub", `"a\u0000"`).set("iss", `"a\u0000"`).String(), want: rMalformed},
		{name: "jti missing", payload: base.del("jti").String(), want: rMalformed},
		{name: "jti short", payload: base.set("jti", `"abc"`).String(), want: rMalformed},
		{name: "iat missing", payload: base.del("iat").String(), want: rMalformed},
		{name: "exp missing", payload: base.del("exp").String(), want: rMalformed},
		{name: "exp string", payload: base.set("exp", `"`+itoa(testT+60)+`"`).String(), want: rMalformed},
		{name: "exp fraction", payload: base.set("exp", itoa(testT+60)+".5").String(), want: rMalformed},
		{name: "exp before iat", payload: base.set("exp", itoa(testT-1)).String(), want: rMalformed},
		{name: "duplicate jti", payload: base.add("jti", `"BBBBBBBBBBBBBBBBBBBBBB"`).String(), want: rMalformed},
		{name: "unknown claims ignored", payload: base.set("scope", `"x"`).set("foo", `[1]`).String()},
		{name: "exp at now+maxAhead", payload: base.set("exp", itoa(testT+300)).String()},
		{name: "exp beyond now+maxAhead", payload: base.set("exp", itoa(testT+301)).String(), want: rLifetime},
		{name: "exp at now-skew", payload: base.set("iat", itoa(testT-100)).set("exp", itoa(testT-30)).String(), want: rExpired},
		{name: "exp just after now-skew", payload: base.set("iat", itoa(testT-100)).set("exp", itoa(testT-29)).String()},
		{name: "iat at now+skew", payload: base.set("iat", itoa(testT+30)).String()},
		{name: "iat after now+skew", payload: base.set("iat", itoa(testT+31)).String(), want: rNotYetValid},
		{name: "nbf after now+skew", payload: base.set("nbf", itoa(testT+31)).String(), want: rNotYetValid},
		{name: "nbf not before exp", payload: base.set("nbf", itoa(testT+60)).String(), want: rMalformed},
		{name: "replayed much later", payload: base.String(), now: testNow.Add(time.Hour), want: rExpired},
		{name: "non-object", payload: `[]`, want: rMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = testNow
			}
			raw := forge(edKey, assertionHeader, tc.payload)
			_, err := checkAssertion(raw, now)
			wantReason(t, err, tc.want, raw)
		})
	}

	// Explicit skew and maxAhead, and an empty audience.
	p, err := ParseAssertion(forge(edKey, assertionHeader, base.set("exp", itoa(testT+120)).String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.AssertionClaims(testIssuer, testNow, time.Second, time.Minute); ReasonOf(err) != rLifetime {
		t.Fatalf("maxAhead: %v", err)
	}
	if _, err := p.AssertionClaims(testIssuer, testNow, time.Second, 2*time.Minute); err != nil {
		t.Fatalf("maxAhead: %v", err)
	}
	if _, err := p.AssertionClaims("", testNow, 0, 0); ReasonOf(err) != rAudience {
		t.Fatalf("empty audience: %v", err)
	}
	// Signed by another key: the claims read, the signature fails.
	raw := forge(edOther, assertionHeader, base.String())
	_, err = checkAssertion(raw, testNow)
	wantReason(t, err, rSignature, raw)
}

func TestSignAssertionRefuses(t *testing.T) {
	for _, tc := range []struct {
		name              string
		kid, account, aud string
		ttl               time.Duration
		ecdsa, nilSigner  bool
	}{
		{name: "ecdsa key", kid: "k", account: "a", aud: "b", ttl: time.Minute, ecdsa: true},
		{name: "nil key", kid: "k", account: "a", aud: "b", ttl: time.Minute, nilSigner: true},
		{name: "bad kid", kid: "a b", account: "a", aud: "b", ttl: time.Minute},
		{name: "empty account", kid: "k", account: "", aud: "b", ttl: time.Minute},
		{name: "account with newline", kid: "k", account: "a\nb", aud: "b", ttl: time.Minute},
		{name: "empty audience", kid: "k", account: "a", aud: "", ttl: time.Minute},
		{name: "zero ttl", kid: "k", account: "a", aud: "b"},
		{name: "negative ttl", kid: "k", account: "a", aud: "b", ttl: -time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var priv = edKey.Private
			if tc.ecdsa {
				priv = ecKey.Private
			}
			if tc.nilSigner {
				priv = nil
			}
			if _, err := SignAssertion(priv, tc.kid, tc.account, tc.aud, testNow, tc.ttl); err == nil {
				t.Fatal("signed")
			}
		})
	}
	if _, err := SignAssertion(ed25519.PrivateKey(make([]byte, 10)), "k", "a", "b", testNow, time.Minute); err == nil {
		t.Fatal("signed with a broken key")
	}
}
