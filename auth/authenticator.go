package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Options configure an Authenticator.
type Options struct {
	// Password backends, tried in order for PLAIN and LOGIN.
	Password []PasswordBackend
	// Token backends, tried in order for OAUTHBEARER and XOAUTH2.
	Token []TokenBackend
	// Logger receives one line per backend failure. Never a secret.
	Logger *slog.Logger
}

// Authenticator chains the configured backends. It is safe for concurrent use.
type Authenticator struct {
	opts Options
	log  *slog.Logger
}

// New returns an Authenticator over the given backends.
func New(o Options) *Authenticator {
	l := o.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{opts: o, log: l}
}

// HasPassword reports whether a password mechanism (PLAIN, LOGIN) can work.
func (a *Authenticator) HasPassword() bool { return len(a.opts.Password) > 0 }

// HasToken reports whether a bearer-token mechanism (OAUTHBEARER, XOAUTH2) can work.
func (a *Authenticator) HasToken() bool { return len(a.opts.Token) > 0 }

// Password authenticates user with password. remoteIP is the client address,
// for throttling. The error wraps ErrBadCredentials, ErrUnavailable or
// ErrThrottled.
//
// Backends are tried in order: the first that authenticates wins; a backend
// that does not know the user (ErrBadCredentials) passes to the next; when no
// backend authenticated and at least one was unavailable, the answer is
// ErrUnavailable, so an outage never looks like a wrong password.
func (a *Authenticator) Password(ctx context.Context, remoteIP, user, password string) (*Identity, error) {
	if user == "" || password == "" {
		return nil, fmt.Errorf("%w: empty user name or password", ErrBadCredentials)
	}
	var unavailable error
	for _, b := range a.opts.Password {
		id, err := b.CheckPassword(ctx, user, password)
		if err == nil {
			return id, nil
		}
		if errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBadCredentials) {
			a.log.Warn("auth backend unavailable", "backend", b.Name(), "user", user, "err", err)
			if unavailable == nil {
				unavailable = fmt.Errorf("%w: %s: %v", ErrUnavailable, b.Name(), err)
			}
		}
	}
	if unavailable != nil {
		return nil, unavailable
	}
	return nil, ErrBadCredentials
}

// Token authenticates a bearer token. authzid is the user name the client
// gave in the SASL exchange (may be empty); when given it must name the
// token's identity.
func (a *Authenticator) Token(ctx context.Context, remoteIP, authzid, token string) (*Identity, error) {
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrBadCredentials)
	}
	var unavailable error
	for _, b := range a.opts.Token {
		id, err := b.CheckToken(ctx, token)
		if err == nil {
			if authzid != "" && !strings.EqualFold(authzid, id.User) {
				return nil, fmt.Errorf("%w: SASL user %q does not match the token", ErrBadCredentials, authzid)
			}
			return id, nil
		}
		if errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBadCredentials) {
			a.log.Warn("auth backend unavailable", "backend", b.Name(), "err", err)
			if unavailable == nil {
				unavailable = fmt.Errorf("%w: %s: %v", ErrUnavailable, b.Name(), err)
			}
		}
	}
	if unavailable != nil {
		return nil, unavailable
	}
	return nil, ErrBadCredentials
}
