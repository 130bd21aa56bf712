// Package auth decides who a submitting client is and which sender addresses
// are theirs. Backends: a users file (bcrypt), LDAP (search then bind) and
// OIDC (bearer tokens checked against the issuer's keys). The Authenticator
// chains them and adds failure throttling and a short success cache.
package auth

import (
	"context"
	"errors"
	"strings"
)

// Errors every backend and the Authenticator answer with. Backends wrap them
// with detail for the log (errors.Is still matches); the SMTP session maps
// them to replies and never shows the detail to the client.
var (
	// ErrBadCredentials: wrong password, unknown user, invalid token.
	// SMTP: 535 5.7.8.
	ErrBadCredentials = errors.New("invalid credentials")
	// ErrUnavailable: the backend could not decide (directory down, timeout,
	// issuer unreachable). Never reported as a wrong password. SMTP: 454 4.7.0.
	ErrUnavailable = errors.New("authentication backend unavailable")
	// ErrThrottled: too many recent failures for this client or user name.
	// SMTP: 454 4.7.0.
	ErrThrottled = errors.New("too many authentication failures")
)

// Identity is an authenticated user and the sender addresses they may use.
type Identity struct {
	// User is the login name (or the token's identity claim).
	User string
	// Addresses are the envelope/header sender addresses this user may use.
	Addresses []string
	// Backend names the backend that authenticated the user ("file", "ldap", "oidc").
	Backend string
}

// MaySend reports whether addr is one of the identity's addresses. The local
// part is compared exactly as stored except for ASCII case, and the domain
// case-insensitively (RFC 5321 §2.4 lets the local part be case-sensitive,
// but no real directory hands out two mailboxes differing only in case).
func (id *Identity) MaySend(addr string) bool {
	if id == nil || addr == "" {
		return false
	}
	for _, a := range id.Addresses {
		if strings.EqualFold(a, addr) {
			return true
		}
	}
	return false
}

// PasswordBackend checks a user name and password.
type PasswordBackend interface {
	// Name is the backend's name for logs: "file", "ldap", "oidc".
	Name() string
	// CheckPassword returns the identity, or an error that wraps
	// ErrBadCredentials or ErrUnavailable.
	CheckPassword(ctx context.Context, user, password string) (*Identity, error)
}

// TokenBackend checks an OAuth 2.0 bearer token (SASL OAUTHBEARER, XOAUTH2).
type TokenBackend interface {
	Name() string
	// CheckToken returns the identity the token was issued to, or an error
	// that wraps ErrBadCredentials or ErrUnavailable.
	CheckToken(ctx context.Context, token string) (*Identity, error)
}
