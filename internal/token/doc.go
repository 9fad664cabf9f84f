// Package token is callsign's strict JOSE core, shared by the verifier
// (interceptor) and the issuer (authsvc): it parses compact JWS tokens under the
// rules of DESIGN.md §5, verifies their signatures against a validated key set,
// checks their claims, and signs new tokens. Users never import it.
//
// Every function here is safe for concurrent use. Nothing in an error's text
// repeats the input: errors carry a [callsignv1.Reason] and a fixed message.
//
// Nothing here is given to jwx (or any JOSE library) for verification: the
// token is split, decoded and checked by hand, with a small strict JSON scanner
// instead of encoding/json, so that the profile below is enforced exactly and
// a cold verification costs little more than the signature check itself.
//
// # Verification
//
// [Verify] runs the steps in the order of DESIGN.md §5, cheapest first; a
// verifier that refreshes its key set on an unknown kid runs them itself:
//
//  1. [Parse]: at most [MaxTokenSize] bytes of [A-Za-z0-9_.-], exactly two
//     dots, three non-empty segments.
//  2. [Parse]: strict base64url on every segment (no padding, no other
//     alphabet, canonical trailing bits); the header a JSON object holding
//     exactly alg, kid and typ, all strings, without duplicates; alg equal to
//     the pinned [Algorithm]; kid valid ([ValidKID]); typ the expected [Type].
//  3. The key by kid ([KeySet.Lookup]).
//  4. [Parsed.VerifySignature] over the signing input as received.
//  5. [Parsed.Claims]: shape, issuer, audience, lifetime, time window.
//
// # Reasons
//
// Failures are [*Error] values; [ReasonOf] extracts the reason.
//
//   - REASON_TOKEN_MALFORMED: anything structural. The size, charset or
//     segments; the encoding; the header (an unknown member such as crit, b64,
//     zip, jwk, jku, x5u, x5c or cty, a duplicate, a missing member, a non-string
//     value, another alg including "none" in any spelling, a typ that is not a
//     callsign type); the claims' shape (see [Parsed.Claims]).
//   - REASON_TYPE_MISMATCH: typ names the other callsign type (a user token
//     where a service token is expected, or the reverse).
//   - REASON_KEY_UNKNOWN: the kid is not in the key set.
//   - REASON_SIGNATURE_INVALID: the signature does not verify, is not 64
//     bytes (DER-encoded ECDSA is refused), has r or s outside [1, n-1], or the
//     key is not of the pinned algorithm.
//   - REASON_ISSUER_MISMATCH, REASON_AUDIENCE_MISMATCH: iss or aud differ from
//     the expected values (byte for byte).
//   - REASON_LIFETIME_TOO_LONG: exp-iat exceeds the maximum lifetime.
//   - REASON_TOKEN_NOT_YET_VALID: iat or nbf after now+skew.
//   - REASON_TOKEN_EXPIRED: exp not after now-skew.
//
// # Profile decisions
//
//   - aud is a single string. An array, even of one element equal to the
//     audience, is malformed: callsign never issues one, and accepting arrays
//     invites a token addressed to several services. (Client assertions, which
//     come from RFC 7523 clients, may carry an array of exactly one string.)
//   - exp, iat and nbf are integers written with digits only, from 1 to
//     [MaxNumericDate] (year 9999). Strings, fractions, exponents, signs and
//     zero are malformed; exp must be after iat and after nbf.
//   - Service tokens carry no act and no roles; user tokens carry tenant_id,
//     act exactly {"sub": "<service>"} and roles (possibly empty), and no
//     scope. Both refuse the other's members as malformed.
//   - sub, act.sub, tenant_id and roles are UTF-8 text without control
//     characters, bounded ([MaxSubjectLength], [MaxTextLength]); jti is 16 to
//     128 characters of [A-Za-z0-9_-]; scope is 1 to [MaxScopes] scopes of
//     [A-Za-z0-9._:/-]{1,128} separated by single spaces.
//   - Claims JSON is strict at every depth: no duplicate members (compared
//     after unescaping), valid UTF-8 without lone surrogates, at most 8 levels
//     and 64 members per object. Unknown claims are ignored.
//   - JSON whitespace inside the header and payload is JSON and is accepted;
//     the signature covers it.
//   - ES256 signatures (r, n-s) are accepted as ECDSA allows: nothing keys on
//     the signature bytes. Every other re-encoding of a signed token is refused
//     (strict base64url, exact header), so one token has one accepted form.
//
// # Key sets
//
// [ParseJWKS] accepts only public keys of the pinned algorithm, each with a
// unique kid and an alg; Ed25519 keys must be points of the curve and not of
// small order (such keys make forgeries possible); P-256 keys must be on the
// curve. Any invalid key, any private member, more than [MaxKeys] keys or more
// than [MaxJWKSSize] bytes refuse the whole set. Its errors wrap [ErrKeySet].
// [NewKeySet] applies the same rules to keys in memory; [MarshalJWKS] writes
// what [ParseJWKS] reads, and what any JOSE library reads.
//
// # Signing and assertions
//
// [Signer.Sign] writes the header {"alg","kid","typ"} and nothing else, refuses
// claims that [Parsed.Claims] would find malformed, and signs with Ed25519 or
// ES256 (raw r||s) through crypto directly; the tokens verify with jwx and
// other JOSE libraries. [NewSigner] validates a signing key fully once, where
// keys are loaded. [ParseAssertion], [Parsed.AssertionClaims] and
// [SignAssertion] do the same for private_key_jwt client assertions (RFC 7523):
// EdDSA only, header alg, kid and optionally typ "JWT". An issuer maps every
// assertion failure to one answer; the reasons here say what failed, for logs.
package token
