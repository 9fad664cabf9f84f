package demo

import (
	"fmt"
	"strings"
)

// expect describes an audit line a step must produce. Empty fields match
// anything.
type expect struct {
	service  string
	decision string // "allow" or "deny"
	reason   string
	method   string
	caller   string
	user     string
	tenant   string
	jti      string
	corr     string
}

func (e expect) matches(a audit) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(e.service, a.Audit) && eq(e.decision, a.Decision) && eq(e.reason, a.Reason) &&
		eq(e.method, a.Method) && eq(e.caller, a.Caller) && eq(e.user, a.User) &&
		eq(e.tenant, a.Tenant) && eq(e.jti, a.TokenID) && eq(e.corr, a.CorrelationID)
}

func (e expect) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("service", e.service)
	add("decision", e.decision)
	add("reason", e.reason)
	add("method", e.method)
	add("caller", e.caller)
	add("user", e.user)
	add("tenant", e.tenant)
	add("jti", e.jti)
	add("correlation_id", e.corr)
	return "audit{" + strings.Join(parts, " ") + "}"
}

// unmatched returns the expectations that no line satisfies, each line
// satisfying at most one expectation.
func unmatched(lines []audit, want []expect) []expect {
	used := make([]bool, len(lines))
	var missing []expect
	for _, w := range want {
		found := false
		for i, l := range lines {
			if !used[i] && w.matches(l) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}

// checkf returns an error when cond is false.
func checkf(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, args...)
}
