package token

import (
	"bytes"
	"crypto"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fuzz targets for every parser of network input in this package. Seed
// corpora live in testdata/fuzz/<target>/ and are written by TestWriteFuzzSeeds
// (CALLSIGN_WRITE_SEEDS=1). Run one for a while with, for example:
//
//	go test -run=^$ -fuzz=^FuzzVerify$ -fuzztime=60s ./internal/token/

// FuzzParse: Parse, ParseAssertion and the claim checks never panic, and what
// Parse accepts is a strict compact token: bounded, of the compact charset,
// each segment the canonical encoding of what it decoded to.
func FuzzParse(f *testing.F) {
	for _, s := range parseSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, alg := range []Algorithm{EdDSA, ES256} {
			for _, typ := range []Type{TypeService, TypeUser} {
				p, err := Parse(raw, alg, typ)
				checkFailure(t, err, raw)
				if err != nil {
					continue
				}
				checkParsed(t, raw, p)
				if p.Type != typ || p.alg != alg {
					t.Fatalf("parsed as %v %v, asked %v %v", p.Type, p.alg, typ, alg)
				}
				_, err = p.Claims(Expect{Issuer: testIssuer, Audience: testAudience, Type: typ, Now: testNow})
				checkFailure(t, err, raw)
				_ = p.VerifySignature(signerFor(alg).Key)
			}
		}
		if p, err := ParseAssertion(raw); err == nil {
			checkParsed(t, raw, p)
			_, err = p.AssertionClaims(testIssuer, testNow, 0, 0)
			checkFailure(t, err, raw)
		} else {
			checkFailure(t, err, raw)
		}
	})
}

// checkFailure: every failure is an *Error with a reason and its fixed text.
func checkFailure(t *testing.T, err error, raw string) {
	t.Helper()
	if err == nil {
		return
	}
	r := ReasonOf(err)
	if r == 0 || err.Error() != "token: "+r.String() {
		t.Fatalf("error %q (reason %v) is not a fixed *Error", err, r)
	}
	if len(raw) >= 8 && strings.Contains(err.Error(), raw) {
		t.Fatal("error repeats the input")
	}
}

func checkParsed(t *testing.T, raw string, p *Parsed) {
	t.Helper()
	if len(raw) > MaxTokenSize || strings.Count(raw, ".") != 2 || !allIn(&compactChars, raw) || !validKID(p.KID) {
		t.Fatalf("accepted a non-compact token %q", raw)
	}
	seg := strings.Split(raw, ".")
	if b64.EncodeToString(p.payload) != seg[1] || b64.EncodeToString(p.signature) != seg[2] || string(p.message) != seg[0]+"."+seg[1] {
		t.Fatalf("accepted a non-canonical encoding %q", raw)
	}
}

// FuzzVerify: a token signed by a key outside the set is never accepted, no
// byte of a token signed by the key can be changed without refusal (no second
// encoding of a signed token passes), and whatever is accepted satisfies the
// profile.
func FuzzVerify(f *testing.F) {
	f.Add(svcHeader, servicePayload().String(), uint16(0), byte('e'), false)
	f.Add(svcHeader, servicePayload().String(), uint16(0xffff), byte(0), false)
	f.Add(svcHeader, servicePayload().String(), uint16(0xffff), byte(0), true)
	f.Add(usrHeader, userPayload().String(), uint16(30), byte('A'), false)
	f.Add(`{"alg":"none","kid":"ed-1","typ":"svc+jwt"}`, servicePayload().String(), uint16(0xffff), byte(0), false)
	f.Add(`{"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt","jwk":{}}`, servicePayload().String(), uint16(0xffff), byte(0), true)
	f.Add(svcHeader, servicePayload().set("aud", `["billing"]`).String(), uint16(0xffff), byte(0), false)
	f.Add(svcHeader, servicePayload().add("exp", "1").String(), uint16(0xffff), byte(0), false)
	f.Add(svcHeader+" ", servicePayload().String()+" ", uint16(70), byte('B'), false)
	keys := testKeySet(f, EdDSA)
	f.Fuzz(func(t *testing.T, header, payload string, pos uint16, val byte, attacker bool) {
		signer := edKey
		if attacker {
			signer = edOther
		}
		tok := forge(signer, header, payload)
		raw := tok
		if int(pos) < len(tok) {
			raw = tok[:pos] + string([]byte{val}) + tok[pos+1:]
		}
		for _, typ := range []Type{TypeService, TypeUser} {
			exp := Expect{Issuer: testIssuer, Audience: testAudience, Type: typ, Now: testNow}
			c, err := Verify(raw, EdDSA, keys, exp)
			checkFailure(t, err, raw)
			if err != nil {
				continue
			}
			if attacker {
				t.Fatalf("accepted a token signed by another key: %q", raw)
			}
			if raw != tok {
				t.Fatalf("accepted a changed token:\n%q\nsigned\n%q", raw, tok)
			}
			checkAccepted(t, c, exp)
		}
	})
}

// checkAccepted: accepted claims satisfy the profile.
func checkAccepted(t *testing.T, c Claims, exp Expect) {
	t.Helper()
	skew, life := DefaultSkew, DefaultMaxLifetime
	switch {
	case c.Type != exp.Type, c.Issuer != exp.Issuer, c.Audience != exp.Audience:
		t.Fatalf("accepted claims %+v for %+v", c, exp)
	case !validText(c.Subject, MaxSubjectLength), !validID(c.ID):
		t.Fatalf("accepted sub %q jti %q", c.Subject, c.ID)
	case !c.Expiry.After(c.IssuedAt), c.Expiry.Sub(c.IssuedAt) > life,
		c.IssuedAt.After(exp.Now.Add(skew)), !c.Expiry.After(exp.Now.Add(-skew)),
		c.NotBefore.After(exp.Now.Add(skew)):
		t.Fatalf("accepted times %+v at %v", c, exp.Now)
	case len(c.Scopes) > MaxScopes:
		t.Fatal("too many scopes")
	}
	for _, s := range c.Scopes {
		if !validScope(s) {
			t.Fatalf("accepted scope %q", s)
		}
	}
	if c.Type == TypeUser {
		if c.TenantID == "" || c.Actor == "" || len(c.Scopes) > 0 || len(c.Roles) > MaxRoles {
			t.Fatalf("accepted user claims %+v", c)
		}
	} else if c.Actor != "" || len(c.Roles) > 0 {
		t.Fatalf("accepted service claims %+v", c)
	}
}

// FuzzParseJWKS: never panics; an accepted set holds at most MaxKeys valid
// keys of the pinned algorithm, and survives MarshalJWKS and ParseJWKS again.
func FuzzParseJWKS(f *testing.F) {
	for _, s := range jwksSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, alg := range []Algorithm{EdDSA, ES256} {
			ks, err := ParseJWKS(data, alg)
			if err != nil {
				if ks != nil || !strings.HasPrefix(err.Error(), "token: invalid key set: ") {
					t.Fatalf("failure %v %v", ks, err)
				}
				continue
			}
			if len(data) > MaxJWKSSize || ks.Len() > MaxKeys || !json.Valid(data) {
				t.Fatalf("accepted %q", data)
			}
			keys := ks.Keys()
			for _, k := range keys {
				if k.Algorithm != alg || checkKey(k) != nil {
					t.Fatalf("accepted key %+v", k)
				}
			}
			doc, err := MarshalJWKS(keys)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseJWKS(doc, alg)
			if err != nil || again.Len() != len(keys) {
				t.Fatalf("round trip: %v", err)
			}
			for _, k := range keys {
				k2, ok := again.Lookup(k.ID)
				if !ok || !k2.Public.(interface{ Equal(x crypto.PublicKey) bool }).Equal(k.Public) {
					t.Fatalf("round trip changed kid %q", k.ID)
				}
			}
		}
	})
}

// FuzzAssertion: assertions never panic; an attacker's signature is never
// accepted; accepted claims satisfy the profile.
func FuzzAssertion(f *testing.F) {
	f.Add(assertionHeader, assertionPayload().String(), false)
	f.Add(`{"alg":"EdDSA","kid":"ed-1"}`, assertionPayload().set("aud", `["callsign-test"]`).String(), false)
	f.Add(assertionHeader, assertionPayload().String(), true)
	f.Add(`{"alg":"none","kid":"ed-1"}`, assertionPayload().String(), false)
	f.Add(assertionHeader, assertionPayload().set("iss", `"other"`).String(), false)
	f.Add(assertionHeader, `[]`, false)
	f.Fuzz(func(t *testing.T, header, payload string, attacker bool) {
		signer := edKey
		if attacker {
			signer = edOther
		}
		raw := forge(signer, header, payload)
		c, err := checkAssertion(raw, testNow)
		checkFailure(t, err, raw)
		if err != nil {
			return
		}
		if attacker {
			t.Fatalf("accepted an assertion signed by another key: %q", raw)
		}
		if c.Audience != testIssuer || !validText(c.Subject, MaxSubjectLength) || !validID(c.ID) ||
			!c.Expiry.After(testNow.Add(-DefaultSkew)) || c.Expiry.After(testNow.Add(DefaultAssertionMaxAhead)) ||
			c.IssuedAt.After(testNow.Add(DefaultSkew)) {
			t.Fatalf("accepted %+v", c)
		}
	})
}

// FuzzJSON: the strict scanner accepts only valid JSON (differential with
// encoding/json), and, on JSON without duplicates that fits its bounds, agrees
// with it.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, `{"a":[1,2,{"b":null}]}`, `{"a":"\u00e9\ud83d\ude80"}`, `{"a":1,"a":2}`,
		`{"a":-0.5e+10}`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `[1]`, `{"a":{"b":{"c":{"d":{}}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := scanner{b: data}
		ok := s.value(1) && s.end()
		if ok && !json.Valid(data) {
			t.Fatalf("scanner accepted invalid JSON %q", data)
		}
		// A string decoded by the scanner equals encoding/json's decoding.
		s = scanner{b: data}
		if v, ok := s.str(); ok && s.end() {
			var want string
			if err := json.Unmarshal(data, &want); err != nil || want != string(v) {
				t.Fatalf("string %q: scanner %q, encoding/json %q (%v)", data, v, want, err)
			}
		}
		// Valid JSON that the scanner refuses must break one of its rules.
		if !ok && json.Valid(data) && withinScannerRules(data) {
			t.Fatalf("scanner refused valid JSON %q", data)
		}
	})
}

// withinScannerRules reports whether data (valid JSON) meets the scanner's
// extra rules: no duplicate names, depth and member bounds, and no invalid
// UTF-8 or lone surrogates (which encoding/json replaces silently).
func withinScannerRules(data []byte) bool {
	if bytes.Contains(data, []byte(`\u`)) || !isValidUTF8(data) {
		return false // surrogates are judged by the string comparison above
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		names   map[string]bool
		object  bool
		members int
		key     bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return true
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if top != nil && top.object {
					top.key = true
				}
				if len(stack)+1 > maxJSONDepth {
					return false
				}
				stack = append(stack, &frame{names: map[string]bool{}, object: v == '{', key: true})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if top != nil && top.object && top.key {
				if top.names[v] {
					return false
				}
				top.names[v] = true
				if top.members++; top.members > maxJSONMembers {
					return false
				}
				top.key = false
				continue
			}
		}
		if top != nil && top.object {
			top.key = true
		}
	}
}

func isValidUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// parseSeeds are hostile and valid tokens for FuzzParse.
func parseSeeds() []string {
	good := forge(edKey, svcHeader, servicePayload().String())
	seg := strings.Split(good, ".")
	return []string{
		good,
		forge(edKey, usrHeader, userPayload().String()),
		forge(ecKey, hdr("ES256", "ec-1", "svc+jwt"), servicePayload().String()),
		forge(edKey, assertionHeader, assertionPayload().String()),
		forge(edKey, hdr("none", "ed-1", "svc+jwt"), servicePayload().String()),
		enc(hdr("none", "ed-1", "svc+jwt")) + "." + seg[1] + ".",
		forge(edKey, `{"alg":"EdDSA","alg":"none","kid":"ed-1","typ":"svc+jwt"}`, servicePayload().String()),
		forge(edKey, `{"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt","jwk":{"kty":"OKP"}}`, servicePayload().String()),
		forge(edKey, `{"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt","crit":["b64"],"b64":false}`, servicePayload().String()),
		forge(edKey, svcHeader, `[]`),
		forge(edKey, svcHeader, servicePayload().set("aud", `["billing"]`).String()),
		forge(edKey, svcHeader, servicePayload().set("exp", `1.8e9`).String()),
		forge(edKey, svcHeader, servicePayload().set("x", strings.Repeat("[", 20)+strings.Repeat("]", 20)).String()),
		seg[0] + "=." + seg[1] + "." + seg[2],
		good + "." + seg[2],
		`{"payload":"` + seg[1] + `","protected":"` + seg[0] + `","signature":"` + seg[2] + `"}`,
		"",
		"..",
		"a.b.c",
	}
}

// jwksSeeds are key sets for FuzzParseJWKS.
func jwksSeeds() [][]byte {
	ed, ec := edJWK(edKey), ecJWK(ecKey)
	out := [][]byte{
		[]byte(set(ed)),
		[]byte(set(ec)),
		[]byte(set(ed, edJWK(newEdSigner("ed-2", 4)))),
		[]byte(`{"keys":[]}`),
		[]byte(set(ed.set("d", `"AAAA"`))),
		[]byte(set(ed, ed)),
		[]byte(set(ed.set("x", b64Quote(badEdKeys["identity (order 1)"])))),
		[]byte(set(ec.set("y", b64Quote(make([]byte, 32))))),
		[]byte(set(ed.set("key_ops", `["verify"]`).set("x5c", `["MIIB"]`))),
		[]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"}]}`),
	}
	return out
}

// TestWriteFuzzSeeds writes the seed corpora under testdata/fuzz/ when
// CALLSIGN_WRITE_SEEDS=1 (run it after changing the seeds above).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("CALLSIGN_WRITE_SEEDS") != "1" {
		t.Skip("set CALLSIGN_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target string, i int, values ...any) {
		var b strings.Builder
		b.WriteString("go test fuzz v1\n")
		for _, v := range values {
			switch v := v.(type) {
			case string:
				fmt.Fprintf(&b, "string(%q)\n", v)
			case []byte:
				fmt.Fprintf(&b, "[]byte(%q)\n", v)
			case uint16:
				fmt.Fprintf(&b, "uint16(%d)\n", v)
			case byte:
				fmt.Fprintf(&b, "byte(%q)\n", v)
			case bool:
				fmt.Fprintf(&b, "bool(%v)\n", v)
			}
		}
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range parseSeeds() {
		write("FuzzParse", i, s)
	}
	for i, s := range jwksSeeds() {
		write("FuzzParseJWKS", i, s)
	}
	expired := servicePayload().set("iat", itoa(testT-1000)).set("exp", itoa(testT-900))
	for i, s := range []struct {
		h, p     string
		pos      uint16
		val      byte
		attacker bool
	}{
		{svcHeader, servicePayload().String(), 0xffff, 0, false},
		{svcHeader, servicePayload().String(), 0xffff, 0, true},
		{svcHeader, servicePayload().String(), 5, 'x', false},
		{usrHeader, userPayload().String(), 0xffff, 0, false},
		{svcHeader, expired.String(), 0xffff, 0, false},
		{`{"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt","x5u":"http://127.0.0.1:1/"}`, servicePayload().String(), 0xffff, 0, true},
		{svcHeader, servicePayload().add(`\u0069ss`, `"x"`).String(), 0xffff, 0, false},
	} {
		write("FuzzVerify", i, s.h, s.p, s.pos, s.val, s.attacker)
	}
	for i, s := range []struct {
		h, p     string
		attacker bool
	}{
		{assertionHeader, assertionPayload().String(), false},
		{assertionHeader, assertionPayload().String(), true},
		{`{"alg":"EdDSA","kid":"ed-1"}`, assertionPayload().set("aud", `["callsign-test","x"]`).String(), false},
		{assertionHeader, assertionPayload().set("exp", itoa(testT+3600)).String(), false},
	} {
		write("FuzzAssertion", i, s.h, s.p, s.attacker)
	}
}
