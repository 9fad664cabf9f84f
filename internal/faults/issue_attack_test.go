package faults

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// TestIssueTokenAttacks sends hostile client assertions to a real callsignd:
// each is refused with Unauthenticated / CREDENTIAL_INVALID (one answer for
// every failure, so that nothing can be learnt from it; an assertion that is
// not even compact base64url is an invalid request), and neither the status
// nor callsignd's log holds the assertion or any piece of it.
func TestIssueTokenAttacks(t *testing.T) {
	d := startDaemon(t, t.TempDir(), "", "")
	cc := d.dial(t)
	auth := callsignv1.NewAuthServiceClient(cc)
	priv, kid := d.credential(t, callerAccount)
	otherPriv, otherKID := d.credential(t, "gateway")
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	enc := base64.RawURLEncoding
	sign := func(key ed25519.PrivateKey, header, payload string) string {
		msg := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(payload))
		return msg + "." + enc.EncodeToString(ed25519.Sign(key, []byte(msg)))
	}
	hdr := func(kid string) string { return `{"alg":"EdDSA","kid":"` + kid + `","typ":"JWT"}` }
	claims := func(iss, sub, aud string, iat, exp time.Time, jti string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":%q,"aud":%s,"iat":%d,"exp":%d,"jti":%q}`, iss, sub, aud, iat.Unix(), exp.Unix(), jti)
	}
	jti := func() string {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return enc.EncodeToString(b[:])
	}
	now := time.Now()
	aud := fmt.Sprintf("%q", d.info.Issuer)
	valid := func() string {
		return claims(callerAccount, callerAccount, aud, now, now.Add(30*time.Second), jti())
	}
	replayed, err := token.SignAssertion(priv, kid, callerAccount, d.info.Issuer, now, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	issue := func(a string) error {
		_, err := auth.IssueToken(ctx, &callsignv1.IssueTokenRequest{
			Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: a}, Audience: verifierAudience})
		return err
	}
	if err := issue(replayed); err != nil {
		t.Fatalf("the control assertion: %v", err)
	}
	svcTok, err := d.issue(ctx, t, cc, callerAccount, verifierAudience, 0)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		assertion string
		shape     bool // refused by request validation: InvalidArgument / REQUEST_INVALID
	}{
		{name: "replayed", assertion: replayed},
		{name: "alg-none", assertion: enc.EncodeToString([]byte(`{"alg":"none","kid":"`+kid+`"}`)) + "." + enc.EncodeToString([]byte(valid())) + "."},
		{name: "alg-hs256", assertion: sign(priv, `{"alg":"HS256","kid":"`+kid+`","typ":"JWT"}`, valid())},
		{name: "signed-by-another-account-under-its-kid", assertion: sign(otherPriv, hdr(otherKID), valid())},
		{name: "signed-by-another-account-under-the-callers-kid", assertion: sign(otherPriv, hdr(kid), valid())},
		{name: "signed-by-a-stranger", assertion: sign(stranger, hdr(kid), valid())},
		{name: "unknown-kid", assertion: sign(priv, hdr("no-such-kid"), valid())},
		{name: "iss-not-sub", assertion: sign(priv, hdr(kid), claims("gateway", callerAccount, aud, now, now.Add(30*time.Second), jti()))},
		{name: "sub-of-another-account", assertion: sign(priv, hdr(kid), claims("gateway", "gateway", aud, now, now.Add(30*time.Second), jti()))},
		{name: "aud-other-issuer", assertion: sign(priv, hdr(kid), claims(callerAccount, callerAccount, `"someone-else"`, now, now.Add(30*time.Second), jti()))},
		{name: "aud-two-audiences", assertion: sign(priv, hdr(kid), claims(callerAccount, callerAccount, `[`+aud+`,"x"]`, now, now.Add(30*time.Second), jti()))},
		{name: "exp-too-far-ahead", assertion: sign(priv, hdr(kid), claims(callerAccount, callerAccount, aud, now, now.Add(time.Hour), jti()))},
		{name: "expired", assertion: sign(priv, hdr(kid), claims(callerAccount, callerAccount, aud, now.Add(-5*time.Minute), now.Add(-4*time.Minute), jti()))},
		{name: "jti-too-short", assertion: sign(priv, hdr(kid), claims(callerAccount, callerAccount, aud, now, now.Add(30*time.Second), "abc"))},
		{name: "duplicate-sub", assertion: sign(priv, hdr(kid), strings.TrimSuffix(valid(), "}")+`,"sub":"gateway"}`)},
		{name: "embedded-jwk", assertion: sign(stranger, `{"alg":"EdDSA","kid":"`+kid+`","typ":"JWT","jwk":{"kty":"OKP","crv":"Ed25519","x":"`+
			enc.EncodeToString(stranger.Public().(ed25519.PublicKey))+`"}}`, valid())},
		{name: "service-token-as-assertion", assertion: svcTok.GetToken()},
		{name: "json-serialization", assertion: `{"payload":"` + strings.Split(replayed, ".")[1] + `","protected":"` + strings.Split(replayed, ".")[0] + `","signature":"` + strings.Split(replayed, ".")[2] + `"}`, shape: true},
		{name: "padded", assertion: replayed + "==", shape: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.out.String())
			err := issue(tc.assertion)
			st, _ := status.FromError(err)
			code, reason := codes.Unauthenticated, "CREDENTIAL_INVALID"
			if tc.shape {
				code, reason = codes.InvalidArgument, "REQUEST_INVALID"
			}
			if st.Code() != code || reasonOf(err) != reason {
				t.Fatalf("%v, want %v %s", err, code, reason)
			}
			text := st.Message() + fmt.Sprint(st.Details())
			log := d.out.String()[before:]
			for _, piece := range append(strings.Split(tc.assertion, "."), tc.assertion) {
				if len(piece) >= 12 && (strings.Contains(text, piece) || strings.Contains(log, piece)) {
					t.Fatalf("the assertion (%.20s…) is echoed or logged", piece)
				}
			}
		})
	}
}
