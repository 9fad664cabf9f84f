package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	"github.com/callsign-dev/callsign/internal/token"
)

// maxJWKSSize bounds a JWKS read from a file or URL.
const maxJWKSSize = 1 << 20

func tokenCommands() []*command {
	return []*command{
		{
			group: "token", name: "issue", order: 1, nargs: [2]int{0, 0}, server: true,
			summary: "Obtain a token from callsignd with an account's credential and print it.",
			help: `The credential is --account with --key (private_key_jwt), or --account with a
client secret in --secret-file or CALLSIGN_SECRET. The token goes to standard
output, a summary (token id, key, expiry) to standard error.

A service token names one --audience. A user-context token names --user and
--tenant instead, and needs an account that may assert users of that tenant.

Examples:
  callsign token issue --account orders --key orders.jwk --audience pricing
  callsign token issue --account gateway --key gateway.jwk --user alice --tenant acme
  TOKEN=$(callsign token issue --account orders --key orders.jwk --audience billing --scopes billing.charge)`,
			setup: func(fs *flag.FlagSet) runFunc {
				audience := fs.String("audience", "", "the `service` the token is for (a service token)")
				scopes := fs.String("scopes", "", "comma-separated `scopes` wanted; default every granted scope")
				lifetime := fs.Duration("lifetime", 0, "requested `lifetime`; default callsignd's (5m unless configured)")
				user := fs.String("user", "", "user `id`: obtain a user-context token (with --tenant)")
				tenant := fs.String("tenant", "", "the user's tenant; with --audience, a tenant-scoped service token")
				roles := fs.String("roles", "", "comma-separated `roles` of the user")
				secretFile := fs.String("secret-file", "", "read a client secret from this `file` instead of using --key (or set CALLSIGN_SECRET)")
				asJSON := fs.Bool("json", false, "print the whole response as JSON")
				return func(ctx context.Context, e *env, c *client, _ []string) error {
					req := &callsignv1.IssueTokenRequest{Audience: *audience, Scopes: splitList(*scopes)}
					switch {
					case *user != "":
						if *audience != "" || *scopes != "" {
							return usagef("a user-context token has no --audience or --scopes: pass --user and --tenant only")
						}
						if *tenant == "" {
							return usagef("--user needs --tenant: the user's tenant")
						}
						req.User = &callsignv1.UserContext{UserId: *user, TenantId: *tenant, Roles: splitList(*roles)}
					case *audience == "":
						return usagef("pass --audience SERVICE for a service token, or --user and --tenant for a user-context token")
					default:
						req.TenantId = *tenant
					}
					if *lifetime != 0 {
						req.Lifetime = durationpb.New(*lifetime)
					}
					secret := strings.TrimSpace(e.getenv("CALLSIGN_SECRET"))
					if *secretFile != "" {
						b, err := os.ReadFile(*secretFile)
						if err != nil {
							return fmt.Errorf("read --secret-file: %w", err)
						}
						secret = strings.TrimSpace(string(b))
					}
					if secret != "" && c.flags.keyFlag {
						return usagef("pass one credential: --key, or a client secret (--secret-file or CALLSIGN_SECRET), not both")
					}
					if secret != "" {
						req.Credential = &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: c.flags.account, Secret: secret}}
					} else {
						if c.flags.key == "" {
							return usagef("no credential: pass --key FILE (a private JWK), or a client secret with --secret-file or CALLSIGN_SECRET")
						}
						key, err := loadAccountKey(c.flags.key)
						if err != nil {
							return err
						}
						a, err := token.SignAssertion(key.priv, key.kid, c.flags.account, c.flags.issuer, time.Now(), assertionTTL)
						if err != nil {
							return fmt.Errorf("sign the client assertion: %w", err)
						}
						req.Credential = &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: a}
					}
					ac, err := c.auth()
					if err != nil {
						return err
					}
					resp, err := ac.IssueToken(ctx, req)
					if err != nil {
						return c.explainIssue(err, c.flags.account, *audience, "", false)
					}
					if *asJSON {
						return printJSON(e.stdout, resp)
					}
					fmt.Fprintln(e.stdout, resp.GetToken())
					kind := "service token for audience " + *audience + " with scopes [" + strings.Join(resp.GetScopes(), " ") + "]"
					if *user != "" {
						kind = "user-context token for user " + *user + " of tenant " + *tenant
					}
					fmt.Fprintf(e.stderr, "%s; token id %s, key %s, expires %s\n", kind, resp.GetTokenId(), resp.GetKeyId(), fmtTime(resp.GetExpireTime()))
					return nil
				}
			},
		},
		{
			group: "token", name: "decode", order: 2, args: "[TOKEN|-]", nargs: [2]int{0, 1},
			summary: "Print a token's header and claims WITHOUT verifying anything. Reads standard input without TOKEN or with -.",
			help: `Decoding shows what a token claims, not whether it is true: anyone can write
any claim. Use 'callsign token verify' to check the signature, the claims and
revocation. Nothing is sent anywhere.`,
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print {\"verified\": false, \"header\": ..., \"claims\": ...} as JSON")
				return func(_ context.Context, e *env, _ *client, args []string) error {
					raw, err := readToken(e, args)
					if err != nil {
						return err
					}
					header, claims, err := decodeUnverified(raw)
					if err != nil {
						return err
					}
					if *asJSON {
						out, _ := json.MarshalIndent(map[string]any{"verified": false, "header": json.RawMessage(header), "claims": json.RawMessage(claims)}, "", "  ")
						fmt.Fprintln(e.stdout, string(out))
						return nil
					}
					fmt.Fprintln(e.stdout, "UNVERIFIED: decoded only. The signature, expiry, audience and revocation are NOT checked;")
					fmt.Fprintln(e.stdout, "anyone can write these claims. Use 'callsign token verify' to check them.")
					fmt.Fprintf(e.stdout, "\nheader (unverified):\n%s\n\nclaims (unverified):\n%s\n", indentJSON(header), indentJSON(claims))
					if times := claimTimes(claims); times != "" {
						fmt.Fprintf(e.stdout, "\n%s", times)
					}
					return nil
				}
			},
		},
		{
			group: "token", name: "verify", order: 3, args: "[TOKEN|-]", nargs: [2]int{0, 1}, server: true,
			summary: "Verify a token: signature, claims, audience, type, and (against callsignd) revocation and account status.",
			help: `By default the token is sent to callsignd's Verify (the admin account needs
scope callsign.verify). With --keys, callsignd's GetKeys is fetched and the token
is verified here, revocation state included. With --jwks FILE or URL, it is
verified here against that key set alone: revocation is then NOT checked.

Exit status 0 when the token is valid, 1 when it is not.

Examples:
  callsign token verify --audience pricing "$TOKEN"
  callsign token verify --type user "$USER_TOKEN"
  callsign token verify --audience pricing --jwks http://127.0.0.1:7080/.well-known/jwks.json "$TOKEN"`,
			setup: func(fs *flag.FlagSet) runFunc {
				audience := fs.String("audience", "", "the audience the token must carry (service tokens; required)")
				typ := fs.String("type", "service", "the kind of token expected: service or user")
				viaKeys := fs.Bool("keys", false, "verify here against callsignd's GetKeys (keys and revocation state)")
				jwks := fs.String("jwks", "", "verify here against a JWKS `file or URL` (no revocation check)")
				alg := fs.String("alg", "EdDSA", "the deployment's signing `algorithm`: EdDSA or ES256 (with --keys and --jwks)")
				asJSON := fs.Bool("json", false, "print the verdict as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					raw, err := readToken(e, args)
					if err != nil {
						return err
					}
					var tt callsignv1.TokenType
					switch *typ {
					case "service":
						tt = callsignv1.TokenType_TOKEN_TYPE_SERVICE
						if *audience == "" {
							return usagef("a service token is verified for one audience: pass --audience SERVICE (or --type user)")
						}
					case "user":
						tt = callsignv1.TokenType_TOKEN_TYPE_USER
						if *audience != "" {
							return usagef("a user-context token's audience is the issuer: drop --audience with --type user")
						}
					default:
						return usagef("--type %q: use service or user", *typ)
					}
					if *viaKeys && *jwks != "" {
						return usagef("--keys and --jwks exclude each other")
					}
					var verdict *callsignv1.VerifyResponse
					source := "callsignd Verify"
					switch {
					case *jwks != "":
						source = "JWKS " + *jwks + " (revocation NOT checked)"
						data, err := readJWKS(ctx, *jwks)
						if err != nil {
							return err
						}
						verdict, err = verifyLocal(raw, tt, *audience, c.flags.issuer, token.Algorithm(*alg), data, nil)
						if err != nil {
							return err
						}
					case *viaKeys:
						source = "callsignd GetKeys (verified locally)"
						ac, err := c.auth()
						if err != nil {
							return err
						}
						keys, err := ac.GetKeys(ctx, &callsignv1.GetKeysRequest{})
						if err != nil {
							return c.explain(err)
						}
						verdict, err = verifyLocal(raw, tt, *audience, c.flags.issuer, token.Algorithm(*alg), keys.GetJwks(), keys)
						if err != nil {
							return err
						}
					default:
						ctx, err := c.withToken(ctx, "callsign.verify")
						if err != nil {
							return err
						}
						ac, err := c.auth()
						if err != nil {
							return err
						}
						verdict, err = ac.Verify(ctx, &callsignv1.VerifyRequest{Token: raw, TokenType: tt, Audience: *audience})
						if err != nil {
							return c.explain(err)
						}
					}
					if *asJSON {
						if err := printJSON(e.stdout, verdict); err != nil {
							return err
						}
					} else {
						printVerdict(e.stdout, verdict, source)
					}
					if !verdict.GetActive() {
						return errSilent
					}
					return nil
				}
			},
		},
	}
}

// readToken takes the token from the argument, or from standard input when
// there is none or it is "-". A "Bearer " prefix is dropped.
func readToken(e *env, args []string) (string, error) {
	var raw string
	if len(args) == 1 && args[0] != "-" {
		raw = args[0]
	} else {
		b, err := io.ReadAll(io.LimitReader(e.stdin, token.MaxTokenSize+1024))
		if err != nil {
			return "", fmt.Errorf("read the token from standard input: %w", err)
		}
		raw = string(b)
	}
	raw = strings.TrimSpace(raw)
	if len(raw) > 7 && strings.EqualFold(raw[:7], "bearer ") {
		raw = strings.TrimSpace(raw[7:])
	}
	if raw == "" {
		return "", usagef("no token: pass it as the argument, or on standard input")
	}
	if len(raw) > token.MaxTokenSize {
		return "", fmt.Errorf("the token is longer than %d bytes: callsign tokens are never that large", token.MaxTokenSize)
	}
	return raw, nil
}

// decodeUnverified splits a compact JWS and decodes its header and payload as
// JSON, checking nothing else.
func decodeUnverified(raw string) (header, claims []byte, err error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil, errors.New("not a compact JWS: a token has three parts separated by dots")
	}
	header, err = base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || !json.Valid(header) {
		return nil, nil, errors.New("the header (first part) is not base64url-encoded JSON")
	}
	claims, err = base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || !json.Valid(claims) {
		return nil, nil, errors.New("the claims (second part) are not base64url-encoded JSON")
	}
	return header, claims, nil
}

func indentJSON(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "  ", "  "); err != nil {
		return "  " + string(b)
	}
	return "  " + out.String()
}

// claimTimes renders exp, iat and nbf as dates relative to now.
func claimTimes(claims []byte) string {
	var c map[string]any
	if json.Unmarshal(claims, &c) != nil {
		return ""
	}
	var sb strings.Builder
	now := time.Now()
	for _, name := range []string{"iat", "nbf", "exp"} {
		v, ok := c[name].(float64)
		if !ok {
			continue
		}
		t := time.Unix(int64(v), 0).UTC()
		rel := "in " + t.Sub(now).Round(time.Second).String()
		if t.Before(now) {
			rel = now.Sub(t).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(&sb, "%s: %s (%s)\n", name, t.Format(time.RFC3339), rel)
	}
	return sb.String()
}

// readJWKS reads a JWKS from a file, or from an http(s) URL (plain http only
// on loopback).
func readJWKS(ctx context.Context, src string) ([]byte, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, fmt.Errorf("read --jwks: %w", err)
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxJWKSSize))
	}
	u, err := url.Parse(src)
	if err != nil {
		return nil, usagef("--jwks %q is not a URL", src)
	}
	if u.Scheme == "http" && !isLoopback(u.Host) && !isLoopback(u.Host+":80") {
		return nil, usagef("--jwks %s: plain http is allowed only on loopback; use https (a key set fetched without TLS could be anyone's)", src)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch --jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch --jwks %s: HTTP %d; callsignd serves its key set at /.well-known/jwks.json on its --http-addr", src, resp.StatusCode)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize))
}

// verifyLocal verifies raw against a JWKS and, when state is given, the
// revocation state of GetKeys. It returns a verdict shaped like Verify's.
func verifyLocal(raw string, tt callsignv1.TokenType, audience, issuer string, alg token.Algorithm, jwks []byte, state *callsignv1.GetKeysResponse) (*callsignv1.VerifyResponse, error) {
	if !alg.Valid() {
		return nil, usagef("--alg %q: use EdDSA or ES256", alg)
	}
	keys, err := token.ParseJWKS(jwks, alg)
	if err != nil {
		return nil, fmt.Errorf("the key set is not a valid JWKS for %s: %w", alg, err)
	}
	typ := token.TypeService
	if tt == callsignv1.TokenType_TOKEN_TYPE_USER {
		typ = token.TypeUser
		audience = issuer
	}
	now := time.Now()
	c, err := token.Verify(raw, alg, keys, token.Expect{Issuer: issuer, Audience: audience, Type: typ, Now: now})
	if err != nil {
		return &callsignv1.VerifyResponse{Reason: token.ReasonOf(err)}, nil
	}
	if state != nil {
		if r := revoked(c, state); r != callsignv1.Reason_REASON_UNSPECIFIED {
			return &callsignv1.VerifyResponse{Reason: r}, nil
		}
	}
	return &callsignv1.VerifyResponse{Active: true, Claims: claimsProto(c, tt)}, nil
}

// revoked applies the revocation state of GetKeys to verified claims.
func revoked(c token.Claims, state *callsignv1.GetKeysResponse) callsignv1.Reason {
	account := c.Subject
	if c.Type == token.TypeUser {
		account = c.Actor
	}
	for _, r := range state.GetRevokedTokens() {
		if r.GetTokenId() == c.ID {
			return callsignv1.Reason_REASON_TOKEN_REVOKED
		}
	}
	for _, d := range state.GetDisabledAccounts() {
		if d.GetAccountId() == account {
			return callsignv1.Reason_REASON_ACCOUNT_DISABLED
		}
	}
	for _, r := range state.GetRevokedAccounts() {
		if r.GetAccountId() == account && c.IssuedAt.Before(r.GetIssuedBefore().AsTime()) {
			return callsignv1.Reason_REASON_TOKEN_REVOKED
		}
	}
	return callsignv1.Reason_REASON_UNSPECIFIED
}

func claimsProto(c token.Claims, tt callsignv1.TokenType) *callsignv1.Claims {
	out := &callsignv1.Claims{
		TokenType: tt, Issuer: c.Issuer, Subject: c.Subject, Audience: c.Audience,
		ExpireTime: timestamp(c.Expiry), IssueTime: timestamp(c.IssuedAt),
		TokenId: c.ID, Scopes: c.Scopes, TenantId: c.TenantID, Roles: c.Roles, Actor: c.Actor,
	}
	if !c.NotBefore.IsZero() {
		out.NotBefore = timestamp(c.NotBefore)
	}
	return out
}

func printVerdict(w io.Writer, v *callsignv1.VerifyResponse, source string) {
	if !v.GetActive() {
		fmt.Fprintf(w, "INVALID: %s (checked by %s)\n", strings.TrimPrefix(v.GetReason().String(), "REASON_"), source)
		return
	}
	c := v.GetClaims()
	fmt.Fprintf(w, "VALID (checked by %s)\n", source)
	kind := "service"
	if c.GetTokenType() == callsignv1.TokenType_TOKEN_TYPE_USER {
		kind = "user"
	}
	fmt.Fprintf(w, "  type:     %s\n  issuer:   %s\n  subject:  %s\n  audience: %s\n  token id: %s\n  issued:   %s\n  expires:  %s\n",
		kind, c.GetIssuer(), c.GetSubject(), c.GetAudience(), c.GetTokenId(), fmtTime(c.GetIssueTime()), fmtTime(c.GetExpireTime()))
	if len(c.GetScopes()) > 0 {
		fmt.Fprintf(w, "  scopes:   %s\n", strings.Join(c.GetScopes(), " "))
	}
	if c.GetTenantId() != "" {
		fmt.Fprintf(w, "  tenant:   %s\n", c.GetTenantId())
	}
	if len(c.GetRoles()) > 0 {
		fmt.Fprintf(w, "  roles:    %s\n", strings.Join(c.GetRoles(), " "))
	}
	if c.GetActor() != "" {
		fmt.Fprintf(w, "  asserted by: %s\n", c.GetActor())
	}
}
