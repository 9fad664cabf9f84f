package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

func grantCommands() []*command {
	return []*command{
		{
			group: "grants", name: "set", order: 1, args: "ACCOUNT AUDIENCE", nargs: [2]int{2, 2}, server: true,
			summary: "Let ACCOUNT obtain tokens for AUDIENCE with the given scopes, replacing its earlier grant for AUDIENCE.",
			help: `AUDIENCE is the id of the service the account will call (the audience in the
service's callsign.v1.service option). Without --scopes the account gets
tokens without scopes.

Example:
  callsign grants set orders billing --scopes billing.charge`,
			setup: func(fs *flag.FlagSet) runFunc {
				scopes := fs.String("scopes", "", "comma-separated `scopes`, at most 32")
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.SetGrantResponse, error) {
						return ac.SetGrant(ctx, &callsignv1.SetGrantRequest{AccountId: args[0], Grant: &callsignv1.Grant{Audience: args[1], Scopes: splitList(*scopes)}})
					}, func(r *callsignv1.SetGrantResponse) {
						fmt.Fprintf(e.stdout, "account %s may get tokens for %s with scopes [%s]\n", args[0], args[1], strings.Join(splitList(*scopes), " "))
					})
				}
			},
		},
		{
			group: "grants", name: "delete", order: 2, args: "ACCOUNT AUDIENCE", nargs: [2]int{2, 2}, server: true,
			summary: "Remove ACCOUNT's grant for AUDIENCE: it gets no new token for it (tokens already issued run out).",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.DeleteGrantResponse, error) {
						return ac.DeleteGrant(ctx, &callsignv1.DeleteGrantRequest{AccountId: args[0], Audience: args[1]})
					}, func(*callsignv1.DeleteGrantResponse) {
						fmt.Fprintf(e.stdout, "account %s has no grant for %s any more\n", args[0], args[1])
					})
				}
			},
		},
		{
			group: "user-assertion", name: "set", order: 1, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Let ACCOUNT (an edge service) obtain user-context tokens for users of the given tenants.",
			help: `--tenants "*" allows every tenant. Use --deny to take the right away.

Example:
  callsign user-assertion set gateway --tenants acme,globex`,
			setup: func(fs *flag.FlagSet) runFunc {
				tenants := fs.String("tenants", "", "comma-separated tenant `ids` (\"*\" for every tenant)")
				deny := fs.Bool("deny", false, "the account may not assert users at all")
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					rule := &callsignv1.UserAssertion{Allowed: !*deny, Tenants: splitList(*tenants)}
					if *deny && len(rule.Tenants) > 0 {
						return usagef("--deny and --tenants exclude each other")
					}
					if !*deny && len(rule.Tenants) == 0 {
						return usagef("pass --tenants (comma-separated, or \"*\") to allow, or --deny")
					}
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.SetUserAssertionResponse, error) {
						return ac.SetUserAssertion(ctx, &callsignv1.SetUserAssertionRequest{AccountId: args[0], UserAssertion: rule})
					}, func(r *callsignv1.SetUserAssertionResponse) {
						if *deny {
							fmt.Fprintf(e.stdout, "account %s may not assert users\n", args[0])
							return
						}
						fmt.Fprintf(e.stdout, "account %s may assert users of tenants %s\n", args[0], strings.Join(rule.GetTenants(), ", "))
					})
				}
			},
		},
	}
}
