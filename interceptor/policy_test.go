package interceptor

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

func srvPolicy(t *testing.T, opts ...ServerOption) *policy {
	t.Helper()
	c := defaultServerConfig()
	for _, o := range opts {
		o.applyServer(&c)
	}
	if len(c.errs) > 0 {
		t.Fatal(c.errs)
	}
	return newPolicy(&c)
}

func TestPolicyFromRegistry(t *testing.T) {
	p := srvPolicy(t)
	tests := []struct {
		method string
		state  ruleState
		rule   Rule
	}{
		{"TestService/Public", ruleOK, Rule{Public: true}},
		{"TestService/Scoped", ruleOK, Rule{Scopes: []string{"test.read"}}},
		{"TestService/MultiScoped", ruleOK, Rule{Scopes: []string{"test.read", "test.write"}}},
		{"TestService/TenantRequired", ruleOK, Rule{Scopes: []string{"test.read"}, RequireUser: true, RequireTenant: true}},
		{"TestService/CallersListed", ruleOK, Rule{Scopes: []string{"test.write"}, Callers: []string{"orders", "spiffe://example.org/ns/shop/sa/gateway"}}},
		{"TestService/Idempotent", ruleOK, Rule{Scopes: []string{"test.write"}, RequireIdempotencyKey: true}},
		{"TestService/BrokenRule", ruleInvalid, Rule{}},
		{"TestService/NoRule", ruleNone, Rule{}},
		{"TestService/NoRuleBidiStream", ruleNone, Rule{}},
		{"TestService/Absent", ruleNone, Rule{}},
		{"DefaultScopedService/Inherit", ruleOK, Rule{Scopes: []string{"test.default"}}},
		{"DefaultScopedService/Override", ruleOK, Rule{Public: true}},
		{"Nope/Scoped", ruleNone, Rule{}},
	}
	for _, tt := range tests {
		r := p.get("/callsign.test.v1." + tt.method)
		if r.state != tt.state || !reflect.DeepEqual(r.rule, tt.rule) {
			t.Errorf("%s: state %v rule %+v, want %v %+v", tt.method, r.state, r.rule, tt.state, tt.rule)
		}
	}
	for _, bad := range []string{"", "/", "noslash", "/a/b/c", "/callsign.test.v1.TestService/", "//Scoped", "/callsign.test.v1.TestService/Sco ped"} {
		if r := p.get(bad); r.state != ruleNone {
			t.Errorf("%q: state %v", bad, r.state)
		}
	}
}

func TestPolicyPrecedence(t *testing.T) {
	p := srvPolicy(t,
		WithRule("/callsign.test.v1.TestService/NoRule", Rule{Scopes: []string{"x.y"}}),
		WithServiceRule("callsign.test.v1.DefaultScopedService", Rule{Public: true}),
		WithRule("/callsign.test.v1.DefaultScopedService/Inherit", Rule{Scopes: []string{"explicit"}}),
		WithRuleResolver(RuleResolverFunc(func(m string) (Rule, bool) {
			if m == "/callsign.test.v1.TestService/Scoped" {
				return Rule{Scopes: []string{"resolved"}}, true
			}
			return Rule{}, false
		})),
	)
	for m, want := range map[string]Rule{
		"/callsign.test.v1.TestService/NoRule":            {Scopes: []string{"x.y"}},
		"/callsign.test.v1.DefaultScopedService/Inherit":  {Scopes: []string{"explicit"}},
		"/callsign.test.v1.DefaultScopedService/Override": {Public: true},
		"/callsign.test.v1.TestService/Scoped":            {Scopes: []string{"resolved"}},
		"/callsign.test.v1.TestService/Public":            {Public: true},
	} {
		if r := p.get(m); r.state != ruleOK || !reflect.DeepEqual(r.rule, want) {
			t.Errorf("%s: %+v, want %+v", m, r.rule, want)
		}
	}
}

func TestPolicyOptionErrors(t *testing.T) {
	for name, o := range map[string]ServerOption{
		"method without slash":  WithRule("grpc.health.v1.Health/Check", Rule{Public: true}),
		"service with slash":    WithServiceRule("/grpc.health.v1.Health", Rule{Public: true}),
		"nil resolver":          WithRuleResolver(nil),
		"nil descriptors":       WithDescriptors(nil),
		"central bad method":    WithCentralVerification(&srvCentral{}, "Verify"),
		"skew too large":        WithSkew(MaxSkew + 1),
		"negative cache":        WithCacheSize(-1),
		"HS256":                 WithAlgorithm("HS256"),
		"nil clock":             WithClock(nil),
		"zero lifetime":         WithMaxLifetime(0),
		"negative central ttl":  WithCentralCacheFor(-1),
		"nil central verifier":  WithCentralVerification(nil),
		"negative skew":         WithSkew(-1),
		"empty service rule":    WithServiceRule("", Rule{}),
		"invalid service name":  WithServiceRule("a..b", Rule{}),
		"method name with dots": WithRule("/a.B/c.d", Rule{}),
	} {
		if _, err := NewServer(&StaticKeySource{}, WithIssuer("i"), WithAudience("a"), o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewServer(&StaticKeySource{}, WithAudience("a")); err == nil {
		t.Error("no issuer accepted")
	}
	if _, err := NewServer(&StaticKeySource{}, WithIssuer("i")); err == nil {
		t.Error("no audience accepted")
	}
	if _, err := NewServer(nil, WithIssuer("i"), WithAudience("a")); err == nil {
		t.Error("no key source accepted")
	}
	if _, err := NewServer(nil, WithIssuer("i"), WithAudience("a"), WithCentralVerification(&srvCentral{}, "/a.B/C")); err == nil {
		t.Error("no key source accepted with central verification of one method only")
	}
	if _, err := NewServer(nil, WithIssuer("i"), WithAudience("a"), WithCentralVerification(&srvCentral{})); err != nil {
		t.Errorf("central verification of every method needs no key source: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("UnaryServerInterceptor did not panic on invalid options")
		}
	}()
	UnaryServerInterceptor(nil)
}

func TestValidRule(t *testing.T) {
	many := make([]string, maxRuleScopes+1)
	for i := range many {
		many[i] = fmt.Sprintf("s%d", i)
	}
	for name, tc := range map[string]struct {
		r  Rule
		ok bool
	}{
		"empty":                  {Rule{}, true},
		"public":                 {Rule{Public: true}, true},
		"public idempotent":      {Rule{Public: true, RequireIdempotencyKey: true}, true},
		"public scopes":          {Rule{Public: true, Scopes: []string{"a"}}, false},
		"public callers":         {Rule{Public: true, Callers: []string{"a"}}, false},
		"public user":            {Rule{Public: true, RequireUser: true}, false},
		"public tenant":          {Rule{Public: true, RequireTenant: true}, false},
		"tenant without user":    {Rule{RequireTenant: true}, true},
		"empty scope":            {Rule{Scopes: []string{""}}, false},
		"scope with space":       {Rule{Scopes: []string{"a b"}}, false},
		"scope too long":         {Rule{Scopes: []string{string(make([]byte, 129))}}, false},
		"too many scopes":        {Rule{Scopes: many}, false},
		"empty caller":           {Rule{Callers: []string{""}}, false},
		"caller with space":      {Rule{Callers: []string{"a b"}}, false},
		"caller non-ASCII":       {Rule{Callers: []string{"ordérs"}}, false},
		"spiffe caller":          {Rule{Callers: []string{"spiffe://example.org/x"}}, true},
		"scope charset complete": {Rule{Scopes: []string{"aZ09._:/-"}}, true},
	} {
		if got := validRule(tc.r); got != tc.ok {
			t.Errorf("%s: validRule = %v", name, got)
		}
	}
}

// TestPolicyDynamicDescriptors reads rules from descriptors built at run time,
// where the method options hold the callsign extension either as unknown
// fields or as a dynamic message.
func TestPolicyDynamicDescriptors(t *testing.T) {
	rule := &callsignv1.MethodRule{Scopes: []string{"dyn.read"}, RequireUser: true}
	ruleBytes, err := proto.Marshal(rule)
	if err != nil {
		t.Fatal(err)
	}
	unknownOpts := &descriptorpb.MethodOptions{}
	raw := protowire.AppendTag(nil, 51701, protowire.BytesType)
	raw = protowire.AppendBytes(raw, ruleBytes)
	unknownOpts.ProtoReflect().SetUnknown(raw)

	dynOpts := &descriptorpb.MethodOptions{}
	dynExt := dynamicpb.NewExtensionType(callsignv1.E_Method.TypeDescriptor().Descriptor())
	dynMsg := dynamicpb.NewMessage(callsignv1.E_Method.TypeDescriptor().Message())
	if err := proto.Unmarshal(ruleBytes, dynMsg); err != nil {
		t.Fatal(err)
	}
	proto.SetExtension(dynOpts, dynExt, dynMsg)

	svcOpts := &descriptorpb.ServiceOptions{}
	sr, _ := proto.Marshal(&callsignv1.ServiceRule{DefaultScopes: []string{"dyn.default"}})
	svcRaw := protowire.AppendTag(nil, 51701, protowire.BytesType)
	svcOpts.ProtoReflect().SetUnknown(protowire.AppendBytes(svcRaw, sr))

	fdp := &descriptorpb.FileDescriptorProto{
		Name:    new("dyn/v1/dyn.proto"),
		Package: new("dyn.v1"),
		Syntax:  new("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: new("Msg"),
		}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    new("DynService"),
			Options: svcOpts,
			Method: []*descriptorpb.MethodDescriptorProto{
				{Name: new("Unknown"), InputType: new(".dyn.v1.Msg"), OutputType: new(".dyn.v1.Msg"), Options: unknownOpts},
				{Name: new("Dynamic"), InputType: new(".dyn.v1.Msg"), OutputType: new(".dyn.v1.Msg"), Options: dynOpts},
				{Name: new("Defaulted"), InputType: new(".dyn.v1.Msg"), OutputType: new(".dyn.v1.Msg")},
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		t.Fatal(err)
	}
	files := new(protoregistry.Files)
	if err := files.RegisterFile(fd); err != nil {
		t.Fatal(err)
	}
	p := srvPolicy(t, WithDescriptors(files))
	want := Rule{Scopes: []string{"dyn.read"}, RequireUser: true}
	for _, m := range []string{"Unknown", "Dynamic"} {
		if r := p.get("/dyn.v1.DynService/" + m); r.state != ruleOK || !reflect.DeepEqual(r.rule, want) {
			t.Errorf("%s: %v %+v", m, r.state, r.rule)
		}
	}
	if r := p.get("/dyn.v1.DynService/Defaulted"); r.state != ruleOK || !reflect.DeepEqual(r.rule, Rule{Scopes: []string{"dyn.default"}}) {
		t.Errorf("Defaulted: %v %+v", r.state, r.rule)
	}
	if r := srvPolicy(t).get("/dyn.v1.DynService/Unknown"); r.state != ruleNone {
		t.Errorf("found without WithDescriptors: %v", r.state)
	}
}

func TestPolicyCacheConcurrentAndBounded(t *testing.T) {
	p := srvPolicy(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 600 {
				if r := p.get("/callsign.test.v1.TestService/Scoped"); r.state != ruleOK {
					t.Error("Scoped not OK")
					return
				}
				p.get(fmt.Sprintf("/x.Y/M%d_%d", g, i))
			}
		})
	}
	wg.Wait()
	if n := len(*p.cache.Load()); n > maxCachedRules {
		t.Fatalf("%d rules cached, bound %d", n, maxCachedRules)
	}
	// Resolved once: the same pointer every time.
	first, second := p.get("/callsign.test.v1.TestService/Scoped"), p.get("/callsign.test.v1.TestService/Scoped")
	if first != second {
		t.Fatal("rule resolved twice")
	}
}

func TestCheckServer(t *testing.T) {
	gs := grpc.NewServer()
	testv1.RegisterTestServiceServer(gs, &srvService{})
	testv1.RegisterDefaultScopedServiceServer(gs, &srvService{})
	healthpb.RegisterHealthServer(gs, health.NewServer())
	want := []string{
		"/callsign.test.v1.TestService/BrokenRule",
		"/callsign.test.v1.TestService/NoRule",
		"/callsign.test.v1.TestService/NoRuleBidiStream",
		"/grpc.health.v1.Health/Check",
		"/grpc.health.v1.Health/List",
		"/grpc.health.v1.Health/Watch",
	}
	got := CheckServer(gs)
	if !slices.Equal(got, want) {
		t.Fatalf("CheckServer = %q\nwant %q", got, want)
	}
	got = CheckServer(gs, WithServiceRule("grpc.health.v1.Health", Rule{Public: true}),
		WithRule("/callsign.test.v1.TestService/NoRule", Rule{Scopes: []string{"test.read"}}))
	if !slices.Equal(got, []string{"/callsign.test.v1.TestService/BrokenRule", "/callsign.test.v1.TestService/NoRuleBidiStream"}) {
		t.Fatalf("with exemptions: %q", got)
	}
	s, err := NewServer(&StaticKeySource{}, WithIssuer("i"), WithAudience("a"), WithServiceRule("grpc.health.v1.Health", Rule{Public: true}))
	if err != nil {
		t.Fatal(err)
	}
	s.WarmRules(gs)
	if got := s.CheckServer(gs); len(got) != 3 {
		t.Fatalf("Server.CheckServer = %q", got)
	}
}
