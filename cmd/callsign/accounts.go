package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// adminCall is the common shape of a simple AdminService command: build the
// request, call, print the account (or the response as JSON).
func adminCall[R proto.Message](ctx context.Context, e *env, c *client, asJSON bool, call func(context.Context, callsignv1.AdminServiceClient) (R, error), text func(R)) error {
	ctx, ac, err := c.admin(ctx)
	if err != nil {
		return err
	}
	resp, err := call(ctx, ac)
	if err != nil {
		return c.explain(err)
	}
	if asJSON {
		return printJSON(e.stdout, resp)
	}
	text(resp)
	return nil
}

func accountCommands() []*command {
	return []*command{
		{
			group: "accounts", name: "create", order: 1, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Register a service account (active, without credentials or grants).",
			help: `ACCOUNT is a plain name ([a-z0-9][a-z0-9._-]{0,62}) or a SPIFFE id.
Then give it a credential (callsign keys add, or callsign secrets rotate) and
grants (callsign grants set).

Example:
  callsign accounts create shipping --description "ships orders"`,
			setup: func(fs *flag.FlagSet) runFunc {
				desc := fs.String("description", "", "free text for operators, at most 256 bytes")
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.CreateAccountResponse, error) {
						return ac.CreateAccount(ctx, &callsignv1.CreateAccountRequest{AccountId: args[0], Description: *desc})
					}, func(r *callsignv1.CreateAccountResponse) {
						fmt.Fprintf(e.stdout, "created account %s\n", r.GetAccount().GetAccountId())
					})
				}
			},
		},
		{
			group: "accounts", name: "list", order: 2, nargs: [2]int{0, 0}, server: true,
			summary: "List every service account with its status, keys, grants and user assertion rule.",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the accounts as JSON")
				return func(ctx context.Context, e *env, c *client, _ []string) error {
					ctx, ac, err := c.admin(ctx)
					if err != nil {
						return err
					}
					all := &callsignv1.ListAccountsResponse{}
					page := ""
					for range 1000 {
						resp, err := ac.ListAccounts(ctx, &callsignv1.ListAccountsRequest{PageSize: 1000, PageToken: page})
						if err != nil {
							return c.explain(err)
						}
						all.Accounts = append(all.Accounts, resp.GetAccounts()...)
						if page = resp.GetNextPageToken(); page == "" {
							break
						}
					}
					if *asJSON {
						return printJSON(e.stdout, all)
					}
					printAccounts(e.stdout, all.GetAccounts())
					return nil
				}
			},
		},
		{
			group: "accounts", name: "show", order: 3, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Show one account: status, public keys, secrets (ids only), grants, user assertion rule.",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the account as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.GetAccountResponse, error) {
						return ac.GetAccount(ctx, &callsignv1.GetAccountRequest{AccountId: args[0]})
					}, func(r *callsignv1.GetAccountResponse) { printAccount(e.stdout, r.GetAccount()) })
				}
			},
		},
		{
			group: "accounts", name: "disable", order: 4, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Disable an account: it gets no new token, and verifiers refuse its tokens once they have fetched the new state.",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.DisableAccountResponse, error) {
						return ac.DisableAccount(ctx, &callsignv1.DisableAccountRequest{AccountId: args[0]})
					}, func(r *callsignv1.DisableAccountResponse) {
						fmt.Fprintf(e.stdout, "account %s is %s\n", r.GetAccount().GetAccountId(), statusName(r.GetAccount().GetStatus()))
					})
				}
			},
		},
		{
			group: "accounts", name: "enable", order: 5, args: "ACCOUNT", nargs: [2]int{1, 1}, server: true,
			summary: "Enable a disabled account again.",
			setup: func(fs *flag.FlagSet) runFunc {
				asJSON := fs.Bool("json", false, "print the response as JSON")
				return func(ctx context.Context, e *env, c *client, args []string) error {
					return adminCall(ctx, e, c, *asJSON, func(ctx context.Context, ac callsignv1.AdminServiceClient) (*callsignv1.EnableAccountResponse, error) {
						return ac.EnableAccount(ctx, &callsignv1.EnableAccountRequest{AccountId: args[0]})
					}, func(r *callsignv1.EnableAccountResponse) {
						fmt.Fprintf(e.stdout, "account %s is %s\n", r.GetAccount().GetAccountId(), statusName(r.GetAccount().GetStatus()))
					})
				}
			},
		},
	}
}

// parseWhen reads a time flag: RFC 3339, or a duration from now ("24h").
func parseWhen(name, v string) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return timestamppb.New(time.Now().Add(d)), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, usagef("--%s %q is neither an RFC 3339 time (2030-01-02T15:04:05Z) nor a duration from now (24h)", name, v)
	}
	return timestamppb.New(t), nil
}
