package auth

import (
	"context"
	"errors"
	"fmt"
)

// healthReporter is a backend that knows, without asking anyone, whether
// its service is out: the LDAP backend's fail-fast state, the OIDC
// backend's failed discovery.
type healthReporter interface {
	knownDown() error
}

// Ready reports whether the identity backends can answer now, from what
// they already know (it sends no request). It is an error only when every
// configured backend is known to be out: then no login can succeed, and
// the front end is better out of the load balancer's rotation. While one
// backend still answers, the front end stays ready (taking every front end
// out for a partial outage would refuse even the users it can serve).
func (a *Authenticator) Ready(ctx context.Context) error {
	var errs []error
	seen := map[any]bool{}
	total := 0
	check := func(b any) {
		if seen[b] {
			return // one backend serving passwords and tokens counts once
		}
		seen[b] = true
		total++
		if h, ok := b.(healthReporter); ok {
			if err := h.knownDown(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, b := range a.opts.Password {
		check(b)
	}
	for _, b := range a.opts.Token {
		check(b)
	}
	if total > 0 && len(errs) == total {
		return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
	}
	return nil
}

// knownDown: the directory did not answer the last check and the fail-fast
// period is on.
func (b *LDAPBackend) knownDown() error {
	h := b.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down {
		return errors.New("ldap: directory not answering")
	}
	return nil
}

// knownDown: discovery has not succeeded yet and the last attempt failed.
func (b *OIDCBackend) knownDown() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == nil && b.lastErr != nil {
		return fmt.Errorf("oidc: issuer discovery failed: %w", b.lastErr)
	}
	return nil
}
