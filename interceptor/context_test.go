package interceptor

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
)

func TestContextAccessorsEmpty(t *testing.T) {
	ctx := context.Background()
	if _, ok := CallerFromContext(ctx); ok {
		t.Error("caller in an empty context")
	}
	if _, ok := UserFromContext(ctx); ok {
		t.Error("user in an empty context")
	}
	if _, ok := TenantFromContext(ctx); ok {
		t.Error("tenant in an empty context")
	}
	if _, ok := RequestInfoFromContext(metadata.NewIncomingContext(ctx, metadata.Pairs(MDRequestID, "r"))); ok {
		t.Error("request info without the interceptor")
	}
	if _, ok := userTokenFromContext(ctx); ok {
		t.Error("user token in an empty context")
	}
}

func TestNewContextWithIdentity(t *testing.T) {
	exp := srvT0.Add(time.Minute)
	id := Identity{
		Caller:  &Caller{ServiceID: "orders", Scopes: []string{"a", "b"}, TokenID: "j1", Expiry: exp, TenantID: "t1"},
		User:    &User{ID: "u1", TenantID: "t1", Roles: []string{"admin"}, AssertedBy: "edge", TokenID: "j2", Expiry: exp},
		Tenant:  "t1",
		Request: RequestInfo{CorrelationID: "c", RequestID: "r", TraceID: "t"},
	}
	ctx := NewContextWithIdentity(context.Background(), id)
	c, ok := CallerFromContext(ctx)
	if !ok || !reflect.DeepEqual(c, *id.Caller) {
		t.Fatalf("caller %+v", c)
	}
	u, ok := UserFromContext(ctx)
	if !ok || !reflect.DeepEqual(u, *id.User) {
		t.Fatalf("user %+v", u)
	}
	if tn, ok := TenantFromContext(ctx); !ok || tn != "t1" {
		t.Fatalf("tenant %q", tn)
	}
	if ri, ok := RequestInfoFromContext(ctx); !ok || ri != id.Request {
		t.Fatalf("request %+v", ri)
	}
	// Values are copies: changing what one handler got changes nothing else.
	c.Scopes[0] = "changed"
	u.Roles[0] = "changed"
	id.Caller.Scopes[1] = "changed"
	c2, _ := CallerFromContext(ctx)
	u2, _ := UserFromContext(ctx)
	if c2.Scopes[0] != "a" || c2.Scopes[1] != "b" || u2.Roles[0] != "admin" {
		t.Fatalf("shared slices: %v %v", c2.Scopes, u2.Roles)
	}
	if !c2.HasScope("a") || c2.HasScope("changed") {
		t.Fatal("HasScope")
	}
}

func TestTraceparent(t *testing.T) {
	const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for tp, want := range map[string]string{
		good:                       "4bf92f3577b34da6a3ce929d0e0e4736",
		good + "-extra":            "",
		"01" + good[2:] + "-extra": "4bf92f3577b34da6a3ce929d0e0e4736",
		"01" + good[2:]:            "4bf92f3577b34da6a3ce929d0e0e4736",
		"01" + good[2:] + "x":      "",
		"ff" + good[2:]:            "",
		strings.ToUpper(good):      "",
		good[:54]:                  "",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01": "",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01": "",
		"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01": "",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01": "",
		"": "",
	} {
		got, ok := traceIDFromTraceparent(tp)
		if got != want || ok != (want != "") {
			t.Errorf("%q: %q, %v; want %q", tp, got, ok, want)
		}
	}
}

func TestSafeID(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "req-1:x/y": true, strings.Repeat("a", maxIDLength): true,
		"": false, "a b": false, "a\tb": false, "é": false, "\x7f": false, strings.Repeat("a", maxIDLength+1): false,
	} {
		if safeID(s) != want {
			t.Errorf("safeID(%q) = %v", s, !want)
		}
	}
}

// FuzzTraceparent: the parser never panics, and what it returns is 32
// lowercase hex digits, not all zero, found at offset 3 of the input.
func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abc")
	f.Add("")
	f.Fuzz(func(t *testing.T, tp string) {
		id, ok := traceIDFromTraceparent(tp)
		if !ok {
			if id != "" {
				t.Fatal("id with !ok")
			}
			return
		}
		if len(id) != 32 || !lowerHex(id) || allZero(id) || tp[3:35] != id {
			t.Fatalf("%q -> %q", tp, id)
		}
	})
}
