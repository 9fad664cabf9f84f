package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// printJSON writes m as indented protojson.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func fmtTime(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().UTC().Format(time.RFC3339)
}

func statusName(s callsignv1.AccountStatus) string {
	switch s {
	case callsignv1.AccountStatus_ACCOUNT_STATUS_ACTIVE:
		return "active"
	case callsignv1.AccountStatus_ACCOUNT_STATUS_DISABLED:
		return "disabled"
	default:
		return "unknown"
	}
}

func grantsText(gs []*callsignv1.Grant) string {
	var parts []string
	for _, g := range gs {
		parts = append(parts, g.GetAudience()+"["+strings.Join(g.GetScopes(), " ")+"]")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func usersText(u *callsignv1.UserAssertion) string {
	if !u.GetAllowed() {
		return "-"
	}
	return strings.Join(u.GetTenants(), ",")
}

// printAccounts writes a table of accounts.
func printAccounts(w io.Writer, accts []*callsignv1.Account) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tSTATUS\tKEYS\tSECRETS\tGRANTS (audience[scopes])\tASSERTS USERS OF")
	for _, a := range accts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\n", a.GetAccountId(), statusName(a.GetStatus()), len(a.GetPublicKeys()), len(a.GetSecrets()), grantsText(a.GetGrants()), usersText(a.GetUserAssertion()))
	}
	_ = tw.Flush()
}

// printAccount writes one account in detail.
func printAccount(w io.Writer, a *callsignv1.Account) {
	fmt.Fprintf(w, "account:      %s\n", a.GetAccountId())
	if a.GetDescription() != "" {
		fmt.Fprintf(w, "description:  %s\n", a.GetDescription())
	}
	fmt.Fprintf(w, "status:       %s\n", statusName(a.GetStatus()))
	fmt.Fprintf(w, "created:      %s\n", fmtTime(a.GetCreateTime()))
	if a.GetDisableTime() != nil {
		fmt.Fprintf(w, "disabled:     %s\n", fmtTime(a.GetDisableTime()))
	}
	fmt.Fprintf(w, "public keys:  %d\n", len(a.GetPublicKeys()))
	for _, k := range a.GetPublicKeys() {
		fmt.Fprintf(w, "  %s  added %s  expires %s\n", k.GetKeyId(), fmtTime(k.GetCreateTime()), fmtTime(k.GetExpireTime()))
	}
	fmt.Fprintf(w, "secrets:      %d\n", len(a.GetSecrets()))
	for _, s := range a.GetSecrets() {
		fmt.Fprintf(w, "  %s  created %s  expires %s\n", s.GetSecretId(), fmtTime(s.GetCreateTime()), fmtTime(s.GetExpireTime()))
	}
	fmt.Fprintf(w, "grants:       %d\n", len(a.GetGrants()))
	for _, g := range a.GetGrants() {
		fmt.Fprintf(w, "  audience %s  scopes %s\n", g.GetAudience(), strings.Join(g.GetScopes(), " "))
	}
	if a.GetUserAssertion().GetAllowed() {
		fmt.Fprintf(w, "asserts users of tenants: %s\n", strings.Join(a.GetUserAssertion().GetTenants(), ", "))
	} else {
		fmt.Fprintln(w, "asserts users: no")
	}
}

func timestamp(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
