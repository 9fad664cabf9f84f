package token

import "encoding/base64"

// b64 is strict base64url without padding: no '=', no '+' or '/', and the
// unused bits of the last character must be zero (canonical encoding).
var b64 = base64.RawURLEncoding.Strict()

// maxHeaderSize bounds the decoded header: {"alg":"EdDSA","kid":<128>,"typ":"user+jwt"}
// needs about 180 bytes; the rest is room for escapes and whitespace.
const maxHeaderSize = 512

// Header members, as bits.
const (
	hdrAlg = 1 << iota
	hdrKID
	hdrTyp
)

type header struct {
	alg, kid, typ []byte
	has           int
}

// split performs step 1 of DESIGN.md §5 on raw: size, charset, exactly two
// dots, three non-empty segments. It returns the positions of the dots.
func split(raw string) (dot1, dot2 int, ok bool) {
	if len(raw) == 0 || len(raw) > MaxTokenSize {
		return 0, 0, false
	}
	dot1, dot2 = -1, -1
	for i := range len(raw) {
		c := raw[i]
		if !compactChars[c] {
			return 0, 0, false
		}
		if c == '.' {
			switch {
			case dot1 < 0:
				dot1 = i
			case dot2 < 0:
				dot2 = i
			default:
				return 0, 0, false
			}
		}
	}
	if dot1 <= 0 || dot2 <= dot1+1 || dot2 == len(raw)-1 {
		return 0, 0, false
	}
	return dot1, dot2, true
}

// parseHeader decodes the header segment seg (already charset-checked) into
// buf and reads it: a JSON object whose members are among alg, kid and typ,
// each once, each a string. Presence and values are checked by the caller.
func parseHeader(seg string, buf *[maxHeaderSize]byte) (header, bool) {
	var h header
	if len(seg) > b64.EncodedLen(maxHeaderSize) {
		return h, false
	}
	var src [(maxHeaderSize + 2) / 3 * 4]byte
	n, err := b64.Decode(buf[:], src[:copy(src[:], seg)])
	if err != nil {
		return h, false
	}
	s := scanner{b: buf[:n]}
	if !s.consume('{') {
		return h, false
	}
	for first := true; ; first = false {
		name, done, ok := s.member(first)
		if !ok {
			return h, false
		}
		if done {
			break
		}
		var bit int
		switch string(name) {
		case "alg":
			bit = hdrAlg
		case "kid":
			bit = hdrKID
		case "typ":
			bit = hdrTyp
		default:
			// crit, b64, zip, jwk, jku, x5u, x5c, cty, ...: not in the profile.
			return h, false
		}
		v, ok := s.str()
		if !ok || h.has&bit != 0 {
			return h, false
		}
		h.has |= bit
		switch bit {
		case hdrAlg:
			h.alg = v
		case hdrKID:
			h.kid = v
		default:
			h.typ = v
		}
	}
	return h, s.end()
}

// Parse performs steps 1 and 2 of DESIGN.md §5 on raw (the token without the
// "Bearer " prefix). alg is the pinned algorithm; typ the expected type.
//
// The header must hold exactly alg, kid and typ, all strings; alg must equal
// alg exactly (so "none" in any spelling, and every other algorithm, is
// refused) and kid must be 1 to [MaxKIDLength] characters of [A-Za-z0-9._-].
// Every failure is REASON_TOKEN_MALFORMED, except a typ naming the other
// callsign type (a user token where a service token is expected, or the
// reverse), which is REASON_TYPE_MISMATCH; a typ that names no callsign type
// at all (such as "JWT") is malformed. An unsupported alg argument makes every
// token malformed; an unknown typ argument makes every token a type mismatch.
//
// The payload and the signature are decoded but not examined.
func Parse(raw string, alg Algorithm, typ Type) (*Parsed, error) {
	if !alg.Valid() {
		return nil, fail(reasonMalformed)
	}
	want := typ.String()
	if want == "" {
		return nil, fail(reasonType)
	}
	dot1, dot2, ok := split(raw)
	if !ok {
		return nil, fail(reasonMalformed)
	}
	var buf [maxHeaderSize]byte
	h, ok := parseHeader(raw[:dot1], &buf)
	if !ok || h.has != hdrAlg|hdrKID|hdrTyp || string(h.alg) != string(alg) || !validKID(h.kid) {
		return nil, fail(reasonMalformed)
	}
	if string(h.typ) != want {
		if string(h.typ) == typService || string(h.typ) == typUser {
			return nil, fail(reasonType)
		}
		return nil, fail(reasonMalformed)
	}
	return decodeRest(raw, dot1, dot2, string(h.kid), typ, alg)
}

// ParseAssertion performs the structural checks of [Parse] on a client
// assertion: header exactly alg (EdDSA), kid and optionally typ "JWT". The
// returned token has a zero Type. Every failure is REASON_TOKEN_MALFORMED.
func ParseAssertion(raw string) (*Parsed, error) {
	dot1, dot2, ok := split(raw)
	if !ok {
		return nil, fail(reasonMalformed)
	}
	var buf [maxHeaderSize]byte
	h, ok := parseHeader(raw[:dot1], &buf)
	if !ok || h.has&(hdrAlg|hdrKID) != hdrAlg|hdrKID || string(h.alg) != string(EdDSA) || !validKID(h.kid) ||
		(h.has&hdrTyp != 0 && string(h.typ) != typAssertion) {
		return nil, fail(reasonMalformed)
	}
	return decodeRest(raw, dot1, dot2, string(h.kid), 0, EdDSA)
}

// decodeRest decodes the payload and the signature of a token whose header
// passed, into one buffer that also holds the signing input.
func decodeRest(raw string, dot1, dot2 int, kid string, typ Type, alg Algorithm) (*Parsed, error) {
	payloadSeg, sigSeg := raw[dot1+1:dot2], raw[dot2+1:]
	plen, slen := b64.DecodedLen(len(payloadSeg)), b64.DecodedLen(len(sigSeg))
	buf := make([]byte, len(raw)+plen+slen)
	copy(buf, raw)
	out := buf[len(raw):]
	pn, err := b64.Decode(out, buf[dot1+1:dot2])
	if err != nil {
		return nil, fail(reasonMalformed)
	}
	sn, err := b64.Decode(out[plen:], buf[dot2+1:len(raw)])
	if err != nil {
		return nil, fail(reasonMalformed)
	}
	return &Parsed{
		KID:       kid,
		Type:      typ,
		alg:       alg,
		message:   buf[:dot2:dot2],
		payload:   out[:pn:pn],
		signature: out[plen : plen+sn : plen+sn],
	}, nil
}
