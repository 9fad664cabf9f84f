package authsvc

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	callsignv1 "github.com/callsign-dev/callsign/gen/callsign/v1"
)

// Request validators. Each checks every field of a request against the limits
// of the proto comments and returns false on the first violation; the caller
// answers InvalidArgument REQUEST_INVALID with a fixed message. They run before
// anything reads or writes storage.

// validSize refuses a request larger than MaxRequestSize, whatever the
// transport's own limit.
func validSize(m proto.Message) bool {
	return proto.Size(m) <= MaxRequestSize
}

// minLifetime is the shortest lifetime a request may ask for.
const minLifetime = 10 * time.Second

func validIssueTokenRequest(r *callsignv1.IssueTokenRequest) bool {
	if r == nil || !validSize(r) {
		return false
	}
	switch c := r.GetCredential().(type) {
	case *callsignv1.IssueTokenRequest_ClientAssertion:
		if !validCompactJWS(c.ClientAssertion) {
			return false
		}
	case *callsignv1.IssueTokenRequest_ClientSecret:
		if c.ClientSecret == nil || !validServiceID(c.ClientSecret.GetAccountId()) || !validSecretText(c.ClientSecret.GetSecret()) {
			return false
		}
	default:
		return false
	}
	if r.GetLifetime() != nil && !validLifetime(r.GetLifetime()) {
		return false
	}
	if u := r.GetUser(); u != nil {
		// A user-context token: no audience, scopes or service tenant.
		return r.GetAudience() == "" && len(r.GetScopes()) == 0 && r.GetTenantId() == "" &&
			validUserID(u.GetUserId()) && validUserID(u.GetTenantId()) && validRoles(u.GetRoles())
	}
	return validServiceID(r.GetAudience()) && validScopes(r.GetScopes()) &&
		(r.GetTenantId() == "" || validUserID(r.GetTenantId()))
}

// validLifetime: a valid duration of whole seconds, at least 10 s. Longer than
// the maximum is not invalid here: it is refused with LIFETIME_TOO_LONG.
func validLifetime(d *durationpb.Duration) bool {
	return d.CheckValid() == nil && d.GetNanos() == 0 && d.GetSeconds() >= int64(minLifetime/time.Second)
}

// validSecretText: 1 to 256 bytes of printable ASCII. Whether it has the form
// of a callsign secret is part of authentication, not of validation.
func validSecretText(s string) bool {
	if len(s) == 0 || len(s) > MaxSecretSize {
		return false
	}
	for i := range len(s) {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func validVerifyRequest(r *callsignv1.VerifyRequest) bool {
	if r == nil || !validSize(r) || !validCompactJWS(r.GetToken()) {
		return false
	}
	switch r.GetTokenType() {
	case callsignv1.TokenType_TOKEN_TYPE_UNSPECIFIED, callsignv1.TokenType_TOKEN_TYPE_SERVICE:
		return validServiceID(r.GetAudience())
	case callsignv1.TokenType_TOKEN_TYPE_USER:
		return r.GetAudience() == ""
	default:
		return false
	}
}

func validGetKeysRequest(r *callsignv1.GetKeysRequest) bool {
	return r != nil && validSize(r)
}

// validOptionalTimestamp: unset, or valid.
func validOptionalTimestamp(t *timestamppb.Timestamp) bool {
	return t == nil || t.CheckValid() == nil
}

func validCreateAccountRequest(r *callsignv1.CreateAccountRequest) bool {
	return r != nil && validSize(r) && validServiceID(r.GetAccountId()) && validDescription(r.GetDescription())
}

func validAccountIDRequest(id string, m proto.Message) bool {
	return validSize(m) && validServiceID(id)
}

func validListAccountsRequest(r *callsignv1.ListAccountsRequest) bool {
	if r == nil || !validSize(r) || r.GetPageSize() < 0 || r.GetPageSize() > MaxPageSize {
		return false
	}
	if t := r.GetPageToken(); t != "" {
		if len(t) > maxPageTokenLength {
			return false
		}
		if _, ok := decodePageToken(t); !ok {
			return false
		}
	}
	return true
}

func validAddPublicKeyRequest(r *callsignv1.AddPublicKeyRequest) bool {
	if r == nil || !validSize(r) || !validServiceID(r.GetAccountId()) || !validOptionalTimestamp(r.GetExpireTime()) {
		return false
	}
	if r.GetKeyId() != "" && !validKeyID(r.GetKeyId()) {
		return false
	}
	_, _, err := parseAccountJWK(r.GetJwk(), r.GetKeyId())
	return err == nil
}

func validRemovePublicKeyRequest(r *callsignv1.RemovePublicKeyRequest) bool {
	return r != nil && validSize(r) && validServiceID(r.GetAccountId()) && validKeyID(r.GetKeyId())
}

func validRotateSecretRequest(r *callsignv1.RotateSecretRequest) bool {
	return r != nil && validSize(r) && validServiceID(r.GetAccountId()) && validOptionalTimestamp(r.GetExpireTime())
}

func validSetGrantRequest(r *callsignv1.SetGrantRequest) bool {
	return r != nil && validSize(r) && validServiceID(r.GetAccountId()) && r.GetGrant() != nil &&
		validServiceID(r.GetGrant().GetAudience()) && validScopes(r.GetGrant().GetScopes())
}

func validDeleteGrantRequest(r *callsignv1.DeleteGrantRequest) bool {
	return r != nil && validSize(r) && validServiceID(r.GetAccountId()) && validServiceID(r.GetAudience())
}

func validSetUserAssertionRequest(r *callsignv1.SetUserAssertionRequest) bool {
	if r == nil || !validSize(r) || !validServiceID(r.GetAccountId()) || r.GetUserAssertion() == nil {
		return false
	}
	return validTenantList(r.GetUserAssertion().GetTenants())
}

func validRevokeTokenRequest(r *callsignv1.RevokeTokenRequest) bool {
	return r != nil && validSize(r) && validTokenID(r.GetTokenId()) && validOptionalTimestamp(r.GetExpireTime())
}

func validRevokeAccountTokensRequest(r *callsignv1.RevokeAccountTokensRequest) bool {
	return r != nil && validSize(r) && validServiceID(r.GetAccountId()) && validOptionalTimestamp(r.GetIssuedBefore())
}

func validEmptyRequest(m proto.Message) bool {
	return validSize(m)
}
