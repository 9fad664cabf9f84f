package interceptor

import (
	"crypto/ed25519"
	"errors"
	"time"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// AssertionLifetime is how long a private_key_jwt client assertion made by
// [PrivateKeyJWT] is valid. callsignd accepts at most 60 s; the margin absorbs
// clock skew.
const AssertionLifetime = 30 * time.Second

// maxSecretLength is the longest client secret callsignd accepts.
const maxSecretLength = 256

// Credential proves a service's identity to callsignd in IssueToken: a
// private_key_jwt client assertion ([PrivateKeyJWT]) or a client secret
// ([ClientSecret]). Its String method never shows the key or the secret.
type Credential interface {
	String() string
	applyCredential(req *callsignv1.IssueTokenRequest, now time.Time) error
}

// PrivateKeyJWT is the primary credential (RFC 7523): for every IssueToken
// call it signs a fresh, single-use client assertion with key under kid,
// naming accountID as iss and sub, addressed to issuer (callsignd's issuer
// id), valid for [AssertionLifetime]. callsignd holds only the public key.
func PrivateKeyJWT(accountID string, key ed25519.PrivateKey, kid, issuer string) Credential {
	return &privateKeyJWT{
		accountID: accountID,
		key:       append(ed25519.PrivateKey(nil), key...),
		kid:       kid,
		issuer:    issuer,
	}
}

type privateKeyJWT struct {
	accountID string
	key       ed25519.PrivateKey
	kid       string
	issuer    string
}

var errBadCredential = errors.New("interceptor: credential incomplete or key of the wrong size")

func (c *privateKeyJWT) applyCredential(req *callsignv1.IssueTokenRequest, now time.Time) error {
	if len(c.key) != ed25519.PrivateKeySize || c.accountID == "" || c.kid == "" || c.issuer == "" {
		return errBadCredential
	}
	a, err := token.SignAssertion(c.key, c.kid, c.accountID, c.issuer, now, AssertionLifetime)
	if err != nil {
		return errBadCredential
	}
	req.Credential = &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: a}
	return nil
}

func (c *privateKeyJWT) String() string {
	return "PrivateKeyJWT(" + c.accountID + ", kid " + c.kid + ")"
}
func (c *privateKeyJWT) GoString() string { return c.String() }

// ClientSecret is the simple credential: the account id and the secret that
// AdminService.RotateSecret returned.
func ClientSecret(accountID, secret string) Credential {
	return &clientSecret{accountID: accountID, secret: secret}
}

type clientSecret struct {
	accountID string
	secret    string
}

func (c *clientSecret) applyCredential(req *callsignv1.IssueTokenRequest, _ time.Time) error {
	if c.accountID == "" || c.secret == "" || len(c.secret) > maxSecretLength {
		return errBadCredential
	}
	req.Credential = &callsignv1.IssueTokenRequest_ClientSecret{
		ClientSecret: &callsignv1.ClientSecret{AccountId: c.accountID, Secret: c.secret},
	}
	return nil
}

func (c *clientSecret) String() string   { return "ClientSecret(" + c.accountID + ", [redacted])" }
func (c *clientSecret) GoString() string { return c.String() }
