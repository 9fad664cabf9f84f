package demo

import (
	"testing"

	"github.com/callsign-dev/callsign/examples/shop/internal/kit"
)

func TestUnmatched(t *testing.T) {
	lines := []audit{
		{AuditLine: kit.AuditLine{Audit: "pricing", Decision: "allow", Caller: "orders", User: "alice"}},
		{AuditLine: kit.AuditLine{Audit: "billing", Decision: "deny", Reason: "CALLER_NOT_ALLOWED", Caller: "rogue"}},
	}
	tests := []struct {
		name    string
		want    []expect
		missing int
	}{
		{"none", nil, 0},
		{"one matches", []expect{{service: "pricing", caller: "orders"}}, 0},
		{"both match", []expect{{service: "billing", reason: "CALLER_NOT_ALLOWED"}, {decision: "allow"}}, 0},
		{"field differs", []expect{{service: "pricing", user: "bob"}}, 1},
		{"a line counts once", []expect{{service: "pricing"}, {service: "pricing"}}, 1},
		{"wrong decision", []expect{{service: "billing", decision: "allow"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unmatched(lines, tt.want); len(got) != tt.missing {
				t.Errorf("unmatched = %v, want %d missing", got, tt.missing)
			}
		})
	}
}

func TestReportOK(t *testing.T) {
	if (Report{}).OK() {
		t.Error("an empty report is OK")
	}
	if !(Report{Steps: []Step{{Title: "a"}}}).OK() {
		t.Error("a report of successful steps is not OK")
	}
	if (Report{Steps: []Step{{Title: "a"}, {Title: "b", Err: errFailed}}}).OK() {
		t.Error("a report with a failed step is OK")
	}
}

var errFailed = checkf(false, "failed")
