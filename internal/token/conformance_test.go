package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	vectors "github.com/callsign-dev/callsign/internal/conformance"
)

// The conformance suite runs every Wycheproof JWS, JWE and JWK vector and
// every JOSE cookbook example (RFC 7520, RFC 7797, RFC 8037) from the shared
// conformance folder through the core. The vectors are read where they are
// and never copied into the repository. The folder is $CALLSIGN_CONFORMANCE_DIR,
// else <repository root>/../shared/conformance; the tests skip when it is
// absent.
//
// How a vector is judged. callsign accepts only its own profile (compact JWS,
// header exactly {alg, kid, typ} with typ svc+jwt or user+jwt, one pinned
// algorithm among EdDSA and ES256). No external vector carries a callsign typ,
// so the verdict is in layers:
//
//  1. Profile: every token (compact or JSON serialization, JWS or JWE) is
//     refused by Verify as a service and as a user token, under both pinned
//     algorithms, with the vector's own key trusted whenever the key set
//     loader accepts it, and always with REASON_TOKEN_MALFORMED. Wycheproof's
//     "valid" means valid under general JOSE; it does not make a token
//     acceptable here (RS256, HS256, PS256, a header without typ...).
//     ParseAssertion refuses them too.
//  2. Signature core: where the vector's key is a public ES256 or Ed25519 key
//     that the loader accepts, and the token is compact with that alg, the
//     token is also checked with the profile's header rules relaxed to "a
//     strict JSON object whose alg is the pinned one" (the vectors have no
//     typ and some no kid), then VerifySignature. The outcome must equal
//     Wycheproof's result as corrected by OVERRIDES.json ("skip" vectors are
//     skipped, "invalid" and "valid-if-ES512-pinned" are expected invalid:
//     ES512 is not an algorithm callsign pins). The cookbook's Ed25519 example
//     (RFC 8037 A.4) must verify.
//  3. Keys: every JWK and JWK Set is refused by ParseJWKS under both pinned
//     algorithms (private members, symmetric keys, RSA, other curves, "use":
//     "enc", missing alg or kid, points off the curve, ...), except the
//     public P-256 keys of the Wycheproof ES256 groups, which are exactly the
//     profile's ES256 keys and must load under ES256 (and only under ES256).
//  4. Primitives: the Wycheproof Ed25519 and ECDSA P-256 (IEEE P1363, raw
//     r||s) vectors run through VerifySignature with the key checked by the
//     key loader's rules; accepted exactly when Wycheproof says valid.

func conformanceDir(t *testing.T) string { return vectors.Dir(t) }

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// overrides are the corrections of wycheproof/OVERRIDES.json: file, then a
// tcId or a range "a-b", then the result to use.
type overrides map[string]map[string]struct {
	Wycheproof string `json:"wycheproof"`
	Use        string `json:"use"`
	Note       string `json:"note"`
}

func loadOverrides(t *testing.T, dir string) overrides {
	t.Helper()
	var raw map[string]json.RawMessage
	readJSON(t, filepath.Join(dir, "wycheproof", "OVERRIDES.json"), &raw)
	o := overrides{}
	for file, v := range raw {
		if strings.HasPrefix(file, "_") {
			continue
		}
		m := o[file]
		if err := json.Unmarshal(v, &m); err != nil {
			t.Fatalf("OVERRIDES.json %s: %v", file, err)
		}
		o[file] = m
	}
	return o
}

// expected returns the corrected result of a vector and whether to skip it.
func (o overrides) expected(t *testing.T, file string, tcID int, result string) (string, bool) {
	t.Helper()
	for key, ov := range o[file] {
		lo, hi, isRange := strings.Cut(key, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			t.Fatalf("OVERRIDES.json key %q", key)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				t.Fatalf("OVERRIDES.json key %q", key)
			}
		}
		if tcID < a || tcID > b {
			continue
		}
		if ov.Wycheproof != "" && ov.Wycheproof != result {
			t.Fatalf("%s tcId %d: OVERRIDES.json expects Wycheproof to say %q, it says %q", file, tcID, ov.Wycheproof, result)
		}
		switch ov.Use {
		case "skip":
			return "", true
		case "valid", "invalid":
			return ov.Use, false
		case "valid-if-ES512-pinned":
			return "invalid", false // callsign never pins ES512
		default:
			t.Fatalf("OVERRIDES.json %s %s: unknown use %q", file, key, ov.Use)
		}
	}
	return result, false
}

// wpVector is a Wycheproof JOSE test vector; jws and jwe are compact strings
// or JSON-serialization objects.
type wpVector struct {
	TcID    int             `json:"tcId"`
	Comment string          `json:"comment"`
	JWS     json.RawMessage `json:"jws"`
	JWE     json.RawMessage `json:"jwe"`
	Result  string          `json:"result"`
	Flags   []string        `json:"flags"`
	Public  json.RawMessage `json:"public"`  // x25519/x448 JWK tests
	Private json.RawMessage `json:"private"` // x25519/x448 JWK tests
}

type wpFile struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		Comment string          `json:"comment"`
		Private json.RawMessage `json:"private"`
		Public  json.RawMessage `json:"public"`
		Tests   []wpVector      `json:"tests"`
	} `json:"testGroups"`
}

// tokenText returns a vector's token as sent: the compact string, or the
// JSON serialization as text.
func tokenText(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	return string(raw)
}

// keySetDoc wraps one JWK, or passes a JWK Set through.
func keySetDoc(jwkOrSet json.RawMessage) []byte {
	var probe map[string]json.RawMessage
	if json.Unmarshal(jwkOrSet, &probe) == nil {
		if _, ok := probe["keys"]; ok {
			return jwkOrSet
		}
	}
	return []byte(`{"keys":[` + string(jwkOrSet) + `]}`)
}

// conformance holds the counts reported at the end.
type conformance struct {
	profile, signature, keysRefused, keysLoaded, skipped int
}

var profileAlgs = []Algorithm{EdDSA, ES256}

// profileRejects is layer 1: raw is refused as a callsign token whatever the
// pinned algorithm or expected type, with keys (by algorithm; nil entries
// use the test keys) trusted, and refused as a client assertion.
func (c *conformance) profileRejects(t *testing.T, name, raw string, keys map[Algorithm]*KeySet) {
	t.Helper()
	c.profile++
	for _, alg := range profileAlgs {
		ks := keys[alg]
		if ks == nil {
			ks = testKeySet(t, alg)
		}
		for _, typ := range []Type{TypeService, TypeUser} {
			_, err := Verify(raw, alg, ks, Expect{Issuer: testIssuer, Audience: testAudience, Type: typ, Now: testNow})
			if ReasonOf(err) != callsignv1.Reason_REASON_TOKEN_MALFORMED {
				t.Errorf("%s under %s/%v: got %v, want TOKEN_MALFORMED", name, alg, typ, err)
				continue
			}
			if err.Error() != "token: REASON_TOKEN_MALFORMED" {
				t.Errorf("%s: error text %q", name, err)
			}
		}
	}
	if _, err := ParseAssertion(raw); err == nil {
		t.Errorf("%s: accepted as a client assertion", name)
	}
}

// loadKeys is layer 3 for one JWK or JWK Set: the sets ParseJWKS accepts, by
// algorithm.
func (c *conformance) loadKeys(doc []byte) map[Algorithm]*KeySet {
	out := map[Algorithm]*KeySet{}
	for _, alg := range profileAlgs {
		if ks, err := ParseJWKS(doc, alg); err == nil {
			out[alg] = ks
			c.keysLoaded++
		} else {
			c.keysRefused++
		}
	}
	return out
}

// parseRelaxed is the strict compact parse with the header rules relaxed to
// "a strict JSON object whose alg is alg", for layer 2.
func parseRelaxed(raw string, alg Algorithm) (*Parsed, bool) {
	dot1, dot2, ok := split(raw)
	if !ok {
		return nil, false
	}
	var buf [maxHeaderSize]byte
	var src [(maxHeaderSize + 2) / 3 * 4]byte
	if dot1 > len(src) {
		return nil, false
	}
	n, err := b64.Decode(buf[:], src[:copy(src[:], raw[:dot1])])
	if err != nil {
		return nil, false
	}
	s := scanner{b: buf[:n]}
	if !s.consume('{') {
		return nil, false
	}
	var seen names
	var algOK bool
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return nil, false
		}
		if done {
			break
		}
		if seen, ok = seen.add(name); !ok {
			return nil, false
		}
		if string(name) == "alg" {
			v, ok := s.str()
			if !ok {
				return nil, false
			}
			algOK = string(v) == string(alg)
			continue
		}
		if !s.value(2) {
			return nil, false
		}
	}
	if !s.end() || !algOK {
		return nil, false
	}
	p, err := decodeRest(raw, dot1, dot2, "", 0, alg)
	return p, err == nil
}

// signatureAccepts is layer 2.
func signatureAccepts(raw string, alg Algorithm, keys *KeySet) bool {
	p, ok := parseRelaxed(raw, alg)
	if !ok {
		return false
	}
	for _, k := range keys.Keys() {
		if p.VerifySignature(k) == nil {
			return true
		}
	}
	return false
}

// Groups whose public key is a profile ES256 key (layer 3).
var profilePublicKeyGroups = []string{"es256", "SpecialCaseEs256", "jws_ec"}

// Expected loader errors for the Wycheproof ES256 key-set groups.
var keySetGroupErrors = map[string]error{
	"wrong_algorithm":   errSetAlg,
	"invalid_algorithm": errSetAlg,
	"invalid_use":       errSetUse,
	"invalid_point":     errSetKeyValue,
	"wrong_curve":       errSetKeyType,
	"wrong_kty":         errSetKeyType,
}

func TestConformanceWycheproofJOSE(t *testing.T) {
	dir := conformanceDir(t)
	ov := loadOverrides(t, dir)
	var c conformance
	for _, file := range []string{"json_web_signature_test.json", "json_web_crypto_test.json", "json_web_key_test.json", "json_web_encryption_test.json"} {
		t.Run(file, func(t *testing.T) {
			var f wpFile
			readJSON(t, filepath.Join(dir, "wycheproof", "testvectors_v1", file), &f)
			count := 0
			for gi, g := range f.TestGroups {
				// Layer 3: the group's private key or set never loads; its
				// public key loads only if it is a profile ES256 key.
				if len(g.Private) > 0 {
					for alg, ks := range c.loadKeys(keySetDoc(g.Private)) {
						t.Errorf("group %d %q: private key set loaded under %s (%d keys)", gi, g.Comment, alg, ks.Len())
					}
				}
				var keys map[Algorithm]*KeySet
				if len(g.Public) > 0 {
					keys = c.loadKeys(keySetDoc(g.Public))
					wantES256 := file != "json_web_key_test.json" && slices.Contains(profilePublicKeyGroups, g.Comment)
					if (keys[ES256] != nil) != wantES256 || keys[EdDSA] != nil {
						t.Errorf("group %d %q: public key loaded under %v, want ES256 only when it is a profile key (%v)", gi, g.Comment, keys, wantES256)
					}
					if want, ok := keySetGroupErrors[g.Comment]; ok && file == "json_web_key_test.json" {
						if _, err := ParseJWKS(keySetDoc(g.Public), ES256); !errors.Is(err, want) {
							t.Errorf("group %q: got %v, want %v", g.Comment, err, want)
						}
					}
				}
				for _, v := range g.Tests {
					count++
					want, skip := ov.expected(t, file, v.TcID, v.Result)
					if skip {
						c.skipped++
						continue
					}
					name := file + " tcId " + strconv.Itoa(v.TcID) + " (" + v.Comment + ")"
					raw := v.JWS
					if len(raw) == 0 {
						raw = v.JWE
					}
					tok := tokenText(t, raw)
					c.profileRejects(t, name, tok, keys)
					// Layer 2, where the key is a profile key.
					if keys[ES256] != nil && len(v.JWS) > 0 {
						c.signature++
						if got := signatureAccepts(tok, ES256, keys[ES256]); got != (want == "valid") {
							t.Errorf("%s: signature core accepts=%v, Wycheproof (corrected) says %s", name, got, want)
						}
					}
				}
			}
			if count != f.NumberOfTests {
				t.Errorf("ran %d vectors, the file declares %d", count, f.NumberOfTests)
			}
		})
	}
	for _, file := range []string{"x25519_jwk_test.json", "x448_jwk_test.json"} {
		t.Run(file, func(t *testing.T) {
			var f wpFile
			readJSON(t, filepath.Join(dir, "wycheproof", "testvectors_v1", file), &f)
			for _, g := range f.TestGroups {
				for _, v := range g.Tests {
					for _, k := range []json.RawMessage{v.Public, v.Private} {
						if len(k) == 0 {
							continue
						}
						if loaded := c.loadKeys(keySetDoc(k)); len(loaded) > 0 {
							t.Errorf("tcId %d: X25519/X448 key loaded", v.TcID)
						}
					}
				}
			}
		})
	}
	t.Logf("profile refusals %d, signature-core checks %d, key sets refused %d and loaded %d (per pinned algorithm), skipped by OVERRIDES.json %d",
		c.profile, c.signature, c.keysRefused, c.keysLoaded, c.skipped)
}

func TestConformanceWycheproofPrimitives(t *testing.T) {
	dir := conformanceDir(t)
	type primFile struct {
		TestGroups []struct {
			PublicKey struct {
				PK           string `json:"pk"`
				Uncompressed string `json:"uncompressed"`
			} `json:"publicKey"`
			Tests []struct {
				TcID   int    `json:"tcId"`
				Msg    string `json:"msg"`
				Sig    string `json:"sig"`
				Result string `json:"result"`
			} `json:"tests"`
		} `json:"testGroups"`
	}
	for _, tc := range []struct {
		file string
		alg  Algorithm
	}{
		{"ed25519_test.json", EdDSA},
		{"ecdsa_secp256r1_sha256_p1363_test.json", ES256},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var f primFile
			readJSON(t, filepath.Join(dir, "wycheproof", "primitives", tc.file), &f)
			n := 0
			for gi, g := range f.TestGroups {
				key := Key{ID: "wycheproof", Algorithm: tc.alg}
				if tc.alg == EdDSA {
					key.Public = ed25519.PublicKey(mustHex(g.PublicKey.PK))
				} else {
					pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), mustHex(g.PublicKey.Uncompressed))
					if err != nil {
						t.Fatalf("group %d: %v", gi, err)
					}
					key.Public = pub
				}
				keyOK := checkKey(key) == nil
				for _, v := range g.Tests {
					n++
					msg, sig := mustHex(v.Msg), mustHex(v.Sig)
					p := &Parsed{alg: tc.alg, message: msg, signature: sig}
					got := keyOK && p.VerifySignature(key) == nil
					switch v.Result {
					case "valid":
						if !got {
							t.Errorf("group %d tcId %d: valid signature refused (key accepted by the loader: %v)", gi, v.TcID, keyOK)
						}
					case "invalid":
						if got {
							t.Errorf("group %d tcId %d: invalid signature accepted", gi, v.TcID)
						}
					}
				}
			}
			t.Logf("%d vectors", n)
		})
	}
}

func TestConformanceJOSECookbook(t *testing.T) {
	dir := filepath.Join(conformanceDir(t), "jose-cookbook")
	var c conformance
	var files []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no cookbook examples")
	}
	signed := 0
	for _, path := range files {
		rel, _ := filepath.Rel(dir, path)
		t.Run(rel, func(t *testing.T) {
			var doc any
			readJSON(t, path, &doc)
			// Layers 1 and 3 on everything in the example: every compact
			// serialization, every JSON serialization, every key.
			walkCookbook(doc, "", func(key string, v any) {
				switch x := v.(type) {
				case string:
					if key == "compact" {
						c.profileRejects(t, rel+" compact", x, nil)
					}
				case map[string]any:
					if key == "json" || key == "json_flat" {
						text, _ := json.Marshal(x)
						c.profileRejects(t, rel+" "+key, string(text), nil)
					}
					if _, isKey := x["kty"]; isKey {
						text, _ := json.Marshal(x)
						if loaded := c.loadKeys(keySetDoc(text)); len(loaded) > 0 {
							t.Errorf("%s: key %s loaded", rel, text)
						}
					}
				}
			})
			// Layer 2: an example signed with a profile algorithm verifies
			// with its public key (private members dropped, kid and alg added,
			// then through ParseJWKS).
			m, _ := doc.(map[string]any)
			input, _ := m["input"].(map[string]any)
			alg, _ := input["alg"].(string)
			if alg != string(EdDSA) && alg != string(ES256) {
				return
			}
			output, _ := m["output"].(map[string]any)
			compact, _ := output["compact"].(string)
			key, _ := input["key"].(map[string]any)
			pub := map[string]any{"kid": "cookbook", "alg": alg}
			for k, v := range key {
				if !slices.Contains([]string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"}, k) {
					pub[k] = v
				}
			}
			pub["kid"], pub["alg"] = "cookbook", alg
			text, _ := json.Marshal(pub)
			ks, err := ParseJWKS(keySetDoc(text), Algorithm(alg))
			if err != nil {
				t.Fatalf("public half of the example key refused: %v", err)
			}
			if !signatureAccepts(compact, Algorithm(alg), ks) {
				t.Fatalf("%s: the example's signature does not verify", rel)
			}
			signed++
			// One changed payload byte breaks it.
			parts := strings.Split(compact, ".")
			tampered := parts[0] + "." + enc("x"+string(mustB64(t, parts[1]))) + "." + parts[2]
			if signatureAccepts(tampered, Algorithm(alg), ks) {
				t.Fatal("tampered example verifies")
			}
		})
	}
	if signed == 0 {
		t.Error("no cookbook example reached the signature core")
	}
	t.Logf("%d examples: profile refusals %d, keys refused %d (per pinned algorithm), signatures verified %d", len(files), c.profile, c.keysRefused, signed)
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// walkCookbook calls fn for every value in v with the key it is under.
func walkCookbook(v any, key string, fn func(key string, v any)) {
	fn(key, v)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			walkCookbook(e, k, fn)
		}
	case []any:
		for _, e := range x {
			walkCookbook(e, key, fn)
		}
	}
}
