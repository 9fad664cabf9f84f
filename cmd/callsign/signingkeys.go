package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func keyStateName(s callsignv1.SigningKeyState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "SIGNING_KEY_STATE_"))
}

func printSigningKeys(w io.Writer, keys []*callsignv1.SigningKey) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tSTATE\tCREATED\tSIGNS FROM\tSIGNS UNTIL\tREMOVED AT")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.GetKeyId(), k.GetAlgorithm(), keyStateName(k.GetState()), fmtTime(k.GetCreateTime()), fmtTime(k.GetActivateTime()), fmtTime(k.GetRetireTime()), fmtTime(k.GetRemoveTime()))
	}
	_ = tw.Flush()
}

func signingKeyCommands() []*command {
	return []*command{
		{
			group: "signing-keys", name: "list", order: 1, nargs: [2]int{0, 0}, server: true,
			summary: "List callsignd's signing keys (next, active, retired) with their times.",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the keys as JSON")
				return func(ctx context.Context, e *env, c *client, _ []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.ListSigningKeysResponse, error) {
						return ac.ListSigningKeys(ctx, &callsignv1.ListSigningKeysRequest{})
					}, func(r *callsignv1.ListSigningKeysResponse) { printSigningKeys(e.stdout, r.GetKeys()) })
				}
			},
		},
		{
			group: "signing-keys", name: "rotate", order: 2, nargs: [2]int{0, 0}, server: true,
			summary: "Rotate now: the next key starts signing, the active key retires, a new next key is published.",
			help: `Tokens already issued stay valid until they expire: the retired key stays
published until then. Verifiers already hold the next key, because it was
published before it signs, so no call fails during a rotation.`,
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the keys as JSON")
				return func(ctx context.Context, e *env, c *client, _ []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.RotateSigningKeysResponse, error) {
						return ac.RotateSigningKeys(ctx, &callsignv1.RotateSigningKeysRequest{})
					}, func(r *callsignv1.RotateSigningKeysResponse) {
						fmt.Fprintln(e.stdout, "rotated; the signing keys are now:")
						printSigningKeys(e.stdout, r.GetKeys())
					})
				}
			},
		},
	}
}
