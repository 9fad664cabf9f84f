package token

import (
	"crypto"
	"crypto/ed25519"
	"errors"
	"time"
)

// AssertionClaims checks the claims of a client assertion (RFC 7523 §3), in
// this order:
//
//  1. Shape, all REASON_TOKEN_MALFORMED: p came from [ParseAssertion]; the
//     payload is strict JSON as for [Parsed.Claims]; iss, sub, aud, exp, iat
//     and jti are present (iat is required here although RFC 7523 makes it
//     optional: callsign's clients always send it); sub is 1 to
//     [MaxSubjectLength] bytes of text; jti is 16 to 128 characters of
//     [A-Za-z0-9_-]; exp, iat and nbf (optional) are integer NumericDates;
//     exp is after iat and nbf; aud is a string, or an array of exactly one
//     string (RFC 7523 allows an array and some clients always send one; with
//     a single element it means the same as the string; an empty array or
//     one of several audiences is malformed, as an assertion addressed to
//     several parties could be replayed to each of them).
//  2. iss equals sub, else REASON_ISSUER_MISMATCH.
//  3. aud equals audience exactly (an empty audience matches nothing), else
//     REASON_AUDIENCE_MISMATCH.
//  4. exp ≤ now+maxAhead, else REASON_LIFETIME_TOO_LONG.
//  5. iat ≤ now+skew and nbf ≤ now+skew, else REASON_TOKEN_NOT_YET_VALID.
//  6. now-skew < exp, else REASON_TOKEN_EXPIRED.
//
// Skew defaults to [DefaultSkew] and maxAhead to [DefaultAssertionMaxAhead]
// when zero or negative. AssertionClaims does not verify the signature and may
// be called before [Parsed.VerifySignature] to learn which account's key to
// verify with; nothing it returns is trustworthy until the signature verified
// with that account's key. The jti must then be recorded as used until exp.
func (p *Parsed) AssertionClaims(audience string, now time.Time, skew, maxAhead time.Duration) (AssertionClaims, error) {
	if p == nil || p.Type != 0 || p.alg != EdDSA {
		return AssertionClaims{}, fail(reasonMalformed)
	}
	var c rawClaims
	if !c.parse(p.payload, true) || c.has&clRequired != clRequired ||
		!validText(c.sub, MaxSubjectLength) || !validID(c.jti) ||
		c.exp <= c.iat || (c.has&clNbf != 0 && c.exp <= c.nbf) {
		return AssertionClaims{}, fail(reasonMalformed)
	}
	if string(c.iss) != string(c.sub) {
		return AssertionClaims{}, fail(reasonIssuer)
	}
	if audience == "" || string(c.aud) != audience {
		return AssertionClaims{}, fail(reasonAudience)
	}
	skew = defaulted(skew, DefaultSkew)
	if unix(c.exp).After(now.Add(defaulted(maxAhead, DefaultAssertionMaxAhead))) {
		return AssertionClaims{}, fail(reasonLifetime)
	}
	late := now.Add(skew)
	if unix(c.iat).After(late) || (c.has&clNbf != 0 && unix(c.nbf).After(late)) {
		return AssertionClaims{}, fail(reasonNotYetValid)
	}
	if !unix(c.exp).After(now.Add(-skew)) {
		return AssertionClaims{}, fail(reasonExpired)
	}
	return AssertionClaims{
		Subject:  string(c.sub),
		Audience: audience,
		ID:       string(c.jti),
		Expiry:   unix(c.exp),
		IssuedAt: unix(c.iat),
	}, nil
}

// SignAssertion creates a private_key_jwt client assertion for accountID,
// addressed to audience (callsignd's issuer id), valid for ttl from now, with a
// fresh jti, signed with priv under kid. priv must be an Ed25519 key; the
// header is {"alg":"EdDSA","kid":kid,"typ":"JWT"}, the claims iss = sub =
// accountID, aud, exp, iat and jti.
func SignAssertion(priv crypto.Signer, kid, accountID, audience string, now time.Time, ttl time.Duration) (string, error) {
	pub, ok := publicOf(priv).(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return "", errors.New("token: assertion needs an Ed25519 private key")
	}
	if !validKID(kid) {
		return "", errors.New("token: invalid kid")
	}
	if !validText(accountID, MaxSubjectLength) || !validText(audience, MaxSubjectLength) {
		return "", errors.New("token: invalid account id or audience")
	}
	if ttl < time.Second {
		return "", errors.New("token: assertion lifetime below one second")
	}
	iat, exp := now.Unix(), now.Add(ttl).Unix()
	if iat <= 0 || exp > MaxNumericDate {
		return "", errors.New("token: assertion time out of range")
	}
	jti, err := NewID()
	if err != nil {
		return "", err
	}
	claims := make([]byte, 0, 128+2*len(accountID)+len(audience))
	claims = append(claims, '{')
	claims = appendStringMember(claims, "iss", accountID)
	claims = appendStringMember(claims, "sub", accountID)
	claims = appendStringMember(claims, "aud", audience)
	claims = appendIntMember(claims, "exp", exp)
	claims = appendIntMember(claims, "iat", iat)
	claims = appendStringMember(claims, "jti", jti)
	claims[len(claims)-1] = '}'
	return signCompact(priv, EdDSA, kid, typAssertion, claims)
}
