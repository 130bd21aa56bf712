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
	// Canonical names the account whatever spelling the client logged in
	// with: "ldap:" and the entry's DN, "file:" and the users file's name,
	// "oidc:" and the token's issuer and subject. Limits are keyed on it
	// (issue 8 item 12), so "alice" and "alice@example.org" share them.
	Canonical string
}

// LimitKey is the key for per-user limits: Canonical, or the lowercased
// User when a backend gave no canonical name.
func (id *Identity) LimitKey() string {
	if id.Canonical != "" {
		return strings.ToLower(id.Canonical)
	}
	return "user:" + strings.ToLower(id.User)
}

// RefusedEntryError is a refusal (it wraps ErrBadCredentials) by a backend
// that had resolved the user's entry: the failure counts against Canonical
// too, not only against the spelling the client used.
type RefusedEntryError struct {
	Canonical string
	Err       error
}

func (e *RefusedEntryError) Error() string { return e.Err.Error() }
func (e *RefusedEntryError) Unwrap() error { return e.Err }

// refusedCanonical returns the canonical identity a refusal names, or "".
func refusedCanonical(err error) string {
	var re *RefusedEntryError
	if errors.As(err, &re) {
		return re.Canonical
	}
	return ""
}

// entryGateKey carries the Authenticator's entry gate in a context.
type entryGateKey struct{}

func withEntryGate(ctx context.Context, g func(context.Context, string) error) context.Context {
	return context.WithValue(ctx, entryGateKey{}, g)
}

// CheckEntry is for a backend that resolved the user's entry before checking
// the password (an LDAP search found the DN): it asks the Authenticator's
// throttle whether canonical may be tried now. An error wraps ErrThrottled;
// the backend must then return it without checking the password. Without an
// Authenticator in ctx it allows everything.
func CheckEntry(ctx context.Context, canonical string) error {
	if g, ok := ctx.Value(entryGateKey{}).(func(context.Context, string) error); ok {
		return g(ctx, canonical)
	}
	return nil
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
