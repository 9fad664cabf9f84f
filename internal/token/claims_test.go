package token

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// claimsCase is one payload, signed with the test key under the service or
// user header, checked with an Expect (serviceExpect or userExpect when nil).
type claimsCase struct {
	name    string
	payload string
	want    callsignv1.Reason
	expect  func(*Expect)
}

func runClaims(t *testing.T, header string, base Expect, cases []claimsCase) {
	t.Helper()
	keys := testKeySet(t, EdDSA)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exp := base
			if tc.expect != nil {
				tc.expect(&exp)
			}
			tok := forge(edKey, header, tc.payload)
			_, err := Verify(tok, EdDSA, keys, exp)
			wantReason(t, err, tc.want, tok)
			// The same through the steps one by one.
			p, err := Parse(tok, EdDSA, exp.Type)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.VerifySignature(edKey.Key); err != nil {
				t.Fatal(err)
			}
			_, err = p.Claims(exp)
			wantReason(t, err, tc.want, tc.payload)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// dateCases are the shapes of a NumericDate claim that the profile refuses.
func dateCases(name string, base payload) []claimsCase {
	var out []claimsCase
	for _, v := range []string{
		`0`, `-1`, `-0`, `"` + itoa(testT) + `"`, itoa(testT) + `.0`, itoa(testT) + `.5`, `1.8e9`, itoa(testT) + `e0`,
		`1E9`, `0` + itoa(testT), `+` + itoa(testT), `253402300800`, `1e30`, `99999999999999999999999`,
		`null`, `true`, `[` + itoa(testT) + `]`, `{}`, `""`, `NaN`, `Infinity`, `0x6B49D200`,
	} {
		out = append(out, claimsCase{name: name + " " + v, payload: base.set(name, v).String(), want: rMalformed})
	}
	return out
}

func TestClaimsServiceShapes(t *testing.T) {
	base := servicePayload()
	cases := []claimsCase{
		{name: "valid", payload: base.String()},
		{name: "nbf present", payload: base.set("nbf", itoa(testT)).String()},
		{name: "no scope", payload: base.del("scope").String()},
		{name: "tenant on a service token", payload: base.set("tenant_id", `"tenant-7"`).String()},
		{name: "unknown claims are ignored", payload: base.set("foo", `{"a":[1,2.5,-3e2,{"b":null,"c":true}],"d":"\u00e9"}`).set("bar", `false`).String()},
		{name: "escapes in values decode", payload: base.set("aud", `"bill\u0069ng"`).set("sub", `"ord\u0065rs \ud83d\ude80"`).String()},
		{name: "whitespace between JSON tokens", payload: strings.ReplaceAll(strings.ReplaceAll(base.String(), ",", " ,\n\t"), ":", " : ")},
		{name: "SPIFFE subject", payload: base.set("sub", `"spiffe://example.org/ns/shop/sa/orders"`).String()},
		{name: "subject of 2048 bytes", payload: base.set("sub", `"`+strings.Repeat("s", 2048)+`"`).String()},
	}
	for _, name := range []string{"iss", "sub", "aud", "exp", "iat", "jti"} {
		cases = append(cases, claimsCase{name: "missing " + name, payload: base.del(name).String(), want: rMalformed})
	}
	for _, name := range []string{"exp", "iat", "nbf"} {
		cases = append(cases, dateCases(name, base)...)
	}
	cases = append(cases,
		claimsCase{name: "exp the largest date", payload: base.set("exp", "253402300799").String(), want: rLifetime},
		claimsCase{name: "exp equal to iat", payload: base.set("exp", itoa(testT)).String(), want: rMalformed},
		claimsCase{name: "exp before iat", payload: base.set("exp", itoa(testT-1)).String(), want: rMalformed},
		claimsCase{name: "nbf equal to exp", payload: base.set("nbf", itoa(testT+300)).String(), want: rMalformed},
		claimsCase{name: "sub empty", payload: base.set("sub", `""`).String(), want: rMalformed},
		claimsCase{name: "sub of 2049 bytes", payload: base.set("sub", `"`+strings.Repeat("s", 2049)+`"`).String(), want: rMalformed},
		claimsCase{name: "sub NUL", payload: base.set("sub", `"orders\u0000"`).String(), want: rMalformed},
		claimsCase{name: "sub newline", payload: base.set("sub", `"orders\nadmin"`).String(), want: rMalformed},
		claimsCase{name: "sub DEL", payload: base.set("sub", `"orders\u007f"`).String(), want: rMalformed},
		claimsCase{name: "sub C1 control", payload: base.set("sub", `"orders\u0085"`).String(), want: rMalformed},
		claimsCase{name: "sub lone surrogate", payload: base.set("sub", `"orders\ud800"`).String(), want: rMalformed},
		claimsCase{name: "sub invalid UTF-8", payload: base.set("sub", "\"orders\xc3\x28\"").String(), want: rMalformed},
		claimsCase{name: "sub number", payload: base.set("sub", `42`).String(), want: rMalformed},
		claimsCase{name: "sub array", payload: base.set("sub", `["orders"]`).String(), want: rMalformed},
		claimsCase{name: "jti of 15 characters", payload: base.set("jti", `"`+strings.Repeat("j", 15)+`"`).String(), want: rMalformed},
		claimsCase{name: "jti of 16 characters", payload: base.set("jti", `"`+strings.Repeat("j", 16)+`"`).String()},
		claimsCase{name: "jti of 128 characters", payload: base.set("jti", `"`+strings.Repeat("j", 128)+`"`).String()},
		claimsCase{name: "jti of 129 characters", payload: base.set("jti", `"`+strings.Repeat("j", 129)+`"`).String(), want: rMalformed},
		claimsCase{name: "jti with a dot", payload: base.set("jti", `"AAAAAAAAAAAAAAAAAAAA.A"`).String(), want: rMalformed},
		claimsCase{name: "jti standard base64", payload: base.set("jti", `"AAAAAAAAAAAAAAAAAAAA+/"`).String(), want: rMalformed},
		claimsCase{name: "jti number", payload: base.set("jti", `1234567890123456789`).String(), want: rMalformed},
		claimsCase{name: "tenant_id empty", payload: base.set("tenant_id", `""`).String(), want: rMalformed},
		claimsCase{name: "tenant_id number", payload: base.set("tenant_id", `7`).String(), want: rMalformed},
		claimsCase{name: "tenant_id of 257 bytes", payload: base.set("tenant_id", `"`+strings.Repeat("t", 257)+`"`).String(), want: rMalformed},
		claimsCase{name: "act on a service token", payload: base.set("act", `{"sub":"edge"}`).String(), want: rMalformed},
		claimsCase{name: "roles on a service token", payload: base.set("roles", `[]`).String(), want: rMalformed},
	)
	runClaims(t, svcHeader, serviceExpect(), cases)
}

func TestClaimsScope(t *testing.T) {
	base := servicePayload()
	scopes := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = "s" + strconv.Itoa(i)
		}
		return `"` + strings.Join(s, " ") + `"`
	}
	runClaims(t, svcHeader, serviceExpect(), []claimsCase{
		{name: "one scope", payload: base.set("scope", `"billing.charge"`).String()},
		{name: "every allowed character", payload: base.set("scope", `"Az09._:/-"`).String()},
		{name: "32 scopes", payload: base.set("scope", scopes(32)).String()},
		{name: "33 scopes", payload: base.set("scope", scopes(33)).String(), want: rMalformed},
		{name: "scope of 128 characters", payload: base.set("scope", `"`+strings.Repeat("s", 128)+`"`).String()},
		{name: "scope of 129 characters", payload: base.set("scope", `"`+strings.Repeat("s", 129)+`"`).String(), want: rMalformed},
		{name: "empty", payload: base.set("scope", `""`).String(), want: rMalformed},
		{name: "a space", payload: base.set("scope", `" "`).String(), want: rMalformed},
		{name: "double space", payload: base.set("scope", `"a  b"`).String(), want: rMalformed},
		{name: "leading space", payload: base.set("scope", `" a"`).String(), want: rMalformed},
		{name: "trailing space", payload: base.set("scope", `"a "`).String(), want: rMalformed},
		{name: "tab", payload: base.set("scope", `"a\tb"`).String(), want: rMalformed},
		{name: "newline", payload: base.set("scope", `"a\nb"`).String(), want: rMalformed},
		{name: "comma", payload: base.set("scope", `"a,b"`).String(), want: rMalformed},
		{name: "star", payload: base.set("scope", `"billing.*"`).String(), want: rMalformed},
		{name: "non-ASCII", payload: base.set("scope", `"billing.chärge"`).String(), want: rMalformed},
		{name: "array", payload: base.set("scope", `["billing.charge"]`).String(), want: rMalformed},
		{name: "scp instead is just unknown", payload: base.del("scope").set("scp", `["billing.charge"]`).String()},
		{name: "null", payload: base.set("scope", `null`).String(), want: rMalformed},
	})

	// The scopes come back split.
	tok := forge(edKey, svcHeader, base.set("scope", `"a b:c d/e"`).String())
	c, err := Verify(tok, EdDSA, testKeySet(t, EdDSA), serviceExpect())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Scopes, []string{"a", "b:c", "d/e"}) {
		t.Fatalf("scopes %q", c.Scopes)
	}
}

func TestClaimsJSON(t *testing.T) {
	base := servicePayload()
	nest := func(depth int) string {
		return strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
	}
	many := base
	for i := len(many); i < 64; i++ {
		many = many.set("x"+strconv.Itoa(i), "0")
	}
	runClaims(t, svcHeader, serviceExpect(), []claimsCase{
		{name: "duplicate iss, same value", payload: base.add("iss", strconv.Quote(testIssuer)).String(), want: rMalformed},
		{name: "duplicate aud, other value", payload: base.add("aud", `"other"`).String(), want: rMalformed},
		{name: "duplicate exp", payload: base.add("exp", itoa(testT+1)).String(), want: rMalformed},
		{name: "duplicate sub, escaped name", payload: base.add(`su\u0062`, `"admin"`).String(), want: rMalformed},
		{name: "duplicate unknown claim", payload: base.add("x", "1").add("x", "1").String(), want: rMalformed},
		{name: "duplicate member in a nested object", payload: base.set("x", `{"a":1,"b":{"c":1,"c":2}}`).String(), want: rMalformed},
		{name: "duplicate member in act", payload: userPayload().set("act", `{"sub":"edge","sub":"admin"}`).String(), want: rMalformed},
		{name: "nested 7 levels (depth 8)", payload: base.set("x", nest(7)).String()},
		{name: "nested 8 levels (depth 9)", payload: base.set("x", nest(8)).String(), want: rMalformed},
		{name: "deep arrays", payload: base.set("x", strings.Repeat("[", 100)+strings.Repeat("]", 100)).String(), want: rMalformed},
		{name: "64 members", payload: many.String()},
		{name: "65 members", payload: many.set("one-more", "0").String(), want: rMalformed},
		{name: "array payload", payload: `[` + base.String() + `]`, want: rMalformed},
		{name: "string payload", payload: strconv.Quote(base.String()), want: rMalformed},
		{name: "number payload", payload: `1`, want: rMalformed},
		{name: "null payload", payload: `null`, want: rMalformed},
		{name: "empty object", payload: `{}`, want: rMalformed},
		{name: "trailing garbage", payload: base.String() + "x", want: rMalformed},
		{name: "two objects", payload: base.String() + "{}", want: rMalformed},
		{name: "trailing comma", payload: strings.TrimSuffix(base.String(), "}") + ",}", want: rMalformed},
		{name: "unterminated", payload: strings.TrimSuffix(base.String(), "}"), want: rMalformed},
		{name: "byte order mark", payload: "\ufeff" + base.String(), want: rMalformed},
		{name: "invalid UTF-8 in an unknown claim", payload: base.set("x", "\"\xff\"").String(), want: rMalformed},
		{name: "invalid UTF-8 in a member name", payload: base.set("\xff", "1").String(), want: rMalformed},
		{name: "raw control character in a string", payload: base.set("x", "\"a\x01b\"").String(), want: rMalformed},
		{name: "bad escape", payload: base.set("x", `"\x41"`).String(), want: rMalformed},
		{name: "short unicode escape", payload: base.set("x", `"\u41"`).String(), want: rMalformed},
		{name: "lone low surrogate", payload: base.set("x", `"\udc00"`).String(), want: rMalformed},
		{name: "high surrogate then non-surrogate", payload: base.set("x", `"\ud800\u0041"`).String(), want: rMalformed},
		{name: "surrogate pair", payload: base.set("x", `"\ud83d\ude80"`).String()},
		{name: "NaN", payload: base.set("x", `NaN`).String(), want: rMalformed},
		{name: "leading zero number", payload: base.set("x", `01`).String(), want: rMalformed},
		{name: "bare fraction", payload: base.set("x", `.5`).String(), want: rMalformed},
		{name: "trailing dot", payload: base.set("x", `1.`).String(), want: rMalformed},
		{name: "exponent without digits", payload: base.set("x", `1e`).String(), want: rMalformed},
		{name: "literal prefix", payload: base.set("x", `tru`).String(), want: rMalformed},
		{name: "capitalised literal", payload: base.set("x", `True`).String(), want: rMalformed},
		{name: "single-quoted string", payload: base.set("x", `'a'`).String(), want: rMalformed},
		{name: "comment", payload: base.set("x", `1 /* c */`).String(), want: rMalformed},
	})
}

func TestClaimsIssuerAudience(t *testing.T) {
	base := servicePayload()
	runClaims(t, svcHeader, serviceExpect(), []claimsCase{
		{name: "issuer case", payload: base.set("iss", `"Callsign-test"`).String(), want: rIssuer},
		{name: "issuer trailing slash", payload: base.set("iss", `"callsign-test/"`).String(), want: rIssuer},
		{name: "issuer leading space", payload: base.set("iss", `" callsign-test"`).String(), want: rIssuer},
		{name: "issuer prefix", payload: base.set("iss", `"callsign"`).String(), want: rIssuer},
		{name: "issuer empty", payload: base.set("iss", `""`).String(), want: rIssuer},
		{name: "issuer NUL suffix", payload: base.set("iss", `"callsign-test\u0000"`).String(), want: rIssuer},
		{name: "issuer array", payload: base.set("iss", `["callsign-test"]`).String(), want: rMalformed},
		{name: "issuer null", payload: base.set("iss", `null`).String(), want: rMalformed},
		{name: "no issuer expected", payload: base.set("iss", `""`).String(), want: rIssuer, expect: func(e *Expect) { e.Issuer = "" }},
		{name: "audience case", payload: base.set("aud", `"Billing"`).String(), want: rAudience},
		{name: "audience leading space", payload: base.set("aud", `" billing"`).String(), want: rAudience},
		{name: "audience trailing space", payload: base.set("aud", `"billing "`).String(), want: rAudience},
		{name: "audience empty", payload: base.set("aud", `""`).String(), want: rAudience},
		{name: "audience of another service", payload: base.set("aud", `"orders"`).String(), want: rAudience},
		{name: "audience prefix", payload: base.set("aud", `"bill"`).String(), want: rAudience},
		{name: "audience with a path", payload: base.set("aud", `"billing/admin"`).String(), want: rAudience},
		{name: "no audience expected", payload: base.set("aud", `""`).String(), want: rAudience, expect: func(e *Expect) { e.Audience = "" }},
		// Arrays: RFC 7519 allows them, callsign never issues one. Refused as
		// malformed (a shape outside the profile), whatever they contain.
		{name: "audience array of one", payload: base.set("aud", `["billing"]`).String(), want: rMalformed},
		{name: "audience array of several", payload: base.set("aud", `["billing","orders"]`).String(), want: rMalformed},
		{name: "audience empty array", payload: base.set("aud", `[]`).String(), want: rMalformed},
		{name: "audience number", payload: base.set("aud", `1`).String(), want: rMalformed},
		{name: "audience null", payload: base.set("aud", `null`).String(), want: rMalformed},
		{name: "audience object", payload: base.set("aud", `{"aud":"billing"}`).String(), want: rMalformed},
		// Shape comes before issuer, issuer before audience.
		{name: "wrong issuer and audience", payload: base.set("iss", `"x"`).set("aud", `"y"`).String(), want: rIssuer},
		{name: "wrong audience and malformed jti", payload: base.set("aud", `"y"`).set("jti", `"short"`).String(), want: rMalformed},
	})
}

func TestClaimsTimes(t *testing.T) {
	base := servicePayload()
	at := func(iat, exp int64) payload {
		return base.set("iat", itoa(testT+iat)).set("exp", itoa(testT+exp))
	}
	skew, life := int64(DefaultSkew/time.Second), int64(DefaultMaxLifetime/time.Second)
	runClaims(t, svcHeader, serviceExpect(), []claimsCase{
		{name: "lifetime exactly the maximum", payload: at(0, life).String()},
		{name: "lifetime one second over", payload: at(0, life+1).String(), want: rLifetime},
		{name: "lifetime of a year", payload: at(0, 365*24*3600).String(), want: rLifetime},
		{name: "lifetime over and expired", payload: at(-2*life, -life+1).set("iat", itoa(testT-2*life)).String(), want: rLifetime},
		{name: "iat at now+skew", payload: at(skew, skew+60).String()},
		{name: "iat one second after now+skew", payload: at(skew+1, skew+61).String(), want: rNotYetValid},
		{name: "iat far in the future", payload: at(86400, 86400+60).String(), want: rNotYetValid},
		{name: "nbf at now+skew", payload: base.set("nbf", itoa(testT+skew)).String()},
		{name: "nbf one second after now+skew", payload: base.set("nbf", itoa(testT+skew+1)).String(), want: rNotYetValid},
		{name: "nbf before iat", payload: base.set("nbf", itoa(testT-60)).String()},
		{name: "exp one second after now-skew", payload: at(-300, -skew+1).String()},
		{name: "exp at now-skew", payload: at(-300, -skew).String(), want: rExpired},
		{name: "exp long ago", payload: at(-86400-60, -86400).String(), want: rExpired},
		{name: "iat 1 (the first second)", payload: base.set("iat", "1").set("exp", "60").String(), want: rExpired},
		{name: "zero skew means the default", payload: at(skew, skew+60).String(), expect: func(e *Expect) { e.Skew = 0 }},
		{name: "negative skew means the default", payload: at(skew, skew+60).String(), expect: func(e *Expect) { e.Skew = -time.Hour }},
		{name: "smaller skew", payload: at(2, 62).String(), want: rNotYetValid, expect: func(e *Expect) { e.Skew = time.Second }},
		{name: "smaller skew, expiry", payload: at(-300, -1).String(), want: rExpired, expect: func(e *Expect) { e.Skew = time.Second }},
		{name: "larger maximum lifetime", payload: at(0, 3600).String(), expect: func(e *Expect) { e.MaxLifetime = time.Hour }},
		{name: "smaller maximum lifetime", payload: at(0, 61).String(), want: rLifetime, expect: func(e *Expect) { e.MaxLifetime = time.Minute }},
		{name: "maximum lifetime not whole seconds", payload: at(0, 61).String(), want: rLifetime, expect: func(e *Expect) { e.MaxLifetime = 60*time.Second + 999*time.Millisecond }},
		// Sub-second clocks: the edges are compared exactly.
		{name: "iat at now+skew with now half a second later", payload: at(skew, skew+60).String(), expect: func(e *Expect) { e.Now = e.Now.Add(500 * time.Millisecond) }},
		{name: "iat after now+skew by half a second", payload: at(skew, skew+60).String(), want: rNotYetValid, expect: func(e *Expect) { e.Now = e.Now.Add(-500 * time.Millisecond) }},
		{name: "exp after now-skew by half a second", payload: at(-300, -skew).String(), expect: func(e *Expect) { e.Now = e.Now.Add(-500 * time.Millisecond) }},
		{name: "zero clock fails closed", payload: base.String(), want: rNotYetValid, expect: func(e *Expect) { e.Now = time.Time{} }},
		{name: "clock in another zone", payload: base.String(), expect: func(e *Expect) { e.Now = e.Now.In(time.FixedZone("x", 5*3600)) }},
	})
}

func TestClaimsUser(t *testing.T) {
	base := userPayload()
	roles := func(n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = `"r` + strconv.Itoa(i) + `"`
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	runClaims(t, usrHeader, userExpect(), []claimsCase{
		{name: "valid", payload: base.String()},
		{name: "no roles", payload: base.set("roles", `[]`).String()},
		{name: "64 roles", payload: base.set("roles", roles(64)).String()},
		{name: "65 roles", payload: base.set("roles", roles(65)).String(), want: rMalformed},
		{name: "roles missing", payload: base.del("roles").String(), want: rMalformed},
		{name: "roles a string", payload: base.set("roles", `"admin"`).String(), want: rMalformed},
		{name: "roles with a number", payload: base.set("roles", `["admin",1]`).String(), want: rMalformed},
		{name: "roles with null", payload: base.set("roles", `[null]`).String(), want: rMalformed},
		{name: "roles nested", payload: base.set("roles", `[["admin"]]`).String(), want: rMalformed},
		{name: "role empty", payload: base.set("roles", `[""]`).String(), want: rMalformed},
		{name: "role with a control character", payload: base.set("roles", `["admin\n"]`).String(), want: rMalformed},
		{name: "role of 257 bytes", payload: base.set("roles", `["`+strings.Repeat("r", 257)+`"]`).String(), want: rMalformed},
		{name: "roles trailing comma", payload: base.set("roles", `["admin",]`).String(), want: rMalformed},
		{name: "tenant missing", payload: base.del("tenant_id").String(), want: rMalformed},
		{name: "tenant empty", payload: base.set("tenant_id", `""`).String(), want: rMalformed},
		{name: "act missing", payload: base.del("act").String(), want: rMalformed},
		{name: "act a string", payload: base.set("act", `"edge"`).String(), want: rMalformed},
		{name: "act empty object", payload: base.set("act", `{}`).String(), want: rMalformed},
		{name: "act sub empty", payload: base.set("act", `{"sub":""}`).String(), want: rMalformed},
		{name: "act sub number", payload: base.set("act", `{"sub":1}`).String(), want: rMalformed},
		{name: "act with another member", payload: base.set("act", `{"sub":"edge","iss":"x"}`).String(), want: rMalformed},
		{name: "act nested act", payload: base.set("act", `{"sub":"edge","act":{"sub":"other"}}`).String(), want: rMalformed},
		{name: "act other member first", payload: base.set("act", `{"client_id":"x","sub":"edge"}`).String(), want: rMalformed},
		{name: "scope on a user token", payload: base.set("scope", `"billing.charge"`).String(), want: rMalformed},
		{name: "service-token shape", payload: servicePayload().String(), want: rMalformed},
	})

	c, err := Verify(forge(edKey, usrHeader, base.String()), EdDSA, testKeySet(t, EdDSA), userExpect())
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{
		Type: TypeUser, Issuer: testIssuer, Subject: "user-42", Audience: testAudience,
		Expiry: testNow.Add(5 * time.Minute), IssuedAt: testNow, ID: testJTI,
		TenantID: "tenant-7", Roles: []string{"admin", "viewer"}, Actor: "edge",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("claims\n got %+v\nwant %+v", c, want)
	}
}

func TestClaimsValues(t *testing.T) {
	p := servicePayload().set("nbf", itoa(testT-10)).set("tenant_id", `"t-1"`)
	c, err := Verify(forge(edKey, svcHeader, p.String()), EdDSA, testKeySet(t, EdDSA), serviceExpect())
	if err != nil {
		t.Fatal(err)
	}
	want := Claims{
		Type: TypeService, Issuer: testIssuer, Subject: "orders", Audience: testAudience,
		Expiry: testNow.Add(5 * time.Minute), IssuedAt: testNow, NotBefore: testNow.Add(-10 * time.Second),
		ID: testJTI, Scopes: []string{"billing.charge", "billing.refund"}, TenantID: "t-1",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("claims\n got %+v\nwant %+v", c, want)
	}
}
