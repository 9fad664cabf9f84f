package interceptor

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Rule says who may call a method. It mirrors the callsign.v1.MethodRule
// option of the method's .proto file: all conditions hold together.
type Rule struct {
	// Public means no credential is needed. It may not be combined with
	// Scopes, Callers, RequireUser or RequireTenant.
	Public bool
	// Scopes the caller's service token must all carry.
	Scopes []string
	// Callers lists the service ids allowed to call; empty means any.
	Callers []string
	// RequireUser requires a valid user-context token.
	RequireUser bool
	// RequireTenant requires a tenant from verified claims.
	RequireTenant bool
	// RequireIdempotencyKey requires exactly one idempotency-key value.
	RequireIdempotencyKey bool
}

func (r Rule) clone() Rule {
	r.Scopes = slices.Clone(r.Scopes)
	r.Callers = slices.Clone(r.Callers)
	return r
}

// RuleFromProto converts the callsign.v1.method option of a method.
func RuleFromProto(m *callsignv1.MethodRule) Rule {
	return Rule{
		Public:                m.GetPublic(),
		Scopes:                slices.Clone(m.GetScopes()),
		Callers:               slices.Clone(m.GetCallers()),
		RequireUser:           m.GetRequireUser(),
		RequireTenant:         m.GetRequireTenant(),
		RequireIdempotencyKey: m.GetRequireIdempotencyKey(),
	}
}

// RuleResolver supplies rules for methods, for example from descriptors kept
// outside the protobuf registry. ResolveRule returns false when it knows no
// rule for the method, and the next source is asked.
type RuleResolver interface {
	ResolveRule(fullMethod string) (Rule, bool)
}

// RuleResolverFunc adapts a function to [RuleResolver].
type RuleResolverFunc func(fullMethod string) (Rule, bool)

// ResolveRule calls f.
func (f RuleResolverFunc) ResolveRule(fullMethod string) (Rule, bool) { return f(fullMethod) }

// DescriptorResolver finds descriptors by full name. [protoregistry.Files]
// satisfies it.
//
// [protoregistry.Files]: https://pkg.go.dev/google.golang.org/protobuf/reflect/protoregistry#Files
type DescriptorResolver interface {
	FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error)
}

// Limits on a rule (callsign.v1.MethodRule).
const (
	maxRuleScopes  = 32
	maxScopeLength = 128
	maxRuleCallers = 64
	maxCallerLen   = 2048
	// maxCachedRules bounds the resolved-rule cache: a server with an unknown
	// service handler sees method names chosen by callers.
	maxCachedRules = 4096
)

// ruleState is the outcome of resolving a method's rule.
type ruleState uint8

const (
	ruleNone    ruleState = iota // no rule: NO_POLICY
	ruleOK                       // a usable rule
	ruleInvalid                  // a contradictory or malformed rule: POLICY_INVALID
)

// resolvedRule is a rule checked once; immutable after resolution.
type resolvedRule struct {
	state   ruleState
	rule    Rule
	central bool // verify centrally
}

// needsCredential reports whether a call must carry a service token. Only a
// valid public rule lets a call through without one.
func (r *resolvedRule) needsCredential() bool {
	return r.state != ruleOK || !r.rule.Public
}

// policy resolves and caches rules per full method name. The read path is one
// atomic load and one map lookup; misses copy the map (copy-on-write).
type policy struct {
	explicit     map[string]Rule
	serviceRules map[string]Rule
	resolvers    []RuleResolver
	descriptors  []DescriptorResolver
	centralAll   bool
	centralFor   map[string]bool

	cache atomic.Pointer[map[string]*resolvedRule]
	mu    sync.Mutex // serialises writers
}

func newPolicy(c *serverConfig) *policy {
	p := &policy{
		explicit:     c.rules,
		serviceRules: c.serviceRules,
		resolvers:    c.resolvers,
		descriptors:  c.descriptors,
		centralAll:   c.central != nil && c.centralAll,
		centralFor:   c.centralFor,
	}
	empty := map[string]*resolvedRule{}
	p.cache.Store(&empty)
	return p
}

// get returns the resolved rule of fullMethod.
func (p *policy) get(fullMethod string) *resolvedRule {
	if r, ok := (*p.cache.Load())[fullMethod]; ok {
		return r
	}
	r := p.resolve(fullMethod)
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.cache.Load()
	if cached, ok := old[fullMethod]; ok {
		return cached
	}
	if len(old) >= maxCachedRules {
		return r
	}
	next := make(map[string]*resolvedRule, len(old)+1)
	maps.Copy(next, old)
	next[fullMethod] = r
	p.cache.Store(&next)
	return r
}

func (p *policy) resolve(fullMethod string) *resolvedRule {
	rule, found := p.lookup(fullMethod)
	r := &resolvedRule{central: p.centralAll || p.centralFor[fullMethod]}
	switch {
	case !found:
		r.state = ruleNone
	case !validRule(rule):
		r.state = ruleInvalid
	default:
		r.state = ruleOK
		r.rule = rule
	}
	return r
}

// lookup finds the rule of fullMethod: explicit method rules, explicit service
// rules, resolvers, then descriptors (the method option, else the service's
// default_scopes).
func (p *policy) lookup(fullMethod string) (Rule, bool) {
	svc, method, ok := splitMethod(fullMethod)
	if !ok {
		return Rule{}, false
	}
	if r, ok := p.explicit[fullMethod]; ok {
		return r, true
	}
	if r, ok := p.serviceRules[svc]; ok {
		return r, true
	}
	for _, res := range p.resolvers {
		if r, ok := res.ResolveRule(fullMethod); ok {
			return r.clone(), true
		}
	}
	for _, d := range p.descriptors {
		if r, ok := ruleFromDescriptors(d, svc, method); ok {
			return r, true
		}
	}
	return ruleFromDescriptors(protoregistry.GlobalFiles, svc, method)
}

// splitMethod splits "/package.Service/Method".
func splitMethod(fullMethod string) (service, method string, ok bool) {
	if !strings.HasPrefix(fullMethod, "/") {
		return "", "", false
	}
	service, method, ok = strings.Cut(fullMethod[1:], "/")
	if !ok || service == "" || method == "" || strings.ContainsRune(method, '/') {
		return "", "", false
	}
	if !protoreflect.FullName(service).IsValid() || !protoreflect.Name(method).IsValid() {
		return "", "", false
	}
	return service, method, true
}

func ruleFromDescriptors(d DescriptorResolver, service, method string) (Rule, bool) {
	desc, err := d.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return Rule{}, false
	}
	sd, ok := desc.(protoreflect.ServiceDescriptor)
	if !ok {
		return Rule{}, false
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return Rule{}, false
	}
	if mr, ok := extensionRule[*callsignv1.MethodRule](md.Options(), callsignv1.E_Method); ok {
		return RuleFromProto(mr), true
	}
	if sr, ok := extensionRule[*callsignv1.ServiceRule](sd.Options(), callsignv1.E_Service); ok && len(sr.GetDefaultScopes()) > 0 {
		return Rule{Scopes: slices.Clone(sr.GetDefaultScopes())}, true
	}
	return Rule{}, false
}

// extensionRule reads a message-typed extension from descriptor options,
// generically: the options may hold it as the generated type, as a dynamic
// message (descriptors built at run time with their own extension types), or
// only as unknown fields (options parsed without the extension registered).
// The value found is always converted to the generated type C through its wire
// form.
func extensionRule[C proto.Message](opts proto.Message, ext protoreflect.ExtensionType) (C, bool) {
	var zero C
	if opts == nil || !opts.ProtoReflect().IsValid() {
		return zero, false
	}
	num := ext.TypeDescriptor().Number()
	var found proto.Message
	proto.RangeExtensions(opts, func(xt protoreflect.ExtensionType, v any) bool {
		if xt.TypeDescriptor().Number() != num {
			return true
		}
		found, _ = v.(proto.Message)
		return false
	})
	if found != nil {
		if c, ok := found.(C); ok {
			return c, true
		}
		return convertMessage[C](zero, found)
	}
	unknown := opts.ProtoReflect().GetUnknown()
	if len(unknown) == 0 {
		return zero, false
	}
	// Re-read the unknown fields with a resolver that knows the extension.
	reparsed := opts.ProtoReflect().Type().New().Interface()
	types := new(protoregistry.Types)
	if err := types.RegisterExtension(ext); err != nil {
		return zero, false
	}
	if err := (proto.UnmarshalOptions{Resolver: types}).Unmarshal(unknown, reparsed); err != nil {
		return zero, false
	}
	if !proto.HasExtension(reparsed, ext) {
		return zero, false
	}
	c, ok := proto.GetExtension(reparsed, ext).(C)
	return c, ok
}

func convertMessage[C proto.Message](zero C, m proto.Message) (C, bool) {
	b, err := proto.Marshal(m)
	if err != nil {
		return zero, false
	}
	out, ok := zero.ProtoReflect().Type().New().Interface().(C)
	if !ok {
		return zero, false
	}
	if err := proto.Unmarshal(b, out); err != nil {
		return zero, false
	}
	return out, true
}

// validRule reports whether a rule is consistent and within the limits of
// callsign.v1.MethodRule.
func validRule(r Rule) bool {
	if r.Public && (len(r.Scopes) > 0 || len(r.Callers) > 0 || r.RequireUser || r.RequireTenant) {
		return false
	}
	if len(r.Scopes) > maxRuleScopes || len(r.Callers) > maxRuleCallers {
		return false
	}
	for _, s := range r.Scopes {
		if !validScope(s) {
			return false
		}
	}
	for _, c := range r.Callers {
		if c == "" || len(c) > maxCallerLen {
			return false
		}
		for i := range len(c) {
			if c[i] <= ' ' || c[i] > '~' {
				return false
			}
		}
	}
	return true
}

func validScope(s string) bool {
	if len(s) == 0 || len(s) > maxScopeLength {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// CheckServer returns, sorted, the full name of every method registered on gs
// that callsign would refuse for lack of a usable rule: no rule at all
// (NO_POLICY) or a broken one (POLICY_INVALID). Rules are looked up as the
// server built from opts would look them up. Call it at start-up and refuse
// to serve when the list is not empty; exempt health or reflection explicitly
// with [WithRule] or [WithServiceRule].
func CheckServer(gs *grpc.Server, opts ...ServerOption) []string {
	c := defaultServerConfig()
	for _, o := range opts {
		o.applyServer(&c)
	}
	return newPolicy(&c).check(gs)
}

// CheckServer is [CheckServer] with the rules of s.
func (s *Server) CheckServer(gs *grpc.Server) []string {
	return s.policy.check(gs)
}

func (p *policy) check(gs *grpc.Server) []string {
	var missing []string
	for svc, info := range gs.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if p.get(full).state != ruleOK {
				missing = append(missing, full)
			}
		}
	}
	sort.Strings(missing)
	return missing
}
