package token

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"strconv"
)

// Sign encodes c as a compact JWS with the header {alg, kid, typ} and nothing
// else, where typ follows c.Type, and signs it with s.Private (Ed25519, or
// ES256 as raw r||s). The claims are written in this order: iss, sub, aud,
// exp, nbf (when set), iat, jti, scope (when there are scopes), tenant_id
// (when set), act and roles (user tokens); times as integer seconds,
// truncated.
//
// Sign refuses what [Parsed.Claims] would refuse for its shape, so that the
// issuer cannot mint a token its verifiers reject as malformed: c must satisfy
// the profile described there (Issuer and Audience are 1 to
// [MaxSubjectLength] bytes of text; user tokens need TenantID and Actor and
// carry no scopes; service tokens carry no Actor or Roles). It does not judge
// the lifetime, which the issuer's configuration bounds. s.Private must match
// s.Key. Errors have fixed texts.
func (s Signer) Sign(c Claims) (string, error) {
	typ := c.Type.String()
	if typ == "" {
		return "", errors.New("token: unknown token type")
	}
	if err := s.check(); err != nil {
		return "", err
	}
	if !validText(c.Issuer, MaxSubjectLength) || !validText(c.Audience, MaxSubjectLength) ||
		!validText(c.Subject, MaxSubjectLength) || !validID(c.ID) {
		return "", errors.New("token: invalid iss, aud, sub or jti")
	}
	exp, iat := c.Expiry.Unix(), c.IssuedAt.Unix()
	if c.Expiry.IsZero() || c.IssuedAt.IsZero() || iat < 1 || exp <= iat || exp > MaxNumericDate {
		return "", errors.New("token: invalid exp or iat")
	}
	var nbf int64
	if !c.NotBefore.IsZero() {
		if nbf = c.NotBefore.Unix(); nbf < 1 || nbf >= exp {
			return "", errors.New("token: invalid nbf")
		}
	}
	if len(c.Scopes) > MaxScopes {
		return "", errors.New("token: too many scopes")
	}
	for _, sc := range c.Scopes {
		if !validScope(sc) {
			return "", errors.New("token: invalid scope")
		}
	}
	if c.TenantID != "" && !validText(c.TenantID, MaxTextLength) {
		return "", errors.New("token: invalid tenant_id")
	}
	switch c.Type {
	case TypeService:
		if c.Actor != "" || len(c.Roles) > 0 {
			return "", errors.New("token: a service token carries no act or roles")
		}
	case TypeUser:
		if c.TenantID == "" || !validText(c.Actor, MaxSubjectLength) || len(c.Scopes) > 0 || len(c.Roles) > MaxRoles {
			return "", errors.New("token: a user token needs tenant_id and act, and carries no scope")
		}
		for _, r := range c.Roles {
			if !validText(r, MaxTextLength) {
				return "", errors.New("token: invalid role")
			}
		}
	}

	b := make([]byte, 0, 256+len(c.Issuer)+len(c.Subject)+len(c.Audience)+len(c.TenantID)+len(c.Actor)+
		(MaxScopeLength+1)*len(c.Scopes)+(MaxTextLength+3)*len(c.Roles))
	b = append(b, '{')
	b = appendStringMember(b, "iss", c.Issuer)
	b = appendStringMember(b, "sub", c.Subject)
	b = appendStringMember(b, "aud", c.Audience)
	b = appendIntMember(b, "exp", exp)
	if nbf != 0 {
		b = appendIntMember(b, "nbf", nbf)
	}
	b = appendIntMember(b, "iat", iat)
	b = appendStringMember(b, "jti", c.ID)
	if len(c.Scopes) > 0 {
		b = append(b, `"scope":"`...)
		for i, sc := range c.Scopes {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, sc...)
		}
		b = append(b, `",`...)
	}
	if c.TenantID != "" {
		b = appendStringMember(b, "tenant_id", c.TenantID)
	}
	if c.Type == TypeUser {
		b = append(b, `"act":{"sub":`...)
		b = appendJSONString(b, c.Actor)
		b = append(b, `},"roles":[`...)
		for i, r := range c.Roles {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, r)
		}
		b = append(b, "],"...)
	}
	b[len(b)-1] = '}'
	return signCompact(s.Private, s.Key.Algorithm, s.Key.ID, typ, b)
}

// NewSigner validates key fully, as a key set would (kid, algorithm, a public
// key of that algorithm: for Ed25519 a point of the curve not of small order,
// for P-256 a point on the curve), and that priv is its private half. Use it
// where keys are loaded; [Signer.Sign] itself repeats only the cheap checks.
func NewSigner(key Key, priv crypto.Signer) (*Signer, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	s := &Signer{Key: key, Private: priv}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// check is the per-token check of a signer, cheap next to a signature: a
// valid kid, a supported algorithm, a public key of that algorithm's type,
// and a private key whose public half equals it. (The curve arithmetic of
// checkKey is left to NewSigner and the key set loaders: a public key that
// equals the public half of the private key it signs with cannot be used to
// forge anything.)
func (s Signer) check() error {
	if !validKID(s.Key.ID) {
		return errSetKID
	}
	switch s.Key.Algorithm {
	case EdDSA:
		if pub, ok := s.Key.Public.(ed25519.PublicKey); !ok || len(pub) != ed25519.PublicKeySize {
			return errSetKeyType
		}
	case ES256:
		if pub, ok := s.Key.Public.(*ecdsa.PublicKey); !ok || pub == nil || pub.Curve != elliptic.P256() {
			return errSetKeyType
		}
	default:
		return errSetAlg
	}
	pub, ok := publicOf(s.Private).(interface{ Equal(x crypto.PublicKey) bool })
	if !ok || !pub.Equal(s.Key.Public) {
		return errors.New("token: private key does not match the signer's key")
	}
	return nil
}

// publicOf returns the public key of priv, or nil where asking would panic
// (nil signers, Ed25519 private keys of the wrong length).
func publicOf(priv crypto.Signer) crypto.PublicKey {
	switch k := priv.(type) {
	case nil:
		return nil
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil
		}
	case *ecdsa.PrivateKey:
		if k == nil {
			return nil
		}
	}
	return priv.Public()
}

// signCompact builds header.payload with the header {"alg","kid","typ"} and
// signs it. kid must be valid (it is written without escaping).
func signCompact(priv crypto.Signer, alg Algorithm, kid, typ string, claims []byte) (string, error) {
	hdr := make([]byte, 0, 40+len(kid))
	hdr = append(hdr, `{"alg":"`...)
	hdr = append(hdr, alg...)
	hdr = append(hdr, `","kid":"`...)
	hdr = append(hdr, kid...)
	hdr = append(hdr, `","typ":"`...)
	hdr = append(hdr, typ...)
	hdr = append(hdr, `"}`...)

	out := make([]byte, 0, b64.EncodedLen(len(hdr))+b64.EncodedLen(len(claims))+b64.EncodedLen(signatureSize)+2)
	out = b64.AppendEncode(out, hdr)
	out = append(out, '.')
	out = b64.AppendEncode(out, claims)
	sig, err := signBytes(priv, alg, out)
	if err != nil {
		return "", err
	}
	out = append(out, '.')
	out = b64.AppendEncode(out, sig)
	if len(out) > MaxTokenSize {
		return "", errors.New("token: token larger than the size limit")
	}
	return string(out), nil
}

// signBytes signs msg: Ed25519 over the message, or ES256 over its SHA-256,
// returned as raw r||s of 32 bytes each.
func signBytes(priv crypto.Signer, alg Algorithm, msg []byte) ([]byte, error) {
	switch alg {
	case EdDSA:
		sig, err := priv.Sign(nil, msg, crypto.Hash(0))
		if err != nil || len(sig) != ed25519.SignatureSize {
			return nil, errors.New("token: signing failed")
		}
		return sig, nil
	case ES256:
		digest := sha256.Sum256(msg)
		der, err := priv.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, errors.New("token: signing failed")
		}
		var rs struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &rs)
		if err != nil || len(rest) != 0 || rs.R.Sign() <= 0 || rs.S.Sign() <= 0 ||
			rs.R.Cmp(p256Order) >= 0 || rs.S.Cmp(p256Order) >= 0 {
			return nil, errors.New("token: signing failed")
		}
		sig := make([]byte, signatureSize)
		rs.R.FillBytes(sig[:32])
		rs.S.FillBytes(sig[32:])
		return sig, nil
	default:
		return nil, errors.New("token: unsupported algorithm")
	}
}

// NewID returns a fresh token id: 128 random bits, base64url without padding
// (22 characters).
func NewID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", errors.New("token: no randomness")
	}
	return b64.EncodeToString(b[:]), nil
}

// appendStringMember appends "name":"value", (with a trailing comma).
func appendStringMember(b []byte, name, value string) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	b = appendJSONString(b, value)
	return append(b, ',')
}

// appendIntMember appends "name":value, (with a trailing comma).
func appendIntMember(b []byte, name string, value int64) []byte {
	b = append(b, '"')
	b = append(b, name...)
	b = append(b, `":`...)
	b = strconv.AppendInt(b, value, 10)
	return append(b, ',')
}

// appendJSONString appends v as a JSON string. v is valid UTF-8 (checked by
// the callers); quotes, backslashes and control characters are escaped.
func appendJSONString(b []byte, v string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := range len(v) {
		c := v[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
