package token

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// attack is one hostile input through the whole verification (Verify with the
// EdDSA test key set, expecting a service token), with the reason it must end
// in.
type attack struct {
	name string
	raw  string
	want callsignv1.Reason
}

func runAttacks(t *testing.T, cases []attack) {
	t.Helper()
	keys := testKeySet(t, EdDSA)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.raw, EdDSA, keys, serviceExpect())
			wantReason(t, err, tc.want, tc.raw)
		})
	}
}

// withHeader is a service payload signed by the test key under header h.
func withHeader(h string) string { return forge(edKey, h, servicePayload().String()) }

// hmacToken is the classic algorithm confusion: an HMAC-SHA256 "signature"
// keyed with the verifier's public key.
func hmacToken(alg string) string {
	msg := enc(hdr(alg, "ed-1", "svc+jwt")) + "." + enc(servicePayload().String())
	mac := hmac.New(sha256.New, edKey.Key.Public.(ed25519.PublicKey))
	mac.Write([]byte(msg))
	return msg + "." + b64Plain.EncodeToString(mac.Sum(nil))
}

func TestParseAlgorithm(t *testing.T) {
	var cases []attack
	for _, a := range []string{"none", "None", "NONE", "nOnE", "none ", " none", "none\u0000", "EdDSA\u0000"} {
		h := hdr(a, "ed-1", "svc+jwt")
		cases = append(cases,
			attack{"alg " + strconv.Quote(a) + " signed", withHeader(h), rMalformed},
			attack{"alg " + strconv.Quote(a) + " unsigned", enc(h) + "." + enc(servicePayload().String()) + ".", rMalformed},
		)
	}
	for _, a := range []string{"HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "ES384", "ES512", "ES256K", "eddsa", "EDDSA", "Ed25519", "Ed448", "EdDSA ", "", "dir", "RSA-OAEP"} {
		cases = append(cases, attack{"alg " + strconv.Quote(a) + " with a valid signature under the pinned key", withHeader(hdr(a, "ed-1", "svc+jwt")), rMalformed})
	}
	cases = append(cases,
		attack{"HS256 keyed with the public key", hmacToken("HS256"), rMalformed},
		attack{"EdDSA header with an HMAC of the public key", hmacToken("EdDSA"), rSignature},
		attack{"alg array", withHeader(`{"alg":["EdDSA"],"kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"alg null", withHeader(`{"alg":null,"kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"alg number", withHeader(`{"alg":1,"kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"alg missing", withHeader(`{"kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"alg escaped is the same string", withHeader(`{"alg":"Ed\u0044SA","kid":"ed-1","typ":"svc+jwt"}`), rOK},
	)
	runAttacks(t, cases)

	// The pinned algorithm decides, never the token: an EdDSA token under an
	// ES256 verifier, and the reverse.
	ed := signToken(t, edKey, serviceClaims())
	ec := signToken(t, ecKey, serviceClaims())
	_, err := Verify(ed, ES256, testKeySet(t, ES256), serviceExpect())
	wantReason(t, err, rMalformed, ed)
	_, err = Verify(ec, EdDSA, testKeySet(t, EdDSA), serviceExpect())
	wantReason(t, err, rMalformed, ec)
	_, err = Parse(ed, "none", TypeService)
	wantReason(t, err, rMalformed, ed)
	_, err = Parse(ed, "", TypeService)
	wantReason(t, err, rMalformed, ed)
}

func TestParseHeaderMembers(t *testing.T) {
	const base = `"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt"`
	attackerJWK := `{"kty":"OKP","crv":"Ed25519","x":"` + b64Plain.EncodeToString(edOther.Key.Public.(ed25519.PublicKey)) + `"}`
	var cases []attack
	for _, extra := range []string{
		`"jwk":` + attackerJWK,
		`"jku":"http://127.0.0.1:1/jwks.json"`,
		`"x5u":"http://127.0.0.1:1/cert.pem"`,
		`"x5c":["MIIBszCCAVmgAwIBAgIUQ"]`,
		`"x5t":"dGVzdA"`,
		`"x5t#S256":"dGVzdA"`,
		`"crit":["exp"]`,
		`"crit":["b64"],"b64":false`,
		`"b64":false`,
		`"zip":"DEF"`,
		`"cty":"JWT"`,
		`"enc":"A128GCM"`,
		`"kid2":"ed-1"`,
		`"foo":"bar"`,
		`"":""`,
		`"ALG":"none"`,
		`"typ ":"x"`,
	} {
		name := extra[1 : strings.Index(extra[1:], `"`)+1]
		// Signed by the attacker's key (as with an embedded jwk) and by the
		// real key: refused either way, before any key is looked at.
		cases = append(cases,
			attack{"member " + strconv.Quote(name) + " signed by another key", forge(edOther, "{"+base+","+extra+"}", servicePayload().String()), rMalformed},
			attack{"member " + strconv.Quote(name) + " signed by the key", withHeader("{" + base + "," + extra + "}"), rMalformed},
			attack{"member " + strconv.Quote(name) + " first", withHeader("{" + extra + "," + base + "}"), rMalformed},
		)
	}
	cases = append(cases,
		attack{"duplicate alg, none last", withHeader(`{"alg":"EdDSA","alg":"none","kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"duplicate alg, none first", withHeader(`{"alg":"none","alg":"EdDSA","kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"duplicate alg, same value", withHeader(`{"alg":"EdDSA","alg":"EdDSA","kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"duplicate alg, escaped name", withHeader(`{"alg":"EdDSA","\u0061lg":"none","kid":"ed-1","typ":"svc+jwt"}`), rMalformed},
		attack{"duplicate kid", withHeader(`{"alg":"EdDSA","kid":"ed-1","kid":"other","typ":"svc+jwt"}`), rMalformed},
		attack{"duplicate typ", withHeader(`{"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt","typ":"user+jwt"}`), rMalformed},
		attack{"empty object", withHeader(`{}`), rMalformed},
		attack{"array", withHeader(`["EdDSA","ed-1","svc+jwt"]`), rMalformed},
		attack{"string", withHeader(`"EdDSA"`), rMalformed},
		attack{"null", withHeader(`null`), rMalformed},
		attack{"trailing comma", withHeader(`{` + base + `,}`), rMalformed},
		attack{"trailing garbage", withHeader(`{` + base + `}x`), rMalformed},
		attack{"two objects", withHeader(`{` + base + `}{}`), rMalformed},
		attack{"unterminated", withHeader(`{` + base), rMalformed},
		attack{"single quotes", withHeader(`{'alg':'EdDSA','kid':'ed-1','typ':'svc+jwt'}`), rMalformed},
		attack{"byte order mark", withHeader("\ufeff{" + base + "}"), rMalformed},
		attack{"NUL after", withHeader("{" + base + "}\x00"), rMalformed},
		attack{"invalid UTF-8 in a value", withHeader("{\"alg\":\"EdDSA\",\"kid\":\"ed-1\",\"typ\":\"svc+jwt\xff\"}"), rMalformed},
		attack{"control character in a value", withHeader("{\"alg\":\"EdDSA\",\"kid\":\"ed\n1\",\"typ\":\"svc+jwt\"}"), rMalformed},
		attack{"JSON whitespace between tokens is JSON", withHeader("{ \"alg\" : \"EdDSA\",\n\t\"kid\":\"ed-1\" ,\r\n\"typ\":\"svc+jwt\" }\n"), rOK},
		attack{"members in another order", withHeader(`{"typ":"svc+jwt","kid":"ed-1","alg":"EdDSA"}`), rOK},
		attack{"header larger than 512 bytes", withHeader(`{` + base + strings.Repeat(" ", 480) + `}`), rMalformed},
	)
	runAttacks(t, cases)
}

func TestParseKIDAndType(t *testing.T) {
	runAttacks(t, []attack{
		{"kid missing", withHeader(`{"alg":"EdDSA","typ":"svc+jwt"}`), rMalformed},
		{"kid empty", withHeader(hdr("EdDSA", "", "svc+jwt")), rMalformed},
		{"kid of 128 characters, unknown", withHeader(hdr("EdDSA", strings.Repeat("k", 128), "svc+jwt")), rKeyUnknown},
		{"kid of 129 characters", withHeader(hdr("EdDSA", strings.Repeat("k", 129), "svc+jwt")), rMalformed},
		{"kid path", withHeader(hdr("EdDSA", "../../etc/passwd", "svc+jwt")), rMalformed},
		{"kid with a space", withHeader(hdr("EdDSA", "ed 1", "svc+jwt")), rMalformed},
		{"kid SQL", withHeader(hdr("EdDSA", "x' OR '1'='1", "svc+jwt")), rMalformed},
		{"kid non-ASCII", withHeader(hdr("EdDSA", "ключ", "svc+jwt")), rMalformed},
		{"kid number", withHeader(`{"alg":"EdDSA","kid":1,"typ":"svc+jwt"}`), rMalformed},
		{"kid unknown", withHeader(hdr("EdDSA", "ed-2", "svc+jwt")), rKeyUnknown},
		{"kid case differs", withHeader(hdr("EdDSA", "ED-1", "svc+jwt")), rKeyUnknown},
		{"typ missing", withHeader(`{"alg":"EdDSA","kid":"ed-1"}`), rMalformed},
		{"typ JWT", withHeader(hdr("EdDSA", "ed-1", "JWT")), rMalformed},
		{"typ jwt", withHeader(hdr("EdDSA", "ed-1", "jwt")), rMalformed},
		{"typ upper case", withHeader(hdr("EdDSA", "ed-1", "SVC+JWT")), rMalformed},
		{"typ media type", withHeader(hdr("EdDSA", "ed-1", "application/svc+jwt")), rMalformed},
		{"typ with a space", withHeader(hdr("EdDSA", "ed-1", "svc+jwt ")), rMalformed},
		{"typ empty", withHeader(hdr("EdDSA", "ed-1", "")), rMalformed},
		{"typ null", withHeader(`{"alg":"EdDSA","kid":"ed-1","typ":null}`), rMalformed},
		{"typ of a user token", withHeader(usrHeader), rType},
		{"a real user token in the service slot", forge(edKey, usrHeader, userPayload().String()), rType},
	})

	// The reverse: a service token where a user token belongs.
	svc := signToken(t, edKey, serviceClaims())
	_, err := Verify(svc, EdDSA, testKeySet(t, EdDSA), userExpect())
	wantReason(t, err, rType, svc)
	// An unknown expected type matches no token.
	_, err = Parse(svc, EdDSA, 0)
	wantReason(t, err, rType, svc)
	_, err = Parse(svc, EdDSA, 3)
	wantReason(t, err, rType, svc)
}

// nonCanonical changes the unused low bits of the last character of seg,
// which must not be a multiple of 4 long: the decoded bytes stay the same.
func nonCanonical(t *testing.T, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if len(seg)%4 == 0 {
		t.Fatalf("segment of %d characters has no unused bits", len(seg))
	}
	last := strings.IndexByte(alphabet, seg[len(seg)-1])
	out := seg[:len(seg)-1] + string(alphabet[last|1])
	if a, err := base64.RawURLEncoding.DecodeString(out); err != nil {
		t.Fatal(err)
	} else if b, _ := base64.RawURLEncoding.DecodeString(seg); string(a) != string(b) {
		t.Fatal("nonCanonical changed the bytes")
	}
	return out
}

func TestParseEncoding(t *testing.T) {
	good := signToken(t, edKey, serviceClaims())
	seg := strings.Split(good, ".")
	h, p, s := seg[0], seg[1], seg[2]

	// A payload whose encoding has unused bits (its length is not a multiple of 3).
	odd := servicePayload().String()
	for len(odd)%3 == 0 {
		odd += " "
	}
	oddHeader := svcHeader + " "
	for len(oddHeader)%3 == 0 {
		oddHeader += " "
	}

	// A signature whose standard encoding differs from the URL-safe one.
	var stdSig string
	for i := 0; stdSig == ""; i++ {
		msg := enc(svcHeader) + "." + enc(servicePayload().set("jti", strconv.Quote(testJTI+strconv.Itoa(i))).String())
		sig := signRaw(edKey, msg)
		if std := base64.RawStdEncoding.EncodeToString(sig); strings.ContainsAny(std, "+/") {
			stdSig = msg + "." + std
		}
	}

	runAttacks(t, []attack{
		{"valid", good, rOK},
		{"padding on the header", h + "=." + p + "." + s, rMalformed},
		{"padding on the payload", h + "." + p + "==." + s, rMalformed},
		{"padding on the signature", good + "==", rMalformed},
		{"padded encoding, signed", forgeSegments(edKey, base64.URLEncoding.EncodeToString([]byte(oddHeader)), enc(odd)), rMalformed},
		{"standard alphabet in the signature", stdSig, rMalformed},
		{"standard alphabet, whole token", base64.RawStdEncoding.EncodeToString([]byte(svcHeader)) + "." + base64.RawStdEncoding.EncodeToString([]byte(odd)) + "." + base64.RawStdEncoding.EncodeToString(signRaw(edKey, "x")), rMalformed},
		{"non-canonical bits in the header, signed", forgeSegments(edKey, nonCanonical(t, enc(oddHeader)), enc(odd)), rMalformed},
		{"non-canonical bits in the payload, signed", forgeSegments(edKey, enc(svcHeader), nonCanonical(t, enc(odd))), rMalformed},
		{"non-canonical bits in the signature", h + "." + p + "." + nonCanonical(t, s), rMalformed},
		{"canonical odd payload, signed", forgeSegments(edKey, enc(svcHeader), enc(odd)), rOK},
		{"impossible length", h + "." + p + "." + s + "AAA", rMalformed},
		{"bytes appended to the header", h + "AAAA." + p + "." + s, rMalformed},
		{"signature one byte longer", h + "." + p + "." + s + "A", rSignature},
		{"leading space", " " + good, rMalformed},
		{"trailing space", good + " ", rMalformed},
		{"trailing newline", good + "\n", rMalformed},
		{"CRLF inside the payload", h + "." + p[:10] + "\r\n" + p[10:] + "." + s, rMalformed},
		{"newline inside the signature", h + "." + p + "." + s[:10] + "\n" + s[10:], rMalformed},
		{"tab inside the header", h[:5] + "\t" + h[5:] + "." + p + "." + s, rMalformed},
		{"space inside", h + ". " + p + "." + s, rMalformed},
		{"Bearer prefix left on", "Bearer " + good, rMalformed},
		{"non-ASCII letter", h + "." + p + "é." + s, rMalformed},
		{"high byte", h + "." + p + "\x80." + s, rMalformed},
		{"NUL byte", h + "." + p + "\x00." + s, rMalformed},
		{"percent-encoded", h + "." + p + "%3D." + s, rMalformed},
	})
}

func TestParseSegments(t *testing.T) {
	good := signToken(t, edKey, serviceClaims())
	seg := strings.Split(good, ".")
	h, p, s := seg[0], seg[1], seg[2]
	flattened := `{"payload":"` + p + `","protected":"` + h + `","signature":"` + s + `"}`
	general := `{"payload":"` + p + `","signatures":[{"protected":"` + h + `","signature":"` + s + `"}],"extra":1}`
	runAttacks(t, []attack{
		{"empty", "", rMalformed},
		{"one dot", ".", rMalformed},
		{"two dots", "..", rMalformed},
		{"one segment", h, rMalformed},
		{"two segments", h + "." + p, rMalformed},
		{"empty signature", h + "." + p + ".", rMalformed},
		{"empty payload", h + ".." + s, rMalformed},
		{"empty header", "." + p + "." + s, rMalformed},
		{"four segments", good + "." + s, rMalformed},
		{"five segments (JWE shape)", h + "." + p + "." + s + "." + p + "." + s, rMalformed},
		{"leading dot", "." + good, rMalformed},
		{"trailing dot", good + ".", rMalformed},
		{"doubled dot", h + ".." + p + "." + s, rMalformed},
		{"JSON serialization, flattened", flattened, rMalformed},
		{"JSON serialization, general, extra members", general, rMalformed},
		{"JSON serialization, base64url-encoded", enc(flattened), rMalformed},
		{"nested token as the payload string", forge(edKey, svcHeader, strconv.Quote(good)), rMalformed},
		{"nested token as the raw payload", forgeSegments(edKey, enc(svcHeader), enc(good)), rMalformed},
		{"nested token with cty", withHeader(`{"alg":"EdDSA","kid":"ed-1","typ":"svc+jwt","cty":"JWT"}`), rMalformed},
		{"detached payload", h + ".." + s, rMalformed},
	})
}

func TestParseSize(t *testing.T) {
	// Find a valid token of exactly MaxTokenSize bytes by padding an unknown
	// claim (two pad lengths cover every residue of the encoding).
	var exact string
	for pad := 5000; pad < 6200 && exact == ""; pad++ {
		for _, kid := range []string{"ed-1", "ed-1x", "ed-1xy"} {
			signer := newEdSigner(kid, 1)
			tok := forge(signer, hdr("EdDSA", kid, "svc+jwt"), servicePayload().set("pad", strconv.Quote(strings.Repeat("p", pad))).String())
			if len(tok) == MaxTokenSize {
				exact = tok
				keys, err := NewKeySet(EdDSA, []Key{signer.Key})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := Verify(tok, EdDSA, keys, serviceExpect()); err != nil {
					t.Fatalf("token of exactly %d bytes: %v", MaxTokenSize, err)
				}
				break
			}
		}
	}
	if exact == "" {
		t.Fatal("no token of the exact size found")
	}
	over := forge(edKey, svcHeader, servicePayload().set("pad", strconv.Quote(strings.Repeat("p", 6200))).String())
	if len(over) <= MaxTokenSize {
		t.Fatal("oversized token too small")
	}
	runAttacks(t, []attack{
		{"one byte over the limit", exact + "A", rMalformed},
		{"oversized and signed", over, rMalformed},
		{"a megabyte of dots and letters", strings.Repeat("a.", 1<<19), rMalformed},
	})
}

func TestParsedFields(t *testing.T) {
	tok := signToken(t, edKey, serviceClaims())
	p, err := Parse(tok, EdDSA, TypeService)
	if err != nil {
		t.Fatal(err)
	}
	if p.KID != "ed-1" || p.Type != TypeService || p.alg != EdDSA {
		t.Fatalf("parsed %+v", p)
	}
	if string(p.message) != tok[:strings.LastIndexByte(tok, '.')] {
		t.Fatal("signing input is not the received header.payload")
	}
	if len(p.signature) != signatureSize {
		t.Fatalf("signature of %d bytes", len(p.signature))
	}
	// The decoded parts must not share memory with each other in a way that
	// appending could corrupt (capacities are clipped).
	if cap(p.message) != len(p.message) || cap(p.payload) != len(p.payload) || cap(p.signature) != len(p.signature) {
		t.Fatal("parsed slices are not clipped")
	}
}
