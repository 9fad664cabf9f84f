package token

import "unicode/utf8"

// Character classes of the profile, as lookup tables.
var (
	// compactChars: base64url and the dot, the only bytes of a compact token.
	compactChars = charTable("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
	// kidChars: [A-Za-z0-9._-].
	kidChars = compactChars
	// idChars: [A-Za-z0-9_-] (jti).
	idChars = charTable("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
	// scopeChars: [A-Za-z0-9._:/-].
	scopeChars = charTable("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:/-")
)

func charTable(chars string) (t [256]bool) {
	for i := range len(chars) {
		t[chars[i]] = true
	}
	return t
}

func allIn[T ~string | ~[]byte](t *[256]bool, v T) bool {
	for i := range len(v) {
		if !t[v[i]] {
			return false
		}
	}
	return true
}

// ValidKID reports whether kid is a valid key id: 1 to [MaxKIDLength]
// characters of [A-Za-z0-9._-].
func ValidKID(kid string) bool { return validKID(kid) }

func validKID[T ~string | ~[]byte](kid T) bool {
	return len(kid) > 0 && len(kid) <= MaxKIDLength && allIn(&kidChars, kid)
}

// validID checks a jti: 16 to 128 characters of [A-Za-z0-9_-].
func validID[T ~string | ~[]byte](id T) bool {
	return len(id) >= MinIDLength && len(id) <= MaxIDLength && allIn(&idChars, id)
}

// ValidScope reports whether s is a valid scope: 1 to [MaxScopeLength]
// characters of [A-Za-z0-9._:/-].
func ValidScope(s string) bool { return validScope(s) }

func validScope[T ~string | ~[]byte](s T) bool {
	return len(s) > 0 && len(s) <= MaxScopeLength && allIn(&scopeChars, s)
}

// validScopeList checks a scope claim: at most MaxScopes valid scopes, each
// separated from the next by exactly one space, no leading or trailing space.
// It returns the number of scopes.
func validScopeList[T ~string | ~[]byte](v T) (int, bool) {
	n, start := 0, 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) && v[i] != ' ' {
			continue
		}
		if !validScope(v[start:i]) {
			return 0, false
		}
		n++
		if n > MaxScopes {
			return 0, false
		}
		start = i + 1
	}
	return n, true
}

// validText checks a free-form claim value (sub, act.sub, tenant_id, a role,
// an issuer or audience to sign): 1 to max bytes of valid UTF-8 without
// control characters (C0, DEL, C1), which would otherwise reach logs.
func validText[T ~string | ~[]byte](v T, maxLen int) bool {
	if len(v) == 0 || len(v) > maxLen {
		return false
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(v[i:min(i+utf8.UTFMax, len(v))]))
		if r == utf8.RuneError || (r >= 0x80 && r <= 0x9f) {
			return false
		}
		i += size
	}
	return true
}

// numericDate parses the text of a JSON number as a NumericDate of the
// profile: an integer written with digits only (no sign, fraction or
// exponent), from 1 to MaxNumericDate.
func numericDate(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 12 || v[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= MaxNumericDate
}
