package main

import (
	"context"
	"flag"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func revokeCommands() []*command {
	return []*command{
		{
			group: "revoke", name: "token", order: 1, args: "TOKEN_ID", nargs: [2]int{1, 1}, server: true,
			summary: "Revoke one token by its id (jti). Verifiers refuse it once they have fetched the new state.",
			help: `The token id is in every audit record (jti), in 'callsign token decode', and
in the output of 'callsign token issue'. Put "--" before an id that starts
with a dash. The record is kept until the token would have expired.

Example:
  callsign revoke token 3q2-7wEjRk2x0aZ1mXvYqg`,
			setup: func(fs *flag.FlagSet) runFunc {
				expires := fs.String("expires", "", "when the token expires (RFC 3339 `time` or duration from now); default the maximum token lifetime from now")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					exp, err := parseWhen("expires", *expires)
					if err != nil {
						return err
					}
					ctx, ac, err := c.admin(ctx)
					if err != nil {
						return err
					}
					if _, err := ac.RevokeToken(ctx, &callsignv1.RevokeTokenRequest{TokenId: args[0], ExpireTime: exp}); err != nil {
						return c.explain(err)
					}
					fmt.Fprintf(e.stdout, "revoked token %s\n", args[0])
					return nil
				}
			},
		},
		{
			group: "revoke", name: "account", order: 2, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Revoke every token of ACCOUNT issued before a time (now by default), including user tokens it asserted.",
			help: `The account keeps its credentials and can obtain new tokens; to stop that
too, 'callsign accounts disable' it or remove its keys.`,
			setup: func(fs *flag.FlagSet) runFunc {
				before := fs.String("before", "", "revoke tokens issued before this RFC 3339 `time`; default now")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					ts, err := parseWhen("before", *before)
					if err != nil {
						return err
					}
					ctx, ac, err := c.admin(ctx)
					if err != nil {
						return err
					}
					if _, err := ac.RevokeAccountTokens(ctx, &callsignv1.RevokeAccountTokensRequest{AccountId: args[0], IssuedBefore: ts}); err != nil {
						return c.explain(err)
					}
					fmt.Fprintf(e.stdout, "revoked the tokens of account %s issued before %s\n", args[0], whenOrNow(ts))
					return nil
				}
			},
		},
	}
}

func whenOrNow(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "now"
	}
	return fmtTime(ts)
}
