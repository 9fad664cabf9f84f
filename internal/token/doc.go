// Package token is callsign's strict JOSE core, shared by the verifier
// (interceptor) and the issuer (authsvc): it parses compact JWS tokens under the
// rules of DESIGN.md §5, verifies their signatures against a validated key set,
// checks their claims, and signs new tokens. Users never import it.
//
// Every function here is safe for concurrent use. Nothing in an error's text
// repeats the input: errors carry a [callsignv1.Reason] and a fixed message.
package token
