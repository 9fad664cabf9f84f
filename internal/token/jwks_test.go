package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func edJWK(s Signer) payload {
	return payload{
		{"kty", `"OKP"`},
		{"crv", `"Ed25519"`},
		{"x", strconv.Quote(b64Plain.EncodeToString(s.Key.Public.(ed25519.PublicKey)))},
		{"kid", strconv.Quote(s.Key.ID)},
		{"alg", `"EdDSA"`},
		{"use", `"sig"`},
	}
}

func ecJWK(s Signer) payload {
	point, err := s.Key.Public.(*ecdsa.PublicKey).Bytes()
	if err != nil {
		panic(err)
	}
	return payload{
		{"kty", `"EC"`},
		{"crv", `"P-256"`},
		{"x", strconv.Quote(b64Plain.EncodeToString(point[1:33]))},
		{"y", strconv.Quote(b64Plain.EncodeToString(point[33:]))},
		{"kid", strconv.Quote(s.Key.ID)},
		{"alg", `"ES256"`},
	}
}

func set(keys ...payload) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k.String()
	}
	return `{"keys":[` + strings.Join(parts, ",") + `]}`
}

func b64Quote(b []byte) string { return strconv.Quote(b64Plain.EncodeToString(b)) }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Ed25519 encodings that are not acceptable public keys.
var badEdKeys = map[string][]byte{
	"identity (order 1)":          mustHex("0100000000000000000000000000000000000000000000000000000000000000"),
	"zero y (order 4)":            mustHex("0000000000000000000000000000000000000000000000000000000000000000"),
	"y = -1 (order 2)":            mustHex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	"order 8":                     mustHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
	"order 8, other":              mustHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
	"order 8, negated x":          mustHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"),
	"identity with the sign bit":  mustHex("0100000000000000000000000000000000000000000000000000000000000080"),
	"non-canonical y = p":         mustHex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	"non-canonical y = p + 1":     mustHex("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	"non-canonical y = 2^255 - 1": mustHex("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	"not on the curve (y = 2)":    mustHex("0200000000000000000000000000000000000000000000000000000000000000"),
}

func TestParseJWKSValid(t *testing.T) {
	ed2 := newEdSigner("ed-2", 7)
	ks, err := ParseJWKS([]byte(set(edJWK(edKey), edJWK(ed2))), EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	if ks.Len() != 2 {
		t.Fatalf("Len = %d", ks.Len())
	}
	k, ok := ks.Lookup("ed-2")
	if !ok || k.Algorithm != EdDSA || !ed2.Key.Public.(ed25519.PublicKey).Equal(k.Public) {
		t.Fatalf("Lookup = %+v %v", k, ok)
	}
	if _, ok := ks.Lookup("ed-3"); ok {
		t.Fatal("unknown kid found")
	}
	if got := ks.Keys(); len(got) != 2 || got[0].ID != "ed-1" || got[1].ID != "ed-2" {
		t.Fatalf("Keys = %+v", got)
	}

	ks, err = ParseJWKS([]byte(set(ecJWK(ecKey))), ES256)
	if err != nil {
		t.Fatal(err)
	}
	k, _ = ks.Lookup("ec-1")
	if !ecKey.Key.Public.(*ecdsa.PublicKey).Equal(k.Public) {
		t.Fatal("ES256 key differs")
	}

	var nilSet *KeySet
	if nilSet.Len() != 0 || nilSet.Keys() != nil {
		t.Fatal("nil set not empty")
	}
	if _, ok := nilSet.Lookup("ed-1"); ok {
		t.Fatal("nil set found a key")
	}
}

func TestParseJWKS(t *testing.T) {
	ed, ec := edJWK(edKey), ecJWK(ecKey)
	pad := strings.Repeat(" ", MaxJWKSSize)
	manyKeys := func(n int) string {
		keys := make([]payload, n)
		for i := range keys {
			keys[i] = ed.set("kid", strconv.Quote("k"+strconv.Itoa(i)))
		}
		return set(keys...)
	}
	edPub := edKey.Key.Public.(ed25519.PublicKey)
	point, _ := ecKey.Key.Public.(*ecdsa.PublicKey).Bytes()
	offCurveY := append([]byte(nil), point[33:]...)
	offCurveY[31] ^= 1
	pMinusOne := new(big.Int).Sub(elliptic.P256().Params().P, big.NewInt(1)).FillBytes(make([]byte, 32))

	type jwksCase struct {
		name string
		doc  string
		alg  Algorithm
		want error // nil: accepted
	}
	cases := []jwksCase{
		{"Ed25519 set", set(ed), EdDSA, nil},
		{"P-256 set", set(ec), ES256, nil},
		{"empty set", `{"keys":[]}`, EdDSA, nil},
		{"unknown members ignored", `{"x":{"y":[1,2]},"keys":[` + ed.set("ext", "true").set("x5c", `["MIIB"]`).set("key_ops", `["verify"]`).set("iat", "1").String() + `]}`, EdDSA, nil},
		{"use absent", set(ed.del("use")), EdDSA, nil},
		{"whitespace", " {\n\"keys\" : [ " + ed.String() + " ] }\n", EdDSA, nil},
		{"64 keys", manyKeys(64), EdDSA, nil},
		{"65 keys", manyKeys(65), EdDSA, errSetTooMany},
		{"larger than 64 KiB", set(ed) + pad, EdDSA, errSetSize},
		{"unsupported pinned algorithm", set(ed), "RS256", errSetAlgorithm},
		{"no keys member", `{"kids":[]}`, EdDSA, errSetNoKeys},
		{"keys not an array", `{"keys":{}}`, EdDSA, errSetNoKeys},
		{"keys null", `{"keys":null}`, EdDSA, errSetNoKeys},
		{"keys twice", `{"keys":[],"keys":[` + ed.String() + `]}`, EdDSA, errSetSyntax},
		{"a bare key", ed.String(), EdDSA, errSetNoKeys},
		{"an array of keys", `[` + ed.String() + `]`, EdDSA, errSetSyntax},
		{"empty document", ``, EdDSA, errSetSyntax},
		{"trailing garbage", set(ed) + "x", EdDSA, errSetSyntax},
		{"trailing comma", `{"keys":[` + ed.String() + `,]}`, EdDSA, errSetSyntax},
		{"key not an object", `{"keys":["ed-1"]}`, EdDSA, errSetSyntax},
		{"duplicate member in a key", set(ed.add("kid", `"ed-1"`)), EdDSA, errSetSyntax},
		{"duplicate member, escaped", set(ed.add(`\u0078`, b64Quote(edPub))), EdDSA, errSetSyntax},
		{"duplicate member deep in an unknown member", set(ed.set("z", `{"a":{"b":1,"b":1}}`)), EdDSA, errSetSyntax},
		{"too deep", set(ed.set("z", strings.Repeat("[", 9)+strings.Repeat("]", 9))), EdDSA, errSetSyntax},
		{"invalid UTF-8", set(ed.set("z", "\"\xff\"")), EdDSA, errSetSyntax},
		{"kid missing", set(ed.del("kid")), EdDSA, errSetKID},
		{"kid empty", set(ed.set("kid", `""`)), EdDSA, errSetKID},
		{"kid of 129 characters", set(ed.set("kid", strconv.Quote(strings.Repeat("k", 129)))), EdDSA, errSetKID},
		{"kid with a slash", set(ed.set("kid", `"a/b"`)), EdDSA, errSetKID},
		{"kid number", set(ed.set("kid", `1`)), EdDSA, errSetSyntax},
		{"duplicate kid", set(ed, edJWK(newEdSigner("ed-1", 9))), EdDSA, errSetDupKID},
		{"duplicate kid, same key", set(ed, ed), EdDSA, errSetDupKID},
		{"alg missing", set(ed.del("alg")), EdDSA, errSetAlg},
		{"alg of the other algorithm", set(ed.set("alg", `"ES256"`)), EdDSA, errSetAlg},
		{"alg lower case", set(ed.set("alg", `"eddsa"`)), EdDSA, errSetAlg},
		{"alg none", set(ed.set("alg", `"none"`)), EdDSA, errSetAlg},
		{"alg HS256", set(ed.set("alg", `"HS256"`)), EdDSA, errSetAlg},
		{"P-256 key in an EdDSA set", set(ec), EdDSA, errSetAlg},
		{"P-256 key labelled EdDSA", set(ec.set("alg", `"EdDSA"`)), EdDSA, errSetKeyType},
		{"Ed25519 key labelled ES256", set(ed.set("alg", `"ES256"`)), ES256, errSetKeyType},
		{"use enc", set(ed.set("use", `"enc"`)), EdDSA, errSetUse},
		{"use upper case", set(ed.set("use", `"SIG"`)), EdDSA, errSetUse},
		{"key_ops sign", set(ed.set("key_ops", `["sign"]`)), EdDSA, errSetKeyOps},
		{"key_ops verify and sign", set(ed.set("key_ops", `["verify","sign"]`)), EdDSA, errSetKeyOps},
		{"key_ops verify twice", set(ed.set("key_ops", `["verify","verify"]`)), EdDSA, errSetKeyOps},
		{"key_ops empty", set(ed.set("key_ops", `[]`)), EdDSA, errSetKeyOps},
		{"key_ops a string", set(ed.set("key_ops", `"verify"`)), EdDSA, errSetKeyOps},
		{"kty X25519 (OKP)", set(ed.set("crv", `"X25519"`)), EdDSA, errSetKeyType},
		{"crv Ed448", set(ed.set("crv", `"Ed448"`)), EdDSA, errSetKeyType},
		{"kty EC for EdDSA", set(ed.set("kty", `"EC"`)), EdDSA, errSetKeyType},
		{"kty RSA", set(payload{{"kty", `"RSA"`}, {"n", `"AQAB"`}, {"e", `"AQAB"`}, {"kid", `"r"`}, {"alg", `"EdDSA"`}}), EdDSA, errSetKeyType},
		{"kty lower case", set(ed.set("kty", `"okp"`)), EdDSA, errSetKeyType},
		{"kty missing", set(ed.del("kty")), EdDSA, errSetKeyType},
		{"y on an OKP key", set(ed.set("y", b64Quote(edPub))), EdDSA, errSetKeyType},
		{"x missing", set(ed.del("x")), EdDSA, errSetKeyValue},
		{"x of 31 bytes", set(ed.set("x", b64Quote(edPub[:31]))), EdDSA, errSetKeyValue},
		{"x of 33 bytes", set(ed.set("x", b64Quote(append(append([]byte(nil), edPub...), 0)))), EdDSA, errSetKeyValue},
		{"x padded", set(ed.set("x", strconv.Quote(b64Plain.EncodeToString(edPub)+"="))), EdDSA, errSetKeyValue},
		{"x standard alphabet", set(ed.set("x", `"`+strings.Repeat("+", 42)+`/"`)), EdDSA, errSetKeyValue},
		{"x with an escaped newline", set(ed.set("x", `"`+b64Plain.EncodeToString(edPub)[:20]+`\n`+b64Plain.EncodeToString(edPub)[20:42]+`"`)), EdDSA, errSetKeyValue},
		{"x non-canonical bits", set(ed.set("x", strconv.Quote(nonCanonical(t, b64Plain.EncodeToString(edPub))))), EdDSA, errSetKeyValue},
		{"x number", set(ed.set("x", `1`)), EdDSA, errSetSyntax},
		{"EC y missing", set(ec.del("y")), ES256, errSetKeyValue},
		{"EC crv P-384", set(ec.set("crv", `"P-384"`)), ES256, errSetKeyType},
		{"EC crv secp256k1", set(ec.set("crv", `"secp256k1"`)), ES256, errSetKeyType},
		{"EC point off the curve", set(ec.set("y", b64Quote(offCurveY))), ES256, errSetKeyValue},
		{"EC zero point", set(ec.set("x", b64Quote(make([]byte, 32))).set("y", b64Quote(make([]byte, 32)))), ES256, errSetKeyValue},
		{"EC coordinate p-1", set(ec.set("x", b64Quote(pMinusOne))), ES256, errSetKeyValue},
		{"EC coordinate of 33 bytes", set(ec.set("x", b64Quote(append([]byte{0}, point[1:33]...)))), ES256, errSetKeyValue},
		{"EC coordinate of 31 bytes", set(ec.set("x", b64Quote(point[2:33]))), ES256, errSetKeyValue},
	}
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
		cases = append(cases,
			jwksCase{"private member " + m, set(ed.set(m, b64Quote(edPub))), EdDSA, errSetPrivate},
			jwksCase{"private member " + m + " null, in a later key", set(ed, edJWK(newEdSigner("ed-2", 4)).set(m, "null")), EdDSA, errSetPrivate},
		)
	}
	cases = append(cases, jwksCase{"oct key", set(payload{{"kty", `"oct"`}, {"k", `"c2VjcmV0"`}, {"kid", `"h"`}, {"alg", `"EdDSA"`}}), EdDSA, errSetPrivate})
	for name, key := range badEdKeys {
		cases = append(cases, jwksCase{"Ed25519 " + name, set(ed.set("x", b64Quote(key))), EdDSA, errSetKeyValue})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := ParseJWKS([]byte(tc.doc), tc.alg)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if ks != nil || !errors.Is(err, tc.want) || !errors.Is(err, ErrKeySet) {
				t.Fatalf("got %v, %v; want %v", ks, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "token: invalid key set: ") {
				t.Fatalf("error text %q", err)
			}
			assertNoEcho(t, err.Error(), tc.doc)
		})
	}
}

func TestMarshalJWKS(t *testing.T) {
	ed2 := newEdSigner("ed-2", 5)
	doc, err := MarshalJWKS([]Key{edKey.Key, ed2.Key})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"` + b64Plain.EncodeToString(edKey.Key.Public.(ed25519.PublicKey)) +
		`","kid":"ed-1","alg":"EdDSA","use":"sig"},{"kty":"OKP","crv":"Ed25519","x":"` + b64Plain.EncodeToString(ed2.Key.Public.(ed25519.PublicKey)) +
		`","kid":"ed-2","alg":"EdDSA","use":"sig"}]}`
	if string(doc) != want {
		t.Fatalf("got  %s\nwant %s", doc, want)
	}
	ks, err := ParseJWKS(doc, EdDSA)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ks.Keys(), []Key{edKey.Key, ed2.Key}) {
		t.Fatal("round trip changed the keys")
	}

	// ES256: coordinates are always 32 bytes, even with leading zeros.
	for range 64 {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k := Key{ID: "ec", Algorithm: ES256, Public: &priv.PublicKey}
		doc, err := MarshalJWKS([]Key{k})
		if err != nil {
			t.Fatal(err)
		}
		ks, err := ParseJWKS(doc, ES256)
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		got, _ := ks.Lookup("ec")
		if !priv.PublicKey.Equal(got.Public) {
			t.Fatal("ES256 round trip changed the key")
		}
	}

	if doc, err := MarshalJWKS(nil); err != nil || string(doc) != `{"keys":[]}` {
		t.Fatalf("empty: %s %v", doc, err)
	}
	many := make([]Key, MaxKeys+1)
	for i := range many {
		many[i] = newEdSigner("k"+strconv.Itoa(i), 1).Key
	}
	for _, tc := range []struct {
		name string
		keys []Key
		want error
	}{
		{"duplicate kid", []Key{edKey.Key, edOther.Key}, errSetDupKID},
		{"invalid kid", []Key{{ID: "a b", Algorithm: EdDSA, Public: edKey.Key.Public}}, errSetKID},
		{"unknown algorithm", []Key{{ID: "a", Algorithm: "RS256", Public: edKey.Key.Public}}, errSetAlg},
		{"short key", []Key{{ID: "a", Algorithm: EdDSA, Public: edKey.Key.Public.(ed25519.PublicKey)[:31]}}, errSetKeyValue},
		{"small-order key", []Key{{ID: "a", Algorithm: EdDSA, Public: ed25519.PublicKey(badEdKeys["identity (order 1)"])}}, errSetKeyValue},
		{"private key", []Key{{ID: "a", Algorithm: EdDSA, Public: edKey.Private}}, errSetKeyType},
		{"ecdsa private key", []Key{{ID: "a", Algorithm: ES256, Public: ecKey.Private}}, errSetKeyType},
		{"EC key without coordinates", []Key{{ID: "a", Algorithm: ES256, Public: &ecdsa.PublicKey{Curve: elliptic.P256()}}}, errSetKeyValue},
		{"too many", many, errSetTooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MarshalJWKS(tc.keys); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if _, err := NewKeySet(tc.keys[0].Algorithm, tc.keys); err == nil && !errors.Is(tc.want, errSetTooMany) {
				t.Fatal("NewKeySet accepted it")
			}
		})
	}
}

func TestNewKeySet(t *testing.T) {
	if _, err := NewKeySet(EdDSA, []Key{ecKey.Key}); !errors.Is(err, errSetAlg) {
		t.Fatalf("mixed algorithms: %v", err)
	}
	if _, err := NewKeySet("none", nil); !errors.Is(err, errSetAlgorithm) {
		t.Fatalf("bad algorithm: %v", err)
	}
	ks, err := NewKeySet(ES256, nil)
	if err != nil || ks.Len() != 0 {
		t.Fatalf("empty: %v", err)
	}
}

func TestEd25519PointValid(t *testing.T) {
	for name, key := range badEdKeys {
		if ed25519PointValid(key) {
			t.Errorf("%s accepted", name)
		}
	}
	for range 200 {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !ed25519PointValid(pub) {
			t.Fatalf("valid key %x refused", []byte(pub))
		}
	}
	if ed25519PointValid(nil) || ed25519PointValid(make([]byte, 31)) {
		t.Fatal("wrong lengths accepted")
	}
}
