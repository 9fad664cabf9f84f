package attack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/callsign-dev/callsign/interceptor"
	"github.com/callsign-dev/callsign/internal/conformance"
	"github.com/callsign-dev/callsign/internal/token"
)

// The external conformance vectors (Wycheproof's JOSE files and the JOSE
// cookbook) are read from CALLSIGN_CONFORMANCE_DIR or ../shared/conformance
// next to the repository, never copied into it; the tests skip without them.

// conformanceDir returns the directory of the vectors, or skips the test.
func conformanceDir(t testing.TB) string { return conformance.Dir(t) }

// vector is one serialized JWS (or JWE, or JWK) from the external files, with
// the keys of its group.
type vector struct {
	id    string // file#tcId or file#path
	text  string // what is sent as the bearer token
	keys  []json.RawMessage
	label string // Wycheproof's result, corrected by OVERRIDES.json
}

// overrides reads wycheproof/OVERRIDES.json: file -> tcId (or range) -> use.
func overrides(t testing.TB, dir string) map[string]map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "wycheproof", "OVERRIDES.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for file, v := range raw {
		if strings.HasPrefix(file, "_") {
			continue
		}
		var entries map[string]struct {
			Use string `json:"use"`
		}
		if err := json.Unmarshal(v, &entries); err != nil {
			continue
		}
		m := map[string]string{}
		for id, e := range entries {
			var lo, hi int
			if n, _ := fmt.Sscanf(id, "%d-%d", &lo, &hi); n == 2 {
				for i := lo; i <= hi; i++ {
					m[fmt.Sprint(i)] = e.Use
				}
			} else {
				m[id] = e.Use
			}
		}
		out[file] = m
	}
	return out
}

// loadVectors collects every vector of the Wycheproof JOSE files and of the
// cookbook.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	dir := conformanceDir(t)
	ov := overrides(t, dir)
	var out []vector

	wy := filepath.Join(dir, "wycheproof", "testvectors_v1")
	for _, name := range []string{"json_web_signature_test.json", "json_web_key_test.json", "json_web_crypto_test.json", "json_web_encryption_test.json"} {
		data, err := os.ReadFile(filepath.Join(wy, name))
		if err != nil {
			t.Fatal(err)
		}
		var f struct {
			TestGroups []struct {
				Public  json.RawMessage `json:"public"`
				Private json.RawMessage `json:"private"`
				Tests   []struct {
					TcID   int             `json:"tcId"`
					JWS    json.RawMessage `json:"jws"`
					JWE    json.RawMessage `json:"jwe"`
					Result string          `json:"result"`
				} `json:"tests"`
			} `json:"testGroups"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for _, g := range f.TestGroups {
			keys := groupKeys(g.Public, g.Private)
			for _, tc := range g.Tests {
				label := tc.Result
				if u, ok := ov[name][fmt.Sprint(tc.TcID)]; ok {
					label = u
				}
				for _, raw := range []json.RawMessage{tc.JWS, tc.JWE} {
					if len(raw) == 0 {
						continue
					}
					out = append(out, vector{id: fmt.Sprintf("%s#%d", name, tc.TcID), text: textOf(raw), keys: keys, label: label})
					n++
				}
			}
			// The key material itself, sent as a token.
			for i, k := range keys {
				out = append(out, vector{id: fmt.Sprintf("%s#key%d", name, i), text: string(k), label: "invalid"})
			}
		}
		if n == 0 {
			t.Fatalf("%s: no vectors", name)
		}
	}

	cb := filepath.Join(dir, "jose-cookbook")
	err := filepath.WalkDir(cb, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rel, _ := filepath.Rel(cb, path)
		var keys []json.RawMessage
		if m, ok := doc.(map[string]any); ok {
			if in, ok := m["input"].(map[string]any); ok {
				if k, ok := in["key"]; ok {
					b, _ := json.Marshal(k)
					keys = groupKeys(b, nil)
				}
			}
		}
		walkJSON(doc, rel, func(at, text string) {
			out = append(out, vector{id: "cookbook/" + at, text: text, keys: keys, label: "cookbook"})
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// textOf is a vector's string, or the JSON text of an object.
func textOf(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// walkJSON reports every serialization in a cookbook document: compact
// strings and JSON (general and flattened) objects under "output", and any
// JWK given as input.
func walkJSON(v any, at string, found func(at, text string)) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := v[k]
			switch k {
			case "compact":
				if s, ok := child.(string); ok {
					found(at+"/"+k, s)
					continue
				}
			case "json", "json_flat", "key", "jwk":
				if _, ok := child.(map[string]any); ok {
					b, _ := json.Marshal(child)
					found(at+"/"+k, string(b))
				}
			}
			walkJSON(child, at+"/"+k, found)
		}
	case []any:
		for i, c := range v {
			walkJSON(c, fmt.Sprintf("%s/%d", at, i), found)
		}
	}
}

// groupKeys returns the JWKs of a group (a key or a key set), public members
// only, so that the key-set loader can take them.
func groupKeys(docs ...json.RawMessage) []json.RawMessage {
	var out []json.RawMessage
	for _, doc := range docs {
		if len(doc) == 0 {
			continue
		}
		var set struct {
			Keys []map[string]any `json:"keys"`
		}
		var one map[string]any
		var list []map[string]any
		if json.Unmarshal(doc, &set) == nil && set.Keys != nil {
			list = set.Keys
		} else if json.Unmarshal(doc, &one) == nil && one != nil {
			list = []map[string]any{one}
		}
		for _, k := range list {
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
				delete(k, private)
			}
			b, _ := json.Marshal(k)
			if !slices.ContainsFunc(out, func(o json.RawMessage) bool { return string(o) == string(b) }) {
				out = append(out, b)
			}
		}
	}
	return out
}

// keySetFor returns a JWKS of those of keys the loader accepts under alg.
func keySetFor(keys []json.RawMessage, alg token.Algorithm) []byte {
	var ok []string
	for _, k := range keys {
		one := `{"keys":[` + string(k) + `]}`
		if _, err := token.ParseJWKS([]byte(one), alg); err == nil {
			ok = append(ok, string(k))
		}
	}
	if len(ok) == 0 {
		return nil
	}
	return []byte(`{"keys":[` + strings.Join(ok, ",") + `]}`)
}

// TestConformanceKeySets feeds every JWK of the vectors to the key-set
// loader, alone and as a set, with and without its private members: private
// members are always refused, and an accepted key matches the pinned
// algorithm.
func TestConformanceKeySets(t *testing.T) {
	dir := conformanceDir(t)
	var docs []string
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") || strings.Contains(path, "schemas") {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var doc any
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		collectJWKs(doc, func(k map[string]any) {
			b, _ := json.Marshal(k)
			if !seen[string(b)] {
				seen[string(b)] = true
				docs = append(docs, string(b))
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 20 {
		t.Fatalf("only %d JWKs found", len(docs))
	}
	accepted := 0
	for _, k := range docs {
		var m map[string]any
		_ = json.Unmarshal([]byte(k), &m)
		_, private := m["d"]
		if _, ok := m["k"]; ok {
			private = true
		}
		for _, alg := range []token.Algorithm{token.EdDSA, token.ES256} {
			for _, doc := range []string{`{"keys":[` + k + `]}`, k, `{"keys":[` + k + `,` + k + `]}`} {
				ks, err := token.ParseJWKS([]byte(doc), alg)
				if err != nil {
					if !errors.Is(err, token.ErrKeySet) {
						t.Errorf("ParseJWKS error %v does not wrap ErrKeySet", err)
					}
					continue
				}
				if private {
					t.Errorf("ParseJWKS accepted a private key under %s: %.60s", alg, k)
				}
				if doc[0] != '{' || !strings.HasPrefix(doc, `{"keys":[`) || strings.Count(doc, k) != 1 {
					t.Errorf("ParseJWKS accepted a malformed set under %s: %.60s", alg, doc)
				}
				for _, key := range ks.Keys() {
					if key.Algorithm != alg {
						t.Errorf("key %q has algorithm %s under pinned %s", key.ID, key.Algorithm, alg)
					}
				}
				accepted++
			}
		}
	}
	t.Logf("%d JWKs, %d accepted (alone, public members only)", len(docs), accepted)
}

// collectJWKs reports every object with a kty member, and the public form of
// those with private members.
func collectJWKs(v any, found func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["kty"].(string); ok {
			found(v)
			pub := map[string]any{}
			for k, x := range v {
				switch k {
				case "d", "p", "q", "dp", "dq", "qi", "oth", "k":
				default:
					pub[k] = x
				}
			}
			if len(pub) != len(v) {
				found(pub)
			}
		}
		for _, c := range v {
			collectJWKs(c, found)
		}
	case []any:
		for _, c := range v {
			collectJWKs(c, found)
		}
	}
}

// TestConformanceOverServer sends every vector as a bearer token to a real
// server, on a unary and a streaming RPC. Where the key-set loader accepts the
// vector's own keys, the server is pinned to that algorithm and holds exactly
// those keys, so that signatures are really checked; otherwise it holds its
// usual key. Every call must end in Unauthenticated with one audit record, no
// handler run and no echo.
func TestConformanceOverServer(t *testing.T) {
	vs := loadVectors(t)
	ed := newEnv(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecJWKS, err := token.MarshalJWKS([]token.Key{{ID: "ec1", Algorithm: token.ES256, Public: ecKey.Public()}})
	if err != nil {
		t.Fatal(err)
	}
	es := newEnvKeys(t, newKit(t), ecJWKS, interceptor.ES256, interceptor.WithAlgorithm(interceptor.ES256))
	seen := map[string]bool{}
	reasons := map[string]int{}
	for _, v := range vs {
		e, jwks := ed, keySetFor(v.keys, token.EdDSA)
		if jwks == nil {
			if jwks = keySetFor(v.keys, token.ES256); jwks != nil {
				e = es
			}
		}
		if jwks == nil {
			jwks = ed.kit.jwks
		}
		alg := interceptor.EdDSA
		if e == es {
			alg = interceptor.ES256
		}
		e.keys.set(t, jwks, alg, baseRevocation())
		if seen[v.text] {
			continue
		}
		seen[v.text] = true
		md := metadata.Pairs("authorization", "Bearer "+v.text)
		for _, stream := range []bool{false, true} {
			var out outcome
			if printable(v.text) {
				out = e.call(onScoped, stream, md)
			} else {
				out = e.rawOutcome(onScoped, stream, md)
			}
			if out.err == nil {
				t.Errorf("%s (%s, stream=%v): accepted", v.id, v.label, stream)
				continue
			}
			if _, ok := status.FromError(out.err); !ok {
				// CR, LF or NUL in a header value: HTTP/2 itself refuses the
				// stream (RFC 9113 §8.2.1) before any interceptor runs.
				if strings.ContainsAny(v.text, "\r\n\x00") && out.runs == 0 && len(out.recs) == 0 {
					reasons["(transport)"]++
					continue
				}
				t.Errorf("%s (stream=%v): %v, %d runs, %d audit records", v.id, stream, out.err, out.runs, len(out.recs))
				continue
			}
			code, reason, text := reasonOf(t, out.err)
			reasons[reason]++
			if code != codes.Unauthenticated || len(out.recs) != 1 || out.runs != 0 {
				t.Errorf("%s (stream=%v): %v %s, %d audit records, %d runs", v.id, stream, code, reason, len(out.recs), out.runs)
				continue
			}
			if interceptor.ReasonName(out.recs[0].Reason) != reason {
				t.Errorf("%s: audit reason %v, status reason %s", v.id, out.recs[0].Reason, reason)
			}
			secrets := secretsOf(md, nil)
			assertNoEcho(t, v.id+" status", text, secrets)
			assertNoEcho(t, v.id+" log", out.log, secrets)
		}
	}
	t.Logf("%d distinct vectors sent twice each; reasons: %v", len(seen), reasons)
	if len(seen) < 400 {
		t.Errorf("only %d distinct vectors", len(seen))
	}
}

func printable(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
