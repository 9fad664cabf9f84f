package callsignv1_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// fill sets every field of m (recursively, to a bounded depth) to a non-zero value,
// so that a round trip exercises every field of the contract.
func fill(t *testing.T, m protoreflect.Message, depth int) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
			// Set only the first member of each oneof; the others are covered by
			// their own cases below.
			if fd.ContainingOneof().Fields().Get(0) != fd {
				continue
			}
		}
		switch {
		case fd.IsList():
			l := m.Mutable(fd).List()
			for range 2 {
				if fd.Kind() == protoreflect.MessageKind {
					e := l.NewElement()
					if depth > 0 {
						fill(t, e.Message(), depth-1)
					}
					l.Append(e)
				} else {
					l.Append(scalar(t, fd, i))
				}
			}
		case fd.IsMap():
			t.Fatalf("%s: maps are not used in the contract", fd.FullName())
		case fd.Kind() == protoreflect.MessageKind:
			sub := m.Mutable(fd).Message()
			if depth > 0 {
				fill(t, sub, depth-1)
			}
		default:
			m.Set(fd, scalar(t, fd, i))
		}
	}
}

func scalar(t *testing.T, fd protoreflect.FieldDescriptor, i int) protoreflect.Value {
	t.Helper()
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protoreflect.ValueOfString("v-" + string(fd.Name()))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte(`{"keys":[]}`))
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(i + 7))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(i + 7))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(i + 7))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(uint64(i + 7))
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1).Number())
	default:
		t.Fatalf("%s: unexpected kind %v", fd.FullName(), fd.Kind())
		return protoreflect.Value{}
	}
}

// TestRoundTripEveryMessage fills every message of the callsign.v1 contract and
// round-trips it through the binary and the JSON encodings.
func TestRoundTripEveryMessage(t *testing.T) {
	files := []protoreflect.FileDescriptor{
		callsignv1.File_callsign_v1_auth_proto,
		callsignv1.File_callsign_v1_admin_proto,
		callsignv1.File_callsign_v1_options_proto,
	}
	seen := 0
	for _, fd := range files {
		msgs := fd.Messages()
		for i := range msgs.Len() {
			md := msgs.Get(i)
			t.Run(string(md.FullName()), func(t *testing.T) {
				mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
				if err != nil {
					t.Fatalf("not registered: %v", err)
				}
				m := mt.New()
				fill(t, m, 2)
				msg := m.Interface()

				b, err := proto.Marshal(msg)
				if err != nil {
					t.Fatalf("marshal: %v", err)
				}
				back := mt.New().Interface()
				if err := proto.Unmarshal(b, back); err != nil {
					t.Fatalf("unmarshal: %v", err)
				}
				if !proto.Equal(msg, back) {
					t.Fatalf("binary round trip changed the message:\n%v\n%v", msg, back)
				}

				j, err := protojson.Marshal(msg)
				if err != nil {
					t.Fatalf("json marshal: %v", err)
				}
				backJSON := mt.New().Interface()
				if err := protojson.Unmarshal(j, backJSON); err != nil {
					t.Fatalf("json unmarshal: %v", err)
				}
				if !proto.Equal(msg, backJSON) {
					t.Fatalf("JSON round trip changed the message:\n%v\n%v", msg, backJSON)
				}
			})
			seen++
		}
	}
	if seen < 40 {
		t.Fatalf("only %d messages found; the contract lost messages", seen)
	}
}

// TestIssueTokenCredentialOneof round-trips each member of the credential oneof.
func TestIssueTokenCredentialOneof(t *testing.T) {
	for name, req := range map[string]*callsignv1.IssueTokenRequest{
		"assertion": {Credential: &callsignv1.IssueTokenRequest_ClientAssertion{ClientAssertion: "a.b.c"}, Audience: "billing"},
		"secret": {Credential: &callsignv1.IssueTokenRequest_ClientSecret{ClientSecret: &callsignv1.ClientSecret{AccountId: "orders", Secret: "cs_x"}},
			User: &callsignv1.UserContext{UserId: "u1", TenantId: "t1", Roles: []string{"admin"}}},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var back callsignv1.IssueTokenRequest
		if err := proto.Unmarshal(b, &back); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !proto.Equal(req, &back) {
			t.Fatalf("%s: round trip changed the request", name)
		}
	}
}

func methodRule(t *testing.T, md protoreflect.MethodDescriptor) (*callsignv1.MethodRule, bool) {
	t.Helper()
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || opts == nil || !proto.HasExtension(opts, callsignv1.E_Method) {
		return nil, false
	}
	rule, ok := proto.GetExtension(opts, callsignv1.E_Method).(*callsignv1.MethodRule)
	return rule, ok
}

// TestTestServiceRules reads the method and service options back from the
// registered descriptors of the test proto.
func TestTestServiceRules(t *testing.T) {
	sd := testv1.File_callsign_test_v1_test_proto.Services().ByName("TestService")
	if sd == nil {
		t.Fatal("TestService not registered")
	}
	svc := proto.GetExtension(sd.Options(), callsignv1.E_Service).(*callsignv1.ServiceRule)
	if svc.GetAudience() != "test" {
		t.Fatalf("service audience = %q, want test", svc.GetAudience())
	}

	type want struct {
		hasRule       bool
		public        bool
		scopes        []string
		callers       []string
		user, tenant  bool
		idempotency   bool
		client, serve bool
	}
	cases := map[string]want{
		"Public":             {hasRule: true, public: true},
		"Scoped":             {hasRule: true, scopes: []string{"test.read"}},
		"MultiScoped":        {hasRule: true, scopes: []string{"test.read", "test.write"}},
		"UserRequired":       {hasRule: true, scopes: []string{"test.read"}, user: true},
		"TenantRequired":     {hasRule: true, scopes: []string{"test.read"}, user: true, tenant: true},
		"CallersListed":      {hasRule: true, scopes: []string{"test.write"}, callers: []string{"orders", "spiffe://example.org/ns/shop/sa/gateway"}},
		"Idempotent":         {hasRule: true, scopes: []string{"test.write"}, idempotency: true},
		"BrokenRule":         {hasRule: true, public: true, scopes: []string{"test.read"}},
		"NoRule":             {},
		"ServerStream":       {hasRule: true, scopes: []string{"test.read"}, serve: true},
		"ClientStream":       {hasRule: true, scopes: []string{"test.write"}, client: true},
		"BidiStream":         {hasRule: true, scopes: []string{"test.read"}, user: true, client: true, serve: true},
		"PublicServerStream": {hasRule: true, public: true, serve: true},
		"NoRuleBidiStream":   {client: true, serve: true},
	}
	methods := sd.Methods()
	if methods.Len() != len(cases) {
		t.Fatalf("TestService has %d methods, the test knows %d", methods.Len(), len(cases))
	}
	for i := range methods.Len() {
		md := methods.Get(i)
		w, ok := cases[string(md.Name())]
		if !ok {
			t.Fatalf("unexpected method %s", md.Name())
		}
		if md.IsStreamingClient() != w.client || md.IsStreamingServer() != w.serve {
			t.Errorf("%s: streaming = %v/%v, want %v/%v", md.Name(), md.IsStreamingClient(), md.IsStreamingServer(), w.client, w.serve)
		}
		rule, has := methodRule(t, md)
		if has != w.hasRule {
			t.Errorf("%s: has rule = %v, want %v", md.Name(), has, w.hasRule)
			continue
		}
		if !has {
			continue
		}
		if rule.GetPublic() != w.public || rule.GetRequireUser() != w.user || rule.GetRequireTenant() != w.tenant ||
			rule.GetRequireIdempotencyKey() != w.idempotency || !equal(rule.GetScopes(), w.scopes) || !equal(rule.GetCallers(), w.callers) {
			t.Errorf("%s: rule = %v, want %+v", md.Name(), rule, w)
		}
	}

	// Service-level default scopes, and a method rule that replaces them.
	def := testv1.File_callsign_test_v1_test_proto.Services().ByName("DefaultScopedService")
	dsvc := proto.GetExtension(def.Options(), callsignv1.E_Service).(*callsignv1.ServiceRule)
	if !equal(dsvc.GetDefaultScopes(), []string{"test.default"}) {
		t.Errorf("default scopes = %v", dsvc.GetDefaultScopes())
	}
	if _, has := methodRule(t, def.Methods().ByName("Inherit")); has {
		t.Errorf("Inherit should carry no rule of its own")
	}
	if r, has := methodRule(t, def.Methods().ByName("Override")); !has || !r.GetPublic() {
		t.Errorf("Override should be public")
	}
}

// TestContractRules checks the rules that callsign's own services carry.
func TestContractRules(t *testing.T) {
	auth := callsignv1.File_callsign_v1_auth_proto.Services().ByName("AuthService")
	for name, check := range map[string]func(*callsignv1.MethodRule) bool{
		"IssueToken": func(r *callsignv1.MethodRule) bool { return r.GetPublic() },
		"GetKeys":    func(r *callsignv1.MethodRule) bool { return r.GetPublic() },
		"Verify": func(r *callsignv1.MethodRule) bool {
			return !r.GetPublic() && equal(r.GetScopes(), []string{"callsign.verify"})
		},
	} {
		r, has := methodRule(t, auth.Methods().ByName(protoreflect.Name(name)))
		if !has || !check(r) {
			t.Errorf("AuthService.%s: unexpected rule %v", name, r)
		}
	}
	admin := callsignv1.File_callsign_v1_admin_proto.Services().ByName("AdminService")
	for i := range admin.Methods().Len() {
		md := admin.Methods().Get(i)
		r, has := methodRule(t, md)
		if !has || r.GetPublic() || !equal(r.GetScopes(), []string{"callsign.admin"}) {
			t.Errorf("AdminService.%s: every admin RPC needs exactly scope callsign.admin, got %v", md.Name(), r)
		}
	}
}

// TestOptionsFromDynamicDescriptors reads the options from descriptors built at
// run time (as a resolver for dynamically loaded services must): the extension
// arrives as unknown fields until it is re-parsed with the extension registered.
func TestOptionsFromDynamicDescriptors(t *testing.T) {
	fdp := protodesc.ToFileDescriptorProto(testv1.File_callsign_test_v1_test_proto)
	b, err := proto.Marshal(fdp)
	if err != nil {
		t.Fatal(err)
	}
	// Parse without any extension registry: options keep the rule as unknown bytes.
	var raw descriptorpb.FileDescriptorProto
	if err := (proto.UnmarshalOptions{Resolver: (*protoregistry.Types)(nil)}).Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var scoped *descriptorpb.MethodDescriptorProto
	for _, m := range raw.GetService()[0].GetMethod() {
		if m.GetName() == "Scoped" {
			scoped = m
		}
	}
	if len(scoped.GetOptions().ProtoReflect().GetUnknown()) == 0 {
		t.Fatal("expected the rule as unknown fields without a resolver")
	}
	// Re-parse the options with the extension known.
	ob, err := proto.Marshal(scoped.GetOptions())
	if err != nil {
		t.Fatal(err)
	}
	var opts descriptorpb.MethodOptions
	if err := proto.Unmarshal(ob, &opts); err != nil {
		t.Fatal(err)
	}
	rule := proto.GetExtension(&opts, callsignv1.E_Method).(*callsignv1.MethodRule)
	if !equal(rule.GetScopes(), []string{"test.read"}) {
		t.Fatalf("rule from dynamic descriptor = %v", rule)
	}
	// And a dynamic message of the rule type decodes the same bytes.
	dyn := dynamicpb.NewMessage(callsignv1.File_callsign_v1_options_proto.Messages().ByName("MethodRule"))
	rb, _ := proto.Marshal(rule)
	if err := proto.Unmarshal(rb, dyn); err != nil {
		t.Fatal(err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
