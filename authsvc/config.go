package authsvc

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/callsign-dev/callsign/internal/token"
)

// Defaults of DESIGN.md §9.
const (
	DefaultIssuer           = "callsign"
	DefaultTokenLifetime    = 5 * time.Minute
	DefaultMaxTokenLifetime = 15 * time.Minute
	DefaultSkew             = 30 * time.Second
	DefaultRotationPeriod   = 24 * time.Hour
	DefaultPublishLead      = 10 * time.Minute
	DefaultRefreshHint      = 60 * time.Second

	// MaxSkew is the largest clock skew the configuration accepts.
	MaxSkew = 5 * time.Minute
	// MaxConfigSize is the largest configuration file accepted, in bytes.
	MaxConfigSize = 4 << 20
	// MaxConfigAccounts is the largest number of accounts a configuration declares.
	MaxConfigAccounts = 10000
)

// Config is callsignd's configuration: the issuer, its algorithm, lifetimes, the
// key rotation schedule and the service accounts that a team keeps in git. It is
// read from YAML by [ParseConfig] and applied at start-up by [New] or
// [Service.ApplyConfig], idempotently.
//
// The YAML form uses snake_case names, Go duration strings ("5m", "24h") and
// RFC 3339 times; every field is optional and unknown fields are refused:
//
//	issuer: callsign
//	algorithm: EdDSA           # or ES256
//	token_lifetime: 5m
//	max_token_lifetime: 15m
//	skew: 30s
//	rotation_period: 24h
//	publish_lead: 10m
//	refresh_hint: 60s
//	accounts:
//	  - id: orders             # or spiffe://example.org/ns/prod/sa/orders
//	    description: the orders service
//	    disabled: false
//	    public_keys:
//	      - kid: orders-1      # default: the JWK's kid, else its RFC 7638 thumbprint
//	        jwk: '{"kty":"OKP","crv":"Ed25519","x":"..."}'   # or jwk_file: orders.jwk
//	        expires_at: 2027-01-01T00:00:00Z
//	    grants:
//	      - audience: billing
//	        scopes: [billing.charge]
//	    user_assertion:
//	      allowed: false
//	      tenants: [t1]        # "*" for every tenant; also bounds tenant_id on service tokens
type Config struct {
	// Issuer is the iss of every token and the aud that client assertions name;
	// it is also the audience (trust domain) of user-context tokens. Default
	// [DefaultIssuer]. Same charset as a service id.
	Issuer string
	// Algorithm is "EdDSA" (default, Ed25519) or "ES256". Changing it needs a
	// fresh key store: [New] refuses a store holding keys of the other algorithm.
	Algorithm string
	// TokenLifetime is the lifetime of a token when the request names none.
	TokenLifetime time.Duration
	// MaxTokenLifetime is the largest lifetime a request may ask for.
	MaxTokenLifetime time.Duration
	// Skew is the clock skew allowed on every time check; at most [MaxSkew].
	Skew time.Duration
	// RotationPeriod is how long a signing key signs before the next one takes over.
	RotationPeriod time.Duration
	// PublishLead is how long a new key is published before it signs; at least
	// RefreshHint, so that verifiers refreshing on the hint know it in time.
	PublishLead time.Duration
	// RefreshHint is how often verifiers should fetch GetKeys again.
	RefreshHint time.Duration
	// Accounts are the service accounts declared in configuration.
	Accounts []AccountConfig
}

// AccountConfig declares one service account.
//
// Applying it is a merge in which the configuration wins on what it declares:
// the account is created when missing; its description is set; it is disabled
// when Disabled is true (false never re-enables an account an operator
// disabled); each listed public key is added or replaced by kid (keys added by
// an operator stay); the grant of each listed audience is replaced (other grants
// stay); the user assertion rule is replaced when given.
type AccountConfig struct {
	ID            string
	Description   string
	Disabled      bool
	PublicKeys    []PublicKeyConfig
	Grants        []GrantConfig
	UserAssertion *UserAssertionConfig
}

// PublicKeyConfig is one Ed25519 public key of an account, as a JWK given inline
// (JWK) or in a file (JWKFile, read by [LoadConfig] relative to the working
// directory). KID defaults to the JWK's kid, else its RFC 7638 thumbprint.
type PublicKeyConfig struct {
	KID       string
	JWK       string
	JWKFile   string
	ExpiresAt time.Time // zero: no expiry
}

// GrantConfig lets the account obtain tokens for Audience with Scopes.
type GrantConfig struct {
	Audience string
	Scopes   []string
}

// UserAssertionConfig says whether the account may assert users and for which
// tenants ("*" means every tenant).
type UserAssertionConfig struct {
	Allowed bool
	Tenants []string
}

// DefaultConfig returns the configuration used when no file is given: the
// defaults of DESIGN.md §9 and no accounts.
func DefaultConfig() Config {
	return Config{
		Issuer:           DefaultIssuer,
		Algorithm:        "EdDSA",
		TokenLifetime:    DefaultTokenLifetime,
		MaxTokenLifetime: DefaultMaxTokenLifetime,
		Skew:             DefaultSkew,
		RotationPeriod:   DefaultRotationPeriod,
		PublishLead:      DefaultPublishLead,
		RefreshHint:      DefaultRefreshHint,
	}
}

// The YAML form, decoded strictly (unknown fields refused); durations are strings.
type yamlConfig struct {
	Issuer           string              `yaml:"issuer"`
	Algorithm        string              `yaml:"algorithm"`
	TokenLifetime    string              `yaml:"token_lifetime"`
	MaxTokenLifetime string              `yaml:"max_token_lifetime"`
	Skew             string              `yaml:"skew"`
	RotationPeriod   string              `yaml:"rotation_period"`
	PublishLead      string              `yaml:"publish_lead"`
	RefreshHint      string              `yaml:"refresh_hint"`
	Accounts         []yamlAccountConfig `yaml:"accounts"`
}

type yamlAccountConfig struct {
	ID            string             `yaml:"id"`
	Description   string             `yaml:"description"`
	Disabled      bool               `yaml:"disabled"`
	PublicKeys    []yamlKeyConfig    `yaml:"public_keys"`
	Grants        []yamlGrantConfig  `yaml:"grants"`
	UserAssertion *yamlUserAssertion `yaml:"user_assertion"`
}

type yamlKeyConfig struct {
	KID       string `yaml:"kid"`
	JWK       string `yaml:"jwk"`
	JWKFile   string `yaml:"jwk_file"`
	ExpiresAt string `yaml:"expires_at"`
}

type yamlGrantConfig struct {
	Audience string   `yaml:"audience"`
	Scopes   []string `yaml:"scopes"`
}

type yamlUserAssertion struct {
	Allowed bool     `yaml:"allowed"`
	Tenants []string `yaml:"tenants"`
}

// errConfig prefixes configuration errors. They name the field, never echo a value.
func errConfig(format string, args ...any) error {
	return fmt.Errorf("authsvc: config: "+format, args...)
}

// ParseConfig decodes a YAML configuration strictly: unknown fields, duplicate
// keys, several documents, bad durations and every field outside its limits are
// refused. Missing settings take the defaults of [DefaultConfig]. A key given as
// jwk_file is not read here (see [LoadConfig]); ParseConfig refuses it unless
// the caller resolves it, so the result is always complete.
func ParseConfig(data []byte) (*Config, error) {
	return parseConfig(data, nil)
}

// LoadConfig reads and parses the YAML file at path; jwk_file entries are read
// relative to the working directory.
func LoadConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("authsvc: config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("authsvc: config: %w", err)
	}
	return parseConfig(data, func(p string) (string, error) {
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		if len(b) > MaxJWKSize {
			return "", errors.New("file too large")
		}
		return strings.TrimSpace(string(b)), nil
	})
}

func parseConfig(data []byte, readFile func(string) (string, error)) (*Config, error) {
	if len(data) > MaxConfigSize {
		return nil, errConfig("file larger than %d bytes", MaxConfigSize)
	}
	var y yamlConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&y); err != nil && !errors.Is(err, io.EOF) {
		return nil, errConfig("invalid YAML: %s", yamlErrorText(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errConfig("more than one YAML document")
	}
	cfg := DefaultConfig()
	if y.Issuer != "" {
		cfg.Issuer = y.Issuer
	}
	if y.Algorithm != "" {
		cfg.Algorithm = y.Algorithm
	}
	durations := []struct {
		name string
		in   string
		out  *time.Duration
	}{
		{"token_lifetime", y.TokenLifetime, &cfg.TokenLifetime},
		{"max_token_lifetime", y.MaxTokenLifetime, &cfg.MaxTokenLifetime},
		{"skew", y.Skew, &cfg.Skew},
		{"rotation_period", y.RotationPeriod, &cfg.RotationPeriod},
		{"publish_lead", y.PublishLead, &cfg.PublishLead},
		{"refresh_hint", y.RefreshHint, &cfg.RefreshHint},
	}
	for _, d := range durations {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			return nil, errConfig("%s: not a duration such as \"5m\"", d.name)
		}
		*d.out = v
	}
	if len(y.Accounts) > MaxConfigAccounts {
		return nil, errConfig("more than %d accounts", MaxConfigAccounts)
	}
	for i, ya := range y.Accounts {
		ac := AccountConfig{
			ID:          ya.ID,
			Description: ya.Description,
			Disabled:    ya.Disabled,
		}
		for j, yk := range ya.PublicKeys {
			k := PublicKeyConfig{KID: yk.KID, JWK: yk.JWK, JWKFile: yk.JWKFile}
			if yk.ExpiresAt != "" {
				t, err := time.Parse(time.RFC3339, yk.ExpiresAt)
				if err != nil {
					return nil, errConfig("accounts[%d].public_keys[%d].expires_at: not an RFC 3339 time", i, j)
				}
				k.ExpiresAt = t
			}
			if k.JWKFile != "" && k.JWK != "" {
				return nil, errConfig("accounts[%d].public_keys[%d]: jwk and jwk_file are exclusive", i, j)
			}
			if k.JWKFile != "" {
				if readFile == nil {
					return nil, errConfig("accounts[%d].public_keys[%d].jwk_file: not read by ParseConfig; use LoadConfig", i, j)
				}
				s, err := readFile(k.JWKFile)
				if err != nil {
					return nil, errConfig("accounts[%d].public_keys[%d].jwk_file: %w", i, j, err)
				}
				k.JWK = s
			}
			ac.PublicKeys = append(ac.PublicKeys, k)
		}
		for _, yg := range ya.Grants {
			ac.Grants = append(ac.Grants, GrantConfig(yg))
		}
		if ya.UserAssertion != nil {
			ac.UserAssertion = &UserAssertionConfig{Allowed: ya.UserAssertion.Allowed, Tenants: ya.UserAssertion.Tenants}
		}
		cfg.Accounts = append(cfg.Accounts, ac)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// yamlErrorText keeps the position information of a YAML error but not the
// offending text.
func yamlErrorText(err error) string {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		return fmt.Sprintf("%d type or field errors", len(te.Errors))
	}
	msg := err.Error()
	if i := strings.Index(msg, "line "); i >= 0 {
		end := i + len("line ")
		for end < len(msg) && msg[end] >= '0' && msg[end] <= '9' {
			end++
		}
		return "syntax error at " + msg[i:end]
	}
	return "syntax error"
}

// Validate checks every field of c against its limits, as [ParseConfig] does. It
// does not fill defaults.
func (c *Config) Validate() error {
	if !validServiceID(c.Issuer) {
		return errConfig("issuer: must be a service id (plain name or SPIFFE id)")
	}
	if _, err := parseAlgorithm(c.Algorithm); err != nil {
		return errConfig("algorithm: must be EdDSA or ES256")
	}
	if c.MaxTokenLifetime < 10*time.Second || c.MaxTokenLifetime > 24*time.Hour || c.MaxTokenLifetime%time.Second != 0 {
		return errConfig("max_token_lifetime: must be whole seconds between 10s and 24h")
	}
	if c.TokenLifetime < 10*time.Second || c.TokenLifetime > c.MaxTokenLifetime || c.TokenLifetime%time.Second != 0 {
		return errConfig("token_lifetime: must be whole seconds between 10s and max_token_lifetime")
	}
	if c.Skew < time.Second || c.Skew > MaxSkew {
		return errConfig("skew: must be between 1s and %s", MaxSkew)
	}
	if c.RefreshHint < time.Second || c.RefreshHint > time.Hour {
		return errConfig("refresh_hint: must be between 1s and 1h")
	}
	if c.PublishLead < c.RefreshHint || c.PublishLead > 30*24*time.Hour {
		return errConfig("publish_lead: must be at least refresh_hint and at most 720h")
	}
	if c.RotationPeriod < c.PublishLead || c.RotationPeriod < time.Minute || c.RotationPeriod > 365*24*time.Hour {
		return errConfig("rotation_period: must be at least publish_lead and 1m, at most 8760h")
	}
	seen := make(map[string]bool, len(c.Accounts))
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if !validServiceID(a.ID) {
			return errConfig("accounts[%d].id: must be a service id (plain name or SPIFFE id)", i)
		}
		if seen[a.ID] {
			return errConfig("accounts[%d].id: declared twice", i)
		}
		seen[a.ID] = true
		if !validDescription(a.Description) {
			return errConfig("accounts[%d].description: at most %d bytes of printable UTF-8", i, MaxDescriptionSize)
		}
		if len(a.PublicKeys) > MaxAccountKeys {
			return errConfig("accounts[%d].public_keys: more than %d", i, MaxAccountKeys)
		}
		kids := map[string]bool{}
		for j := range a.PublicKeys {
			k := &a.PublicKeys[j]
			if k.JWKFile != "" && k.JWK == "" {
				return errConfig("accounts[%d].public_keys[%d].jwk_file: not read; use LoadConfig", i, j)
			}
			kid, _, err := parseAccountJWK(k.JWK, k.KID)
			if err != nil {
				return errConfig("accounts[%d].public_keys[%d]: %w", i, j, err)
			}
			if kids[kid] {
				return errConfig("accounts[%d].public_keys[%d]: kid declared twice", i, j)
			}
			kids[kid] = true
		}
		if len(a.Grants) > MaxGrants {
			return errConfig("accounts[%d].grants: more than %d", i, MaxGrants)
		}
		auds := map[string]bool{}
		for j, g := range a.Grants {
			if !validServiceID(g.Audience) {
				return errConfig("accounts[%d].grants[%d].audience: must be a service id", i, j)
			}
			if auds[g.Audience] {
				return errConfig("accounts[%d].grants[%d].audience: declared twice", i, j)
			}
			auds[g.Audience] = true
			if !validScopes(g.Scopes) {
				return errConfig("accounts[%d].grants[%d].scopes: at most %d unique scopes of [A-Za-z0-9._:/-], 1 to 128 characters", i, j, MaxScopes)
			}
		}
		if ua := a.UserAssertion; ua != nil {
			if !validTenantList(ua.Tenants) {
				return errConfig("accounts[%d].user_assertion.tenants: at most %d unique tenant ids or \"*\"", i, MaxTenants)
			}
		}
	}
	return nil
}

// KEKSize is the size of the key-encryption key: AES-256.
const KEKSize = 32

// LoadKEK returns the 32-byte key-encryption key that protects signing keys at
// rest. It reads the file at path when path is set (raw 32 bytes, or their
// standard or URL-safe base64 with optional trailing newline), else decodes
// envValue (base64). Exactly one source must be given. A file readable by group
// or others is refused.
func LoadKEK(path, envValue string) ([]byte, error) {
	switch {
	case path != "" && envValue != "":
		return nil, errors.New("authsvc: key-encryption key: give a file or an environment value, not both")
	case path != "":
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("authsvc: key-encryption key: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, errors.New("authsvc: key-encryption key: file must not be readable by group or others (chmod 600)")
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("authsvc: key-encryption key: %w", err)
		}
		if len(b) == KEKSize {
			return b, nil
		}
		return decodeKEK(strings.TrimSpace(string(b)))
	case envValue != "":
		return decodeKEK(strings.TrimSpace(envValue))
	default:
		return nil, errors.New("authsvc: key-encryption key: none given")
	}
}

func decodeKEK(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KEKSize {
			return b, nil
		}
	}
	return nil, errors.New("authsvc: key-encryption key: must be 32 bytes, raw or base64")
}

// GenerateAccountKey creates an Ed25519 key pair for a service account, for
// development set-ups: the private key stays with the service, the public JWK
// (JSON, with its RFC 7638 thumbprint as kid) goes into the account.
func GenerateAccountKey() (ed25519.PrivateKey, string, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, "", fmt.Errorf("authsvc: %w", err)
	}
	kid := token.Thumbprint(pub)
	return priv, token.MarshalAccountPublicKey(pub, kid), nil
}
