package token

import (
	"math"
	"strings"
	"time"
)

// Claim members, as bits.
const (
	clIss = 1 << iota
	clSub
	clAud
	clExp
	clIat
	clNbf
	clJti
	clScope
	clTenant
	clAct
	clRoles
)

const clRequired = clIss | clSub | clAud | clExp | clIat | clJti

// rawClaims are the members of a payload, read but not yet checked against
// the profile (beyond their JSON types). Byte slices alias the payload.
type rawClaims struct {
	has                int
	iss, sub, aud, jti []byte
	scope, tenant, act []byte
	exp, iat, nbf      int64
	roles              [][]byte
}

// parse reads payload: a strict JSON object (see scanner). The registered
// claims must have their JSON types: strings, NumericDates (see
// numericDate), act an object holding exactly a string sub, roles an array of
// at most MaxRoles strings. Unknown members are ignored but must be valid,
// duplicate-free JSON within the depth bound. With assertion set, only the
// claims of RFC 7523 are registered and aud may also be an array of exactly
// one string.
func (c *rawClaims) parse(payload []byte, assertion bool) bool {
	s := scanner{b: payload}
	if !s.consume('{') {
		return false
	}
	var unknownBuf [4][]byte
	unknown := names(unknownBuf[:0])
	count := 0
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return false
		}
		if done {
			break
		}
		if count++; count > maxJSONMembers {
			return false
		}
		bit := claimBit(name, assertion)
		if bit == 0 {
			if unknown, ok = unknown.add(name); !ok || !s.value(2) {
				return false
			}
			continue
		}
		if c.has&bit != 0 {
			return false
		}
		c.has |= bit
		if !c.member(&s, bit, assertion) {
			return false
		}
	}
	return s.end()
}

func claimBit(name []byte, assertion bool) int {
	switch string(name) {
	case "iss":
		return clIss
	case "sub":
		return clSub
	case "aud":
		return clAud
	case "exp":
		return clExp
	case "iat":
		return clIat
	case "nbf":
		return clNbf
	case "jti":
		return clJti
	}
	if assertion {
		return 0
	}
	switch string(name) {
	case "scope":
		return clScope
	case "tenant_id":
		return clTenant
	case "act":
		return clAct
	case "roles":
		return clRoles
	}
	return 0
}

// member reads the value of the registered claim bit.
func (c *rawClaims) member(s *scanner, bit int, assertion bool) bool {
	var ok bool
	switch bit {
	case clIss:
		c.iss, ok = s.str()
	case clSub:
		c.sub, ok = s.str()
	case clJti:
		c.jti, ok = s.str()
	case clScope:
		c.scope, ok = s.str()
	case clTenant:
		c.tenant, ok = s.str()
	case clAud:
		if assertion && s.consume('[') {
			// RFC 7523 allows an array; only one of exactly one string is taken.
			c.aud, ok = s.str()
			return ok && s.consume(']')
		}
		c.aud, ok = s.str()
	case clExp, clIat, clNbf:
		var v []byte
		if v, ok = s.number(); !ok {
			return false
		}
		var n int64
		if n, ok = numericDate(v); !ok {
			return false
		}
		switch bit {
		case clExp:
			c.exp = n
		case clIat:
			c.iat = n
		default:
			c.nbf = n
		}
	case clAct:
		// Exactly {"sub": "<service>"}.
		if !s.consume('{') {
			return false
		}
		name, done, ok := s.member(true)
		if !ok || done || string(name) != "sub" {
			return false
		}
		if c.act, ok = s.str(); !ok {
			return false
		}
		_, done, ok = s.member(false)
		return ok && done
	case clRoles:
		if !s.consume('[') {
			return false
		}
		for first := true; ; first = false {
			done, ok := s.element(first)
			if !ok {
				return false
			}
			if done {
				return true
			}
			if len(c.roles) == MaxRoles {
				return false
			}
			v, ok := s.str()
			if !ok {
				return false
			}
			c.roles = append(c.roles, v)
		}
	}
	return ok
}

// defaulted returns d, or def when d is not positive.
func defaulted(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

// Claims decodes and checks the claims of p against exp (step 5 of DESIGN.md
// §5), in this order, cheapest first:
//
//  1. exp.Type equals the type p was parsed with, else REASON_TYPE_MISMATCH.
//  2. Shape, all REASON_TOKEN_MALFORMED: the payload is a JSON object without
//     duplicate members at any depth, at most 8 levels deep and 64 members per
//     object; iss, sub, aud, exp, iat and jti are present; iss, sub, aud, jti,
//     scope and tenant_id are strings; aud is a single string (an array, even of
//     one element, is malformed: callsign never issues one); exp, iat and nbf
//     are integers written with digits only, from 1 to [MaxNumericDate] (a
//     string, fraction, exponent, sign, zero or a date after year 9999 is
//     malformed); sub is 1 to [MaxSubjectLength] bytes of UTF-8 without
//     control characters; jti is 16 to 128 characters of [A-Za-z0-9_-]; scope,
//     when present, is 1 to [MaxScopes] scopes of [A-Za-z0-9._:/-]{1,128}
//     separated by single spaces; tenant_id, when present, is 1 to
//     [MaxTextLength] bytes of text. A service token carries no act and no
//     roles. A user token carries tenant_id, act exactly {"sub": "<service>"}
//     and roles, an array of at most [MaxRoles] strings of 1 to
//     [MaxTextLength] bytes (possibly empty), and no scope. exp is after iat
//     and after nbf.
//  3. iss equals exp.Issuer exactly, else REASON_ISSUER_MISMATCH.
//  4. aud equals exp.Audience exactly, else REASON_AUDIENCE_MISMATCH.
//  5. exp-iat ≤ exp.MaxLifetime, else REASON_LIFETIME_TOO_LONG.
//  6. iat ≤ now+skew and nbf ≤ now+skew, else REASON_TOKEN_NOT_YET_VALID.
//  7. now-skew < exp, else REASON_TOKEN_EXPIRED.
//
// An empty exp.Issuer or exp.Audience matches nothing. Skew defaults to
// [DefaultSkew] and MaxLifetime to [DefaultMaxLifetime] when zero or negative.
// Unknown claims are ignored. Claims does not verify the signature: call
// [Parsed.VerifySignature] first.
func (p *Parsed) Claims(exp Expect) (Claims, error) {
	if p == nil || p.Type == 0 {
		return Claims{}, fail(reasonMalformed)
	}
	if exp.Type != p.Type {
		return Claims{}, fail(reasonType)
	}
	var c rawClaims
	if !c.parse(p.payload, false) || c.has&clRequired != clRequired {
		return Claims{}, fail(reasonMalformed)
	}
	scopes, ok := c.checkShape(p.Type)
	if !ok {
		return Claims{}, fail(reasonMalformed)
	}
	if exp.Issuer == "" || string(c.iss) != exp.Issuer {
		return Claims{}, fail(reasonIssuer)
	}
	if exp.Audience == "" || string(c.aud) != exp.Audience {
		return Claims{}, fail(reasonAudience)
	}
	if r := checkTimes(c.exp, c.iat, c.nbf, exp.Now, defaulted(exp.Skew, DefaultSkew), defaulted(exp.MaxLifetime, DefaultMaxLifetime)); r != 0 {
		return Claims{}, fail(r)
	}
	out := Claims{
		Type:     p.Type,
		Issuer:   exp.Issuer,
		Subject:  string(c.sub),
		Audience: exp.Audience,
		Expiry:   unix(c.exp),
		IssuedAt: unix(c.iat),
		ID:       string(c.jti),
	}
	if c.has&clNbf != 0 {
		out.NotBefore = unix(c.nbf)
	}
	if c.has&clTenant != 0 {
		out.TenantID = string(c.tenant)
	}
	if scopes > 0 {
		out.Scopes = strings.SplitN(string(c.scope), " ", scopes)
	}
	if p.Type == TypeUser {
		out.Actor = string(c.act)
		if len(c.roles) > 0 {
			out.Roles = make([]string, len(c.roles))
			for i, r := range c.roles {
				out.Roles[i] = string(r)
			}
		}
	}
	return out, nil
}

// checkShape checks the values of c against the profile of typ (step 2 of
// [Parsed.Claims]) and returns the number of scopes.
func (c *rawClaims) checkShape(typ Type) (scopes int, ok bool) {
	if !validText(c.sub, MaxSubjectLength) || !validID(c.jti) {
		return 0, false
	}
	if c.exp <= c.iat || (c.has&clNbf != 0 && c.exp <= c.nbf) {
		return 0, false
	}
	if c.has&clTenant != 0 && !validText(c.tenant, MaxTextLength) {
		return 0, false
	}
	if c.has&clScope != 0 {
		if scopes, ok = validScopeList(c.scope); !ok {
			return 0, false
		}
	}
	switch typ {
	case TypeService:
		return scopes, c.has&(clAct|clRoles) == 0
	case TypeUser:
		const need = clTenant | clAct | clRoles
		if c.has&need != need || c.has&clScope != 0 || !validText(c.act, MaxSubjectLength) {
			return 0, false
		}
		for _, r := range c.roles {
			if !validText(r, MaxTextLength) {
				return 0, false
			}
		}
		return 0, true
	default:
		return 0, false
	}
}

// checkTimes applies steps 5 to 7 of [Parsed.Claims] (nbf zero when absent)
// and returns the reason of the first failure, or zero.
func checkTimes(exp, iat, nbf int64, now time.Time, skew, maxLifetime time.Duration) reason {
	if life := exp - iat; life > int64(math.MaxInt64/time.Second) || time.Duration(life)*time.Second > maxLifetime {
		return reasonLifetime
	}
	late := now.Add(skew)
	if unix(iat).After(late) || (nbf != 0 && unix(nbf).After(late)) {
		return reasonNotYetValid
	}
	if !unix(exp).After(now.Add(-skew)) {
		return reasonExpired
	}
	return 0
}
