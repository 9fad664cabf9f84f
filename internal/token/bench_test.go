package token

import (
	"crypto/ed25519"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// The cold-path target of issue 4: Parse + VerifySignature + Claims of a token
// never seen before costs at most 1.3× one raw ed25519.Verify measured in the
// same run. Compare BenchmarkVerifyCold with BenchmarkEd25519VerifyRaw
// (BenchmarkJWXParseVerify is the naive baseline), or read the x-raw metric of
// BenchmarkVerifyColdVsRaw, which interleaves the two:
//
//	go test -run=^$ -bench=. -count=6 ./internal/token/
//
// TestVerifyCostRatio checks the ratio when CALLSIGN_PERF=1.

// benchTokens are distinct service tokens, so that nothing is reused between
// iterations but the key.
const benchTokenCount = 1024

type benchFixture struct {
	tokens []string
	keys   *KeySet
	expect Expect
	pub    ed25519.PublicKey
	msgs   [][]byte // signing inputs of tokens
	sigs   [][]byte // signatures of tokens
}

func newBenchFixture(tb testing.TB) *benchFixture {
	tb.Helper()
	f := &benchFixture{keys: testKeySet(tb, EdDSA), expect: serviceExpect(), pub: edKey.Key.Public.(ed25519.PublicKey)}
	for range benchTokenCount {
		tok := signToken(tb, edKey, serviceClaims())
		f.tokens = append(f.tokens, tok)
		p, err := Parse(tok, EdDSA, TypeService)
		if err != nil {
			tb.Fatal(err)
		}
		f.msgs = append(f.msgs, p.message)
		f.sigs = append(f.sigs, p.signature)
	}
	return f
}

func BenchmarkEd25519VerifyRaw(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if !ed25519.Verify(f.pub, f.msgs[i%benchTokenCount], f.sigs[i%benchTokenCount]) {
			b.Fatal("verify failed")
		}
		i++
	}
}

func BenchmarkVerifyCold(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Verify(f.tokens[i%benchTokenCount], EdDSA, f.keys, f.expect); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkParseOnly(b *testing.B) {
	f := newBenchFixture(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := Parse(f.tokens[i%benchTokenCount], EdDSA, TypeService); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkClaimsOnly(b *testing.B) {
	f := newBenchFixture(b)
	parsed := make([]*Parsed, benchTokenCount)
	for i, tok := range f.tokens {
		parsed[i], _ = Parse(tok, EdDSA, TypeService)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := parsed[i%benchTokenCount].Claims(f.expect); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyColdVsRaw alternates one raw ed25519.Verify and one cold
// Verify (of different tokens) in every iteration and reports the ratio of
// their median times as "x-raw": both sides see the same machine load, which
// separate benchmarks on a busy machine do not, and the medians ignore the
// iterations a preemption lands in.
func BenchmarkVerifyColdVsRaw(b *testing.B) {
	f := newBenchFixture(b)
	interleaved(b, f, func(tok string) error {
		_, err := Verify(tok, EdDSA, f.keys, f.expect)
		return err
	})
}

// BenchmarkJWXVsRaw is BenchmarkVerifyColdVsRaw for the naive baseline.
func BenchmarkJWXVsRaw(b *testing.B) {
	f := newBenchFixture(b)
	opts := f.jwxOptions()
	interleaved(b, f, func(tok string) error {
		_, err := jwt.Parse([]byte(tok), opts...)
		return err
	})
}

func interleaved(b *testing.B, f *benchFixture, verify func(string) error) {
	b.Helper()
	b.ReportAllocs()
	var raw, cold []time.Duration
	i := 0
	for b.Loop() {
		j := (i + benchTokenCount/2) % benchTokenCount
		t0 := time.Now()
		ok := ed25519.Verify(f.pub, f.msgs[j], f.sigs[j])
		t1 := time.Now()
		err := verify(f.tokens[i%benchTokenCount])
		t2 := time.Now()
		if !ok || err != nil {
			b.Fatal("verify failed", err)
		}
		raw = append(raw, t1.Sub(t0))
		cold = append(cold, t2.Sub(t1))
		i++
	}
	b.ReportMetric(float64(median(cold))/float64(median(raw)), "x-raw")
}

func (f *benchFixture) jwxOptions() []jwt.ParseOption {
	return []jwt.ParseOption{
		jwt.WithKey(jwa.EdDSA, f.pub),
		jwt.WithValidate(true),
		jwt.WithIssuer(f.expect.Issuer),
		jwt.WithAudience(f.expect.Audience),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return f.expect.Now })),
		jwt.WithAcceptableSkew(DefaultSkew),
	}
}

// BenchmarkJWXParseVerify is the naive baseline: jwx v2's jwt.Parse with the
// key and validation, the pattern most articles show.
func BenchmarkJWXParseVerify(b *testing.B) {
	f := newBenchFixture(b)
	opts := f.jwxOptions()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := jwt.Parse([]byte(f.tokens[i%benchTokenCount]), opts...); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// TestVerifyCostRatio measures the cold verification against one raw
// ed25519.Verify in the same run and fails above 1.3× (issue 4). It runs only
// with CALLSIGN_PERF=1: timing under -race or a loaded CI machine means little.
func TestVerifyCostRatio(t *testing.T) {
	if os.Getenv("CALLSIGN_PERF") != "1" {
		t.Skip("set CALLSIGN_PERF=1 to measure")
	}
	// The smallest of five interleaved measurements.
	ratio := 0.0
	for range 5 {
		r := testing.Benchmark(BenchmarkVerifyColdVsRaw)
		if x := r.Extra["x-raw"]; ratio == 0 || x < ratio {
			ratio = x
		}
	}
	t.Logf("cold Verify costs %.3f× a raw ed25519.Verify", ratio)
	if ratio > 1.3 {
		t.Errorf("cold verification costs %.3f× a raw ed25519.Verify, want ≤ 1.3×", ratio)
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)/2]
}

// BenchmarkSign is the issuer's cost per token, for both algorithms, with a
// Signer written as a literal (checked on every call).
func BenchmarkSign(b *testing.B) {
	for _, s := range []Signer{edKey, ecKey} {
		b.Run(string(s.Key.Algorithm), func(b *testing.B) {
			c := serviceClaims()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Sign(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
