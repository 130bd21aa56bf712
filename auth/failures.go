package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// resetIdentity settles a success: the user name's and the identity's
// counts are cleared, the client's are not.
func (a *Authenticator) resetIdentity(at *attempt, id *Identity) {
	if at.res != nil {
		at.res.succeed()
		at.res = nil
	}
	a.fails.resetIf(at.uk)
	a.fails.resetIf(userKey(id.User))
	a.fails.resetIf(idKey(id.Canonical))
}

// reserve claims an attempt on the client's and the user name's keys before
// any backend is asked (see failureTable.reserve). It returns ErrThrottled
// when either is locked, or when ctx ends while waiting for room.
func (a *Authenticator) reserve(ctx context.Context, at *attempt) error {
	if a.fails == nil {
		return nil
	}
	res, err := a.fails.reserve(ctx, a.now, throttleKey{key: at.ipk}, throttleKey{key: at.uk, reset: true})
	if err != nil {
		return a.throttleErr(at, err)
	}
	at.res = res
	return nil
}

// gate is the entry gate for at: a backend that resolved the user's entry
// (an LDAP search found the DN) asks it before checking the password, so
// that a locked identity is refused whatever spelling the client used.
func (a *Authenticator) gate(at *attempt) func(context.Context, string) error {
	return func(ctx context.Context, canonical string) error {
		if a.fails == nil || at.res == nil || canonical == "" {
			return nil
		}
		if err := a.fails.add(ctx, at.res, throttleKey{key: idKey(canonical), reset: true}); err != nil {
			return a.throttleErr(at, err)
		}
		return nil
	}
}

func (a *Authenticator) throttleErr(at *attempt, err error) error {
	var b *errBlocked
	if errors.As(err, &b) {
		return fmt.Errorf("%w: %s", ErrThrottled, keyKind(b.key))
	}
	return fmt.Errorf("%w: attempts in flight (%v)", ErrThrottled, err)
}

// keyKind names a throttling key's kind for logs, without its value.
func keyKind(k string) string {
	switch {
	case strings.HasPrefix(k, "ip:"):
		return "client"
	case strings.HasPrefix(k, "id:"):
		return "identity"
	}
	return "user"
}

func throttledWhich(err error) string {
	_, after, _ := strings.Cut(err.Error(), ": ")
	return after
}

// throttled returns ErrThrottled when the client network or the user name
// is locked out: the quick check before anything else (a cached success
// too) is looked at.
func (a *Authenticator) throttled(at *attempt) error {
	if a.fails == nil {
		return nil
	}
	now := a.now()
	var which string
	switch {
	case a.fails.blocked(at.ipk, now):
		which = "client"
	case a.fails.blocked(at.uk, now):
		which = "user"
	default:
		return nil
	}
	a.log.Warn("auth throttled", "user", at.user, "ip", at.remoteIP, "key", which)
	return fmt.Errorf("%w: %s", ErrThrottled, which)
}

// failed records a failure (settling the attempt's reservation, and
// counting the identities in extra too), logs it, waits the failure delay
// and returns the error for the caller. reason must never contain a secret.
func (a *Authenticator) failed(ctx context.Context, at *attempt, backend, reason string, extra ...string) error {
	n := 1
	if a.fails != nil {
		ids := make([]string, 0, len(extra))
		for _, k := range extra {
			if k != "" {
				ids = append(ids, idKey(k))
			}
		}
		if at.res != nil {
			n = max(at.res.fail(ids...), 1)
			at.res = nil
		} else {
			now := a.now()
			n = max(a.fails.fail(at.ipk, now), a.fails.fail(at.uk, now), 1)
			for _, k := range ids {
				n = max(n, a.fails.fail(k, now))
			}
		}
	}
	a.log.Info("auth failed", "user", at.user, "ip", at.remoteIP, "backend", backend, "reason", reason, "recent_failures", n)
	// The delay is a floor measured from the start of the attempt, not an
	// addition: a fast "no such user" and a slower "wrong password" (one
	// more directory round trip, a bcrypt comparison) answer at the same
	// moment, so timing does not tell which user names exist.
	if a.delay > 0 {
		if d := a.delay*time.Duration(min(n, maxDelaySteps)) - a.now().Sub(at.start); d > 0 {
			a.sleep(ctx, d)
		}
	}
	return fmt.Errorf("%w: %s", ErrBadCredentials, reason)
}

// resetIf forgets key's failures; a nil table (throttling off) is a no-op.
func (t *failureTable) resetIf(key string) {
	if t != nil {
		t.reset(key)
	}
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
