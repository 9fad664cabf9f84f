package attack

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/callsign-dev/callsign/internal/token"
)

// attack is one row of the catalogue: what is sent, where, and how the server
// must answer. Every row runs on a unary and on a streaming RPC.
type attack struct {
	name string
	on   target // default onScoped
	// md builds the request metadata.
	md func(k *kit) metadata.MD
	// raw sends the request through the raw HTTP/2 client, for values that
	// grpc-go's client refuses to send.
	raw bool
	// code and reason are the expected status; codes.OK for the controls
	// that must pass (the boundaries next to the attacks).
	code   codes.Code
	reason string
	// transport: the HTTP/2 transport refuses the request before any
	// interceptor runs, so there is no audit record and no ErrorInfo.
	transport bool
	// tenant is, for an allowed call, the tenant the handler must see.
	tenant string
}

const (
	unauth = codes.Unauthenticated
	denied = codes.PermissionDenied
)

// bearer sends the token made by f as the only authorization value.
func bearer(f func(k *kit) string) func(k *kit) metadata.MD {
	return func(k *kit) metadata.MD { return metadata.Pairs("authorization", "Bearer "+f(k)) }
}

// withUser sends a valid service token and the user token made by f.
func withUser(f func(k *kit) string) func(k *kit) metadata.MD {
	return func(k *kit) metadata.MD {
		return metadata.Pairs("authorization", "Bearer "+k.svcToken(), "x-user-token", f(k))
	}
}

// svc signs a service token whose claims are the valid ones changed by f.
func svc(f func(c claims) claims) func(k *kit) string {
	return func(k *kit) string { return k.sign(svcHeader, f(svcClaims("orders")).String()) }
}

// hdr signs the valid service claims under the header text h.
func hdr(h string) func(k *kit) string {
	return func(k *kit) string { return k.sign(h, svcClaims("orders").String()) }
}

// payload signs the payload text p under the valid header.
func payload(p string) func(k *kit) string {
	return func(k *kit) string { return k.sign(svcHeader, p) }
}

// mutate changes a valid service token's text.
func mutate(f func(tok string) string) func(k *kit) string {
	return func(k *kit) string { return f(k.svcToken()) }
}

func hmacToken(header string, key []byte) func(k *kit) string {
	return func(k *kit) string {
		msg := enc(header) + "." + enc(svcClaims("orders").String())
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return msg + "." + b64.EncodeToString(m.Sum(nil))
	}
}

// numericDate variants of one claim.
func dateRows(claim string) []attack {
	r := func(name, raw, reason string) attack {
		return attack{name: claim + "/" + name, md: bearer(svc(func(c claims) claims { return c.set(claim, raw) })), code: unauth, reason: reason}
	}
	rows := []attack{
		{name: claim + "/missing", md: bearer(svc(func(c claims) claims { return c.del(claim) })), code: unauth, reason: "TOKEN_MALFORMED"},
		r("string", `"`+num(t0)+`"`, "TOKEN_MALFORMED"),
		r("fractional", num(t0)+".5", "TOKEN_MALFORMED"),
		r("exponent", "1.7e9", "TOKEN_MALFORMED"),
		r("negative", "-1", "TOKEN_MALFORMED"),
		r("huge", "99999999999999999999", "TOKEN_MALFORMED"),
		r("beyond-year-9999", "253402300800", "TOKEN_MALFORMED"),
		r("null", "null", "TOKEN_MALFORMED"),
		r("array", "["+num(t0)+"]", "TOKEN_MALFORMED"),
		r("leading-zero", "0"+num(t0), "TOKEN_MALFORMED"),
	}
	switch claim {
	case "exp":
		rows = append(rows, r("zero", "0", "TOKEN_MALFORMED"))
	case "iat":
		rows = append(rows, r("zero", "0", "TOKEN_MALFORMED"))
	case "nbf":
		rows[0] = attack{name: "nbf/absent-is-allowed", md: bearer(svc(func(c claims) claims { return c.del("nbf") })), code: codes.OK}
		rows = append(rows, r("zero", "0", "TOKEN_MALFORMED"))
	}
	return rows
}

// catalogue is the list of attacks. The expected reasons are those of
// interceptor's documentation; where two answers would both be safe, the
// row pins the one the code gives, so that a change is noticed.
func catalogue() []attack {
	rows := []attack{
		// Controls: the unmodified tokens pass, so every refusal below is the
		// attack's doing.
		{name: "control/valid", md: bearer(func(k *kit) string { return k.svcToken() }), code: codes.OK},
		{name: "control/valid-user", on: onUser, md: withUser(func(k *kit) string { return k.userToken() }), code: codes.OK, tenant: "acme"},
		{name: "control/public-without-token", on: onPublic, md: func(*kit) metadata.MD { return metadata.MD{} }, code: codes.OK},
	}

	// Algorithm.
	for _, alg := range []string{"none", "None", "NONE", "nOnE", "none ", "", "EdDSA\u0000none"} {
		h := fmt.Sprintf(`{"alg":%q,"kid":"k1","typ":"svc+jwt"}`, alg)
		rows = append(rows,
			attack{name: fmt.Sprintf("alg/%q-unsigned", alg), md: bearer(func(*kit) string { return enc(h) + "." + enc(svcClaims("orders").String()) + "." }), code: unauth, reason: "TOKEN_MALFORMED"},
			attack{name: fmt.Sprintf("alg/%q-signed", alg), md: bearer(hdr(h)), code: unauth, reason: "TOKEN_MALFORMED"},
		)
	}
	for _, alg := range []string{"ES256", "RS256", "PS256", "HS256", "Ed25519", "eddsa", "EDDSA", " EdDSA"} {
		rows = append(rows, attack{name: fmt.Sprintf("alg/%q-valid-ed25519-signature", alg),
			md: bearer(hdr(fmt.Sprintf(`{"alg":%q,"kid":"k1","typ":"svc+jwt"}`, alg))), code: unauth, reason: "TOKEN_MALFORMED"})
	}
	rows = append(rows,
		attack{name: "alg/hs256-keyed-with-raw-public-key", md: func(k *kit) metadata.MD {
			return bearer(hmacToken(`{"alg":"HS256","kid":"k1","typ":"svc+jwt"}`, k.priv.Public().(ed25519.PublicKey)))(k)
		}, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "alg/hs256-keyed-with-jwks-text", md: func(k *kit) metadata.MD {
			return bearer(hmacToken(`{"alg":"HS256","kid":"k1","typ":"svc+jwt"}`, k.jwks))(k)
		}, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "alg/eddsa-header-hmac-signature", md: func(k *kit) metadata.MD {
			return bearer(hmacToken(svcHeader, k.priv.Public().(ed25519.PublicKey)))(k)
		}, code: unauth, reason: "SIGNATURE_INVALID"},
		attack{name: "alg/embedded-jwk-attacker-key", md: bearer(func(k *kit) string {
			pub := b64.EncodeToString(k.attacker.Public().(ed25519.PublicKey))
			h := `{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","jwk":{"kty":"OKP","crv":"Ed25519","x":"` + pub + `"}}`
			return signWith(k.attacker, h, svcClaims("orders").String())
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "alg/attacker-key-known-kid", md: bearer(func(k *kit) string {
			return signWith(k.attacker, svcHeader, svcClaims("orders").String())
		}), code: unauth, reason: "SIGNATURE_INVALID"},
		attack{name: "alg/attacker-key-unknown-kid", md: bearer(func(k *kit) string {
			return signWith(k.attacker, `{"alg":"EdDSA","kid":"attacker","typ":"svc+jwt"}`, svcClaims("orders").String())
		}), code: unauth, reason: "KEY_UNKNOWN"},
	)
	for _, m := range []string{"jku", "x5u"} {
		rows = append(rows, attack{name: "alg/" + m + "-loopback-url", md: bearer(func(k *kit) string {
			h := `{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","` + m + `":"` + k.fetchURL + `"}`
			return signWith(k.attacker, h, svcClaims("orders").String())
		}), code: unauth, reason: "TOKEN_MALFORMED"})
	}
	rows = append(rows,
		attack{name: "alg/x5c-chain", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","x5c":["MIIBszCCAVmgAwIBAgIUY2FsbHNpZ24tYXR0YWNr"]}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "alg/kid-path-traversal", md: bearer(hdr(`{"alg":"EdDSA","kid":"../../k1","typ":"svc+jwt"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "alg/kid-too-long", md: bearer(hdr(`{"alg":"EdDSA","kid":"` + strings.Repeat("k", token.MaxKIDLength+1) + `","typ":"svc+jwt"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "alg/kid-empty", md: bearer(hdr(`{"alg":"EdDSA","kid":"","typ":"svc+jwt"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		// Key-use confusion.
		attack{name: "use/user-token-as-service-token", md: bearer(func(k *kit) string { return k.userToken() }), code: unauth, reason: "TYPE_MISMATCH"},
		attack{name: "use/service-claims-under-user-typ", md: bearer(func(k *kit) string { return k.sign(userHeader, svcClaims("orders").String()) }), code: unauth, reason: "TYPE_MISMATCH"},
		attack{name: "use/user-claims-under-service-typ", md: bearer(func(k *kit) string { return k.sign(svcHeader, userClaims("alice", "acme").String()) }), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "use/client-assertion-as-bearer", md: bearer(func(k *kit) string {
			a, err := token.SignAssertion(k.priv, "k1", "orders", audience, t0, 30*time.Second)
			if err != nil {
				panic(err)
			}
			return a
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "use/typ-jwt", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"JWT"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "use/typ-missing", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "use/service-token-as-user-token", on: onUser, md: withUser(func(k *kit) string { return k.svcToken() }), code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "use/service-token-for-the-issuer-audience", md: bearer(svc(func(c claims) claims { return c.set("aud", `"`+issuer+`"`) })), code: unauth, reason: "AUDIENCE_MISMATCH"},
	)

	// Serialization and encoding.
	rows = append(rows,
		attack{name: "ser/json-general", md: bearer(func(k *kit) string {
			p := strings.Split(k.svcToken(), ".")
			return `{"payload":"` + p[1] + `","signatures":[{"protected":"` + p[0] + `","signature":"` + p[2] + `"}]}`
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/json-flattened-extra-members", md: bearer(func(k *kit) string {
			p := strings.Split(k.svcToken(), ".")
			return `{"payload":"` + p[1] + `","protected":"` + p[0] + `","header":{"kid":"k1"},"signature":"` + p[2] + `","extra":1}`
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/padding-signature", md: bearer(mutate(func(s string) string { return s + "==" })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/padding-header", md: bearer(mutate(func(s string) string { return strings.Replace(s, ".", "=.", 1) })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/standard-alphabet", md: bearer(func(k *kit) string {
			for {
				s := k.svcToken()
				if strings.ContainsAny(s, "-_") {
					return strings.NewReplacer("-", "+", "_", "/").Replace(s)
				}
			}
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/space-inside", md: bearer(mutate(func(s string) string { return s[:10] + " " + s[10:] })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/trailing-space", md: bearer(mutate(func(s string) string { return s + " " })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/tab-inside", raw: true, md: bearer(mutate(func(s string) string { return s[:10] + "\t" + s[10:] })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/newline-inside", raw: true, md: bearer(mutate(func(s string) string { return s[:10] + "\n" + s[10:] })), transport: true},
		attack{name: "ser/nul-inside", raw: true, md: bearer(mutate(func(s string) string { return s[:10] + "\x00" + s[10:] })), transport: true},
		attack{name: "ser/whitespace-in-header-json", md: bearer(hdr(`{ "alg" : "EdDSA" , "kid":"k1","typ":"svc+jwt" }`)), code: codes.OK},
		attack{name: "ser/non-canonical-signature-bits", md: bearer(mutate(func(s string) string {
			// The last character of a 64-byte signature carries 4 bits and 2
			// unused ones; setting an unused bit keeps the decoded bytes.
			i := len(s) - 1
			return s[:i] + string(flipUnused(s[i]))
		})), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/non-canonical-header-bits", md: bearer(func(k *kit) string {
			// A header whose length leaves unused bits in its last character.
			h := enc(`{"alg":"EdDSA","kid":"k1", "typ":"svc+jwt"}`)
			if len(h)%4 == 0 {
				panic("header has no spare bits")
			}
			h = h[:len(h)-1] + string(flipUnused(h[len(h)-1]))
			return k.signSegments(h, enc(svcClaims("orders").String()))
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/four-segments", md: bearer(mutate(func(s string) string { return s + ".AAAA" })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/five-segments-jwe-shape", md: bearer(mutate(func(s string) string { return s + ".AAAA.BBBB" })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/two-segments", md: bearer(mutate(func(s string) string { return s[:strings.LastIndexByte(s, '.')] })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/one-segment", md: bearer(mutate(func(s string) string { return s[:strings.IndexByte(s, '.')] })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/empty-payload-segment", md: bearer(mutate(func(s string) string {
			p := strings.Split(s, ".")
			return p[0] + ".." + p[2]
		})), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/detached-payload", md: bearer(func(k *kit) string {
			p := strings.Split(k.svcToken(), ".")
			return p[0] + ".." + p[2]
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/nested-token-as-payload", md: bearer(func(k *kit) string { return k.sign(svcHeader, `"`+k.svcToken()+`"`) }), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/nested-token-cty-jwt", md: bearer(func(k *kit) string {
			return k.sign(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","cty":"JWT"}`, `"`+k.svcToken()+`"`)
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/nested-raw-payload", md: bearer(func(k *kit) string { return k.signSegments(enc(svcHeader), k.svcToken()) }), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/crit-exp", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","crit":["exp"],"exp":1}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/crit-empty", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","crit":[]}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/b64-false", md: bearer(func(k *kit) string {
			h := enc(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","b64":false,"crit":["b64"]}`)
			return k.signSegments(h, "eyJ")
		}), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/zip-def", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","zip":"DEF"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/unknown-header-member", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","x-debug":true}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/duplicate-alg-none-last", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","alg":"none"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/duplicate-alg-none-first", md: bearer(hdr(`{"alg":"none","alg":"EdDSA","kid":"k1","typ":"svc+jwt"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/duplicate-kid", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","kid":"k2","typ":"svc+jwt"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		// An escaped member name is the same name: the header is the valid one.
		attack{name: "ser/escaped-member-name-is-the-name", md: bearer(hdr(`{"\u0061lg":"EdDSA","kid":"k1","typ":"svc+jwt"}`)), code: codes.OK},
		attack{name: "ser/duplicate-alg-via-escape", md: bearer(hdr(`{"alg":"EdDSA","kid":"k1","typ":"svc+jwt","\u0061lg":"none"}`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/header-array", md: bearer(hdr(`[{"alg":"EdDSA","kid":"k1","typ":"svc+jwt"}]`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/header-trailing-garbage", md: bearer(hdr(svcHeader + `x`)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/header-bom", md: bearer(hdr("\ufeff" + svcHeader)), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/payload-trailing-garbage", md: bearer(func(k *kit) string { return k.sign(svcHeader, svcClaims("orders").String()+"{}") }), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/payload-invalid-utf8", md: bearer(svc(func(c claims) claims { return c.set("sub", "\"ord\xffers\"") })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/signature-truncated", md: bearer(mutate(func(s string) string { return s[:len(s)-4] })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "ser/signature-of-other-token", md: bearer(func(k *kit) string {
			a, b := strings.Split(k.svcToken(), "."), strings.Split(k.svcToken(), ".")
			return a[0] + "." + a[1] + "." + b[2]
		}), code: unauth, reason: "SIGNATURE_INVALID"},
	)

	// Claims.
	for _, c := range []string{"exp", "iat", "nbf"} {
		rows = append(rows, dateRows(c)...)
	}
	lifetime := func(d time.Duration) func(c claims) claims {
		return func(c claims) claims { return c.set("exp", num(t0.Add(d))) }
	}
	rows = append(rows,
		attack{name: "claims/lifetime-at-max", md: bearer(svc(lifetime(15 * time.Minute))), code: codes.OK},
		attack{name: "claims/lifetime-max-plus-1s", md: bearer(svc(lifetime(15*time.Minute + time.Second))), code: unauth, reason: "LIFETIME_TOO_LONG"},
		attack{name: "claims/lifetime-a-year", md: bearer(svc(lifetime(365 * 24 * time.Hour))), code: unauth, reason: "LIFETIME_TOO_LONG"},
		attack{name: "claims/exp-before-iat", md: bearer(svc(func(c claims) claims { return c.set("iat", num(t0)).set("exp", num(t0.Add(-time.Second))) })), code: unauth, reason: "TOKEN_MALFORMED"},
		// Skew boundaries (skew 30 s): exp must be after now-skew; iat and nbf at most now+skew.
		attack{name: "skew/exp-at-now-minus-skew", md: bearer(svc(func(c claims) claims {
			return c.set("iat", num(t0.Add(-5*time.Minute))).set("exp", num(t0.Add(-skew)))
		})), code: unauth, reason: "TOKEN_EXPIRED"},
		attack{name: "skew/exp-at-now-minus-skew-plus-1s", md: bearer(svc(func(c claims) claims {
			return c.set("iat", num(t0.Add(-5*time.Minute))).set("exp", num(t0.Add(-skew+time.Second)))
		})), code: codes.OK},
		attack{name: "skew/iat-at-now-plus-skew", md: bearer(svc(func(c claims) claims { return c.set("iat", num(t0.Add(skew))) })), code: codes.OK},
		attack{name: "skew/iat-at-now-plus-skew-plus-1s", md: bearer(svc(func(c claims) claims { return c.set("iat", num(t0.Add(skew+time.Second))) })), code: unauth, reason: "TOKEN_NOT_YET_VALID"},
		attack{name: "skew/nbf-at-now-plus-skew", md: bearer(svc(func(c claims) claims { return c.set("nbf", num(t0.Add(skew))) })), code: codes.OK},
		attack{name: "skew/nbf-at-now-plus-skew-plus-1s", md: bearer(svc(func(c claims) claims { return c.set("nbf", num(t0.Add(skew+time.Second))) })), code: unauth, reason: "TOKEN_NOT_YET_VALID"},
		// Duplicates and shapes.
		attack{name: "claims/duplicate-aud", md: bearer(svc(func(c claims) claims { return c.add("aud", `"billing"`) })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "claims/duplicate-exp", md: bearer(svc(func(c claims) claims { return c.add("exp", num(t0.Add(time.Hour))) })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "claims/duplicate-sub", md: bearer(svc(func(c claims) claims { return c.add("sub", `"billing"`) })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "claims/duplicate-scope", md: bearer(svc(func(c claims) claims { return c.add("scope", `"test.read test.write"`) })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "claims/duplicate-via-escape", md: bearer(svc(func(c claims) claims { return c.add(`\u0061ud`, `"billing"`) })), code: unauth, reason: "TOKEN_MALFORMED"},
	)
	for _, p := range []string{`[]`, `"claims"`, `42`, `null`, `true`, ``, `{`, `{}`} {
		rows = append(rows, attack{name: fmt.Sprintf("claims/payload-%q", p), md: bearer(payload(p)), code: unauth, reason: "TOKEN_MALFORMED"})
	}
	rows = append(rows,
		attack{name: "claims/deep-nesting-array", md: bearer(svc(func(c claims) claims {
			return c.add("x", strings.Repeat("[", 2000)+strings.Repeat("]", 2000))
		})), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "claims/deep-nesting-object", md: bearer(svc(func(c claims) claims {
			return c.add("x", strings.Repeat(`{"a":`, 800)+"1"+strings.Repeat("}", 800))
		})), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "claims/unknown-claim-allowed", md: bearer(svc(func(c claims) claims { return c.add("x-extra", `{"a":[1,2]}`) })), code: codes.OK},
	)
	audRow := func(name, raw, reason string) attack {
		return attack{name: "aud/" + name, md: bearer(svc(func(c claims) claims { return c.set("aud", raw) })), code: unauth, reason: reason}
	}
	rows = append(rows,
		audRow("array-of-one", `["test"]`, "TOKEN_MALFORMED"),
		audRow("array-several", `["test","billing"]`, "TOKEN_MALFORMED"),
		audRow("array-empty", `[]`, "TOKEN_MALFORMED"),
		audRow("upper-case", `"TEST"`, "AUDIENCE_MISMATCH"),
		audRow("leading-space", `" test"`, "AUDIENCE_MISMATCH"),
		audRow("trailing-space", `"test "`, "AUDIENCE_MISMATCH"),
		audRow("space-separated-several", `"test billing"`, "AUDIENCE_MISMATCH"),
		audRow("empty", `""`, "AUDIENCE_MISMATCH"),
		audRow("escaped-nul", `"test\u0000"`, "AUDIENCE_MISMATCH"),
		audRow("number", `1`, "TOKEN_MALFORMED"),
		audRow("other-service", `"billing"`, "AUDIENCE_MISMATCH"),
		attack{name: "aud/missing", md: bearer(svc(func(c claims) claims { return c.del("aud") })), code: unauth, reason: "TOKEN_MALFORMED"},
	)
	issRow := func(name, raw, reason string) attack {
		return attack{name: "iss/" + name, md: bearer(svc(func(c claims) claims { return c.set("iss", raw) })), code: unauth, reason: reason}
	}
	rows = append(rows,
		issRow("upper-case", `"CALLSIGN-ATTACK"`, "ISSUER_MISMATCH"),
		issRow("trailing-slash", `"`+issuer+`/"`, "ISSUER_MISMATCH"),
		issRow("url-form", `"https://`+issuer+`"`, "ISSUER_MISMATCH"),
		issRow("empty", `""`, "ISSUER_MISMATCH"),
		issRow("array", `["`+issuer+`"]`, "TOKEN_MALFORMED"),
		issRow("prefix", `"`+issuer+`x"`, "ISSUER_MISMATCH"),
		attack{name: "iss/missing", md: bearer(svc(func(c claims) claims { return c.del("iss") })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "sub/missing", md: bearer(svc(func(c claims) claims { return c.del("sub") })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "sub/empty", md: bearer(svc(func(c claims) claims { return c.set("sub", `""`) })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "jti/missing", md: bearer(svc(func(c claims) claims { return c.del("jti") })), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "jti/too-short", md: bearer(svc(func(c claims) claims { return c.set("jti", `"abc"`) })), code: unauth, reason: "TOKEN_MALFORMED"},
	)
	scopeRow := func(name, raw string, code codes.Code, reason string) attack {
		return attack{name: "scope/" + name, md: bearer(svc(func(c claims) claims { return c.set("scope", raw) })), code: code, reason: reason}
	}
	rows = append(rows,
		scopeRow("array", `["test.read"]`, unauth, "TOKEN_MALFORMED"),
		scopeRow("double-space", `"test.write  test.read"`, unauth, "TOKEN_MALFORMED"),
		scopeRow("leading-space", `" test.read"`, unauth, "TOKEN_MALFORMED"),
		scopeRow("tab-separated", `"test.write\ttest.read"`, unauth, "TOKEN_MALFORMED"),
		scopeRow("upper-case", `"TEST.READ"`, denied, "SCOPE_MISSING"),
		scopeRow("prefix", `"test.readx"`, denied, "SCOPE_MISSING"),
		scopeRow("wildcard", `"test.*"`, unauth, "TOKEN_MALFORMED"),
		scopeRow("empty", `""`, unauth, "TOKEN_MALFORMED"),
		scopeRow("number", `1`, unauth, "TOKEN_MALFORMED"),
		scopeRow("too-many", `"`+strings.TrimSpace(strings.Repeat("a.b ", token.MaxScopes))+` test.read"`, unauth, "TOKEN_MALFORMED"),
		scopeRow("several-with-the-right-one", `"test.write test.read"`, codes.OK, ""),
		attack{name: "scope/missing", md: bearer(svc(func(c claims) claims { return c.del("scope") })), code: denied, reason: "SCOPE_MISSING"},
		attack{name: "scope/scp-alias", md: bearer(svc(func(c claims) claims { return c.del("scope").add("scp", `"test.read"`) })), code: denied, reason: "SCOPE_MISSING"},
	)

	// Replay and context.
	rows = append(rows,
		attack{name: "replay/revoked-jti", md: bearer(svc(func(c claims) claims { return c.set("jti", `"`+revokedJTI+`"`) })), code: unauth, reason: "TOKEN_REVOKED"},
		attack{name: "replay/revoked-jti-re-encoded", md: bearer(func(k *kit) string {
			// The same claims in another order and spacing, signed again: a
			// different token text with the revoked jti.
			c := svcClaims("orders").set("jti", `"`+revokedJTI+`"`)
			var b strings.Builder
			b.WriteString("{ ")
			for i, m := range slices.Backward(c) {
				fmt.Fprintf(&b, "%q : %s", m[0], m[1])
				if i > 0 {
					b.WriteString(" ,\n")
				}
			}
			b.WriteString(" }")
			return k.sign(svcHeader, b.String())
		}), code: unauth, reason: "TOKEN_REVOKED"},
		attack{name: "replay/revoked-jti-escaped", md: bearer(svc(func(c claims) claims {
			return c.set("jti", `"\u0072evoked-jti-AAAAAAAAAAAAAAAAAAAAAA"`)
		})), code: unauth, reason: "TOKEN_REVOKED"},
		attack{name: "replay/issued-before-account-revocation", md: bearer(func(k *kit) string {
			return k.sign(svcHeader, svcClaims(rotatedAccount).set("iat", num(t0.Add(-2*time.Second))).String())
		}), code: unauth, reason: "TOKEN_REVOKED"},
		attack{name: "replay/disabled-account", md: bearer(func(k *kit) string { return k.sign(svcHeader, svcClaims(disabledAccount).String()) }), code: unauth, reason: "ACCOUNT_DISABLED"},
		attack{name: "replay/user-of-disabled-actor-account", on: onUser, md: withUser(func(k *kit) string {
			return k.sign(userHeader, userClaims("alice", "acme").set("act", `{"sub":"`+disabledAccount+`"}`).String())
		}), code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "replay/other-audience", md: bearer(svc(func(c claims) claims { return c.set("aud", `"billing"`) })), code: unauth, reason: "AUDIENCE_MISMATCH"},
		// A tenant in plain metadata is ignored: the handler sees the
		// verified one, and without a verified tenant the call is refused.
		attack{name: "context/tenant-in-metadata-ignored", on: onTenant, md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer "+k.svcToken(), "x-user-token", k.userToken(),
				"x-tenant-id", "globex", "tenant_id", "globex", "tenant-id", "globex")
		}, code: codes.OK, tenant: "acme"},
		attack{name: "context/tenant-in-metadata-without-user", on: onTenant, md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer "+k.svcToken(), "x-tenant-id", "acme", "tenant_id", "acme")
		}, code: unauth, reason: "USER_TOKEN_MISSING"},
		attack{name: "context/user-token-without-tenant", on: onTenant, md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer "+k.svcToken(),
				"x-user-token", k.sign(userHeader, userClaims("alice", "").String()), "x-tenant-id", "acme")
		}, code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "context/tenant-claims-disagree", on: onTenant, md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer "+k.sign(svcHeader, svcClaims("orders").set("tenant_id", `"acme"`).String()),
				"x-user-token", k.sign(userHeader, userClaims("alice", "globex").String()))
		}, code: denied, reason: "TENANT_MISMATCH"},
		attack{name: "context/user-token-expired", on: onUser, md: withUser(func(k *kit) string {
			c := userClaims("alice", "acme").set("iat", num(t0.Add(-10*time.Minute))).set("exp", num(t0.Add(-time.Minute)))
			return k.sign(userHeader, c.String())
		}), code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "context/user-token-missing", on: onUser, md: bearer(func(k *kit) string { return k.svcToken() }), code: unauth, reason: "USER_TOKEN_MISSING"},
		attack{name: "context/user-token-other-trust-domain", on: onUser, md: withUser(func(k *kit) string {
			return k.sign(userHeader, userClaims("alice", "acme").set("aud", `"other-domain"`).String())
		}), code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "context/user-token-attacker-signed", on: onUser, md: withUser(func(k *kit) string {
			return signWith(k.attacker, userHeader, userClaims("root", "acme").String())
		}), code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "context/user-token-revoked", on: onUser, md: withUser(func(k *kit) string {
			return k.sign(userHeader, userClaims("alice", "acme").set("jti", `"`+revokedJTI+`"`).String())
		}), code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "context/tokens-swapped", on: onUser, md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer "+k.userToken(), "x-user-token", k.svcToken())
		}, code: unauth, reason: "TYPE_MISMATCH"},
		attack{name: "context/two-user-tokens", on: onUser, md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer "+k.svcToken(), "x-user-token", k.userToken(), "x-user-token", k.userToken())
		}, code: unauth, reason: "USER_TOKEN_INVALID"},
		attack{name: "context/user-token-with-bearer-prefix", on: onUser, md: withUser(func(k *kit) string { return "Bearer " + k.userToken() }), code: unauth, reason: "USER_TOKEN_INVALID"},
	)

	// Metadata.
	auth := func(name string, raw bool, f func(tok string) []string, reason string) attack {
		return attack{name: "md/" + name, raw: raw, md: func(k *kit) metadata.MD {
			md := metadata.MD{}
			for _, v := range f(k.svcToken()) {
				md.Append("authorization", v)
			}
			return md
		}, code: unauth, reason: reason}
	}
	rows = append(rows,
		auth("two-values-both-valid", false, func(t string) []string { return []string{"Bearer " + t, "Bearer " + t} }, "TOKEN_MALFORMED"),
		auth("two-values-one-empty", false, func(t string) []string { return []string{"Bearer " + t, ""} }, "TOKEN_MALFORMED"),
		auth("comma-joined", false, func(t string) []string { return []string{"Bearer " + t + ", Bearer " + t} }, "TOKEN_MALFORMED"),
		auth("scheme-lower", false, func(t string) []string { return []string{"bearer " + t} }, ""),
		auth("scheme-upper", false, func(t string) []string { return []string{"BEARER " + t} }, ""),
		auth("two-spaces", false, func(t string) []string { return []string{"Bearer  " + t} }, "TOKEN_MALFORMED"),
		auth("no-space", false, func(t string) []string { return []string{"Bearer" + t} }, "TOKEN_MALFORMED"),
		auth("tab", true, func(t string) []string { return []string{"Bearer\t" + t} }, "TOKEN_MALFORMED"),
		auth("leading-space", false, func(t string) []string { return []string{" Bearer " + t} }, "TOKEN_MALFORMED"),
		auth("scheme-basic", false, func(t string) []string { return []string{"Basic " + t} }, "TOKEN_MALFORMED"),
		auth("scheme-dpop", false, func(t string) []string { return []string{"DPoP " + t} }, "TOKEN_MALFORMED"),
		auth("scheme-only", false, func(string) []string { return []string{"Bearer"} }, "TOKEN_MALFORMED"),
		auth("scheme-and-space-only", false, func(string) []string { return []string{"Bearer "} }, "TOKEN_MALFORMED"),
		auth("token-without-scheme", false, func(t string) []string { return []string{t} }, "TOKEN_MALFORMED"),
		auth("empty-value", false, func(string) []string { return []string{""} }, "TOKEN_MALFORMED"),
		auth("non-ascii-in-token", true, func(t string) []string { return []string{"Bearer " + t[:12] + "é" + t[12:]} }, "TOKEN_MALFORMED"),
		auth("non-ascii-scheme", true, func(t string) []string { return []string{"Beärer " + t} }, "TOKEN_MALFORMED"),
		auth("latin1-byte", true, func(t string) []string { return []string{"Bearer " + t + "\xff"} }, "TOKEN_MALFORMED"),
		auth("oversized-token", false, func(t string) []string { return []string{"Bearer " + t + strings.Repeat("A", token.MaxTokenSize)} }, "TOKEN_MALFORMED"),
		auth("oversized-by-one", false, func(t string) []string {
			return []string{"Bearer " + t[:strings.LastIndexByte(t, '.')+1] + strings.Repeat("A", token.MaxTokenSize-strings.LastIndexByte(t, '.'))}
		}, "TOKEN_MALFORMED"),
		attack{name: "md/header-list-over-64KiB", raw: true, md: func(k *kit) metadata.MD {
			md := metadata.Pairs("authorization", "Bearer "+k.svcToken())
			for i := range 9 {
				md.Append(fmt.Sprintf("x-pad-%d", i), strings.Repeat("p", 8<<10))
			}
			return md
		}, transport: true},
		attack{name: "md/header-list-under-64KiB", md: func(k *kit) metadata.MD {
			md := metadata.Pairs("authorization", "Bearer "+k.svcToken())
			for i := range 6 {
				md.Append(fmt.Sprintf("x-pad-%d", i), strings.Repeat("p", 8<<10))
			}
			return md
		}, code: codes.OK},
		attack{name: "md/authorization-binary-suffix", md: func(k *kit) metadata.MD {
			return metadata.Pairs("authorization-bin", "Bearer "+k.svcToken())
		}, code: unauth, reason: "TOKEN_MISSING"},
		// Request metadata that is logged only when it is a safe id: hostile
		// values next to a refused token must not reach the log or the record.
		attack{name: "md/oversized-correlation-id", md: func(*kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer not.a.token", "x-correlation-id", "corr-"+strings.Repeat("c", 200))
		}, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "md/correlation-id-non-ascii", raw: true, md: func(*kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer not.a.token", "x-correlation-id", "corr-\u00e9t\u00e9-marker-0001")
		}, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "md/request-id-with-spaces", md: func(*kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer not.a.token", "x-request-id", "req id with spaces marker")
		}, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "md/traceparent-malformed", md: func(*kit) metadata.MD {
			return metadata.Pairs("authorization", "Bearer not.a.token", "traceparent", "00-"+strings.Repeat("Z", 32)+"-"+strings.Repeat("1", 16)+"-01")
		}, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "public/invalid-token", on: onPublic, md: bearer(func(*kit) string { return "not.a.token" }), code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "public/forged-token", on: onPublic, md: bearer(func(k *kit) string { return signWith(k.attacker, svcHeader, svcClaims("orders").String()) }), code: unauth, reason: "SIGNATURE_INVALID"},
		attack{name: "public/expired-token", on: onPublic, md: bearer(svc(func(c claims) claims {
			return c.set("iat", num(t0.Add(-10*time.Minute))).set("exp", num(t0.Add(-5*time.Minute)))
		})), code: unauth, reason: "TOKEN_EXPIRED"},
		attack{name: "public/malformed-scheme", on: onPublic, md: func(*kit) metadata.MD { return metadata.Pairs("authorization", "Basic dXNlcjpwYXNz") }, code: unauth, reason: "TOKEN_MALFORMED"},
		attack{name: "public/invalid-user-token", on: onPublic, md: func(*kit) metadata.MD { return metadata.Pairs("x-user-token", "not.a.token") }, code: unauth, reason: "USER_TOKEN_INVALID"},
	)
	// The scheme in any case is accepted: those two are controls.
	for i := range rows {
		if rows[i].name == "md/scheme-lower" || rows[i].name == "md/scheme-upper" {
			rows[i].code = codes.OK
		}
	}
	return rows
}

// flipUnused returns the base64url character that decodes to the same last
// bits as c, with its lowest (unused) bit flipped.
func flipUnused(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return alphabet[i^1]
}
