package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func keyCommands() []*command {
	return []*command{
		{
			group: "keys", name: "keygen", order: 1, nargs: [2]int{0, 0},
			summary: "Generate an Ed25519 key pair: write the private JWK to --out (mode 0600) and print the public JWK.",
			help: `The private key stays with the service; register the public one with
'callsign keys add'. Nothing is sent to callsignd.

Example:
  callsign keys keygen --out shipping.jwk > shipping.pub.jwk
  callsign keys add shipping --jwk-file shipping.pub.jwk`,
			setup: func(fs *flag.FlagSet) runFunc {
				out := fs.String("out", "", "write the private JWK to this `file` (required; never overwritten)")
				kid := fs.String("kid", "", "key `id`; default the RFC 7638 thumbprint")
				return func(_ context.Context, e *env, _ *client, _ []string) error {
					if *out == "" {
						return usagef("pass --out FILE for the private key")
					}
					k, err := newAccountKey(*kid)
					if err != nil {
						return err
					}
					doc, err := k.privateJSON()
					if err != nil {
						return err
					}
					if err := writeNewFile(*out, doc); err != nil {
						return err
					}
					fmt.Fprintln(e.stdout, k.publicJSON())
					fmt.Fprintf(e.stderr, "wrote the private key (kid %s) to %s; the public JWK is on standard output\n", k.kid, *out)
					return nil
				}
			},
		},
		{
			group: "keys", name: "add", order: 2, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Register a public key for ACCOUNT's private_key_jwt assertions. Several keys may be active at once.",
			help: `Pass the public JWK (kty OKP, crv Ed25519, x) with --jwk or --jwk-file. A
private JWK file is accepted too: only its public part is sent.

Example:
  callsign keys add shipping --jwk-file shipping.jwk --expires 2160h`,
			setup: func(fs *flag.FlagSet) runFunc {
				jwk := fs.String("jwk", "", "the public key as a JWK JSON `object`")
				jwkFile := fs.String("jwk-file", "", "read the JWK from this `file`")
				kid := fs.String("kid", "", "key `id` assertions will carry; default the JWK's kid, else its thumbprint")
				expires := fs.String("expires", "", "expiry: an RFC 3339 `time`, or a duration from now such as 2160h")
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					if (*jwk == "") == (*jwkFile == "") {
						return usagef("pass exactly one of --jwk and --jwk-file")
					}
					doc := *jwk
					if *jwkFile != "" {
						b, err := os.ReadFile(*jwkFile)
						if err != nil {
							return fmt.Errorf("read --jwk-file: %w", err)
						}
						doc = strings.TrimSpace(string(b))
					}
					// A private JWK: send only its public part.
					if k, err := parsePrivateJWK([]byte(doc)); err == nil {
						doc = k.publicJSON()
					}
					exp, err := parseWhen("expires", *expires)
					if err != nil {
						return err
					}
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.AddPublicKeyResponse, error) {
						return ac.AddPublicKey(ctx, &callsignv1.AddPublicKeyRequest{AccountId: args[0], Jwk: doc, KeyId: *kid, ExpireTime: exp})
					}, func(r *callsignv1.AddPublicKeyResponse) {
						fmt.Fprintf(e.stdout, "added key %s to account %s (expires %s)\n", r.GetPublicKey().GetKeyId(), args[0], fmtTime(r.GetPublicKey().GetExpireTime()))
					})
				}
			},
		},
		{
			group: "keys", name: "remove", order: 3, args: "ACCOUNT KID", nargs: [2]int{2, 2}, server: true,
			summary: "Remove a public key from ACCOUNT: assertions signed with it are refused from now on.",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.RemovePublicKeyResponse, error) {
						return ac.RemovePublicKey(ctx, &callsignv1.RemovePublicKeyRequest{AccountId: args[0], KeyId: args[1]})
					}, func(*callsignv1.RemovePublicKeyResponse) {
						fmt.Fprintf(e.stdout, "removed key %s from account %s\n", args[1], args[0])
					})
				}
			},
		},
		{
			group: "secrets", name: "rotate", order: 1, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Create a new client secret for ACCOUNT and print it, the only time it is shown.",
			help: `Earlier secrets stay valid until they expire, or are removed at once with
--replace. Prefer a key pair (callsign keys keygen) where you can: the secret
travels with every token request.`,
			setup: func(fs *flag.FlagSet) runFunc {
				expires := fs.String("expires", "", "expiry: an RFC 3339 `time`, or a duration from now such as 720h")
				replace := fs.Bool("replace", false, "remove every earlier secret of the account")
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					exp, err := parseWhen("expires", *expires)
					if err != nil {
						return err
					}
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.RotateSecretResponse, error) {
						return ac.RotateSecret(ctx, &callsignv1.RotateSecretRequest{AccountId: args[0], ExpireTime: exp, ReplaceExisting: *replace})
					}, func(r *callsignv1.RotateSecretResponse) {
						fmt.Fprintln(e.stdout, r.GetSecret())
						fmt.Fprintf(e.stderr, "secret %s of account %s (expires %s): store it now, it is not shown again\n", r.GetInfo().GetSecretId(), args[0], fmtTime(r.GetInfo().GetExpireTime()))
					})
				}
			},
		},
	}
}

// writeNewFile writes data to a new file with mode 0600; an existing file is
// never replaced.
func writeNewFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists: callsign never overwrites a key file; choose another --out or remove it first", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
