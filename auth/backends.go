package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"
)

// callPassword and callToken ask one backend. A backend that panics (a bug,
// or a client library tripping over a malformed answer) is an outage for
// this attempt: logged with its stack and answered ErrUnavailable, so that
// the attempt is settled like any other and the session lives on.
//
// Each call is timed for Options.Observe (see Check).
func (a *Authenticator) callPassword(ctx context.Context, b PasswordBackend, user, password string) (id *Identity, err error) {
	defer a.observe(b.Name(), time.Now(), &err)
	defer a.recoverBackend(b.Name(), &id, &err)
	return b.CheckPassword(ctx, user, password)
}

func (a *Authenticator) callToken(ctx context.Context, b TokenBackend, token string) (id *Identity, err error) {
	defer a.observe(b.Name(), time.Now(), &err)
	defer a.recoverBackend(b.Name(), &id, &err)
	return b.CheckToken(ctx, token)
}

func (a *Authenticator) recoverBackend(name string, id **Identity, err *error) {
	if v := recover(); v != nil {
		a.log.Error("auth backend panicked", "backend", name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		*id, *err = nil, fmt.Errorf("%w: %s: internal error", ErrUnavailable, name)
	}
}

// checkResult is the outcome of asking the backends once.
type checkResult struct {
	id             *Identity
	unavailable    error
	throttled      error
	canonical      []string // identities the refusing backends resolved
	names, reasons []string
}

func (r checkResult) clone() checkResult {
	if r.id != nil {
		r.id = cloneIdentity(r.id)
	}
	r.canonical = slices.Clone(r.canonical)
	return r
}

// note records a backend's refusal or outage.
func (r *checkResult) note(a *Authenticator, name string, err error, user, remoteIP string) {
	if k := refusedCanonical(err); k != "" {
		r.canonical = append(r.canonical, k)
	}
	if errors.Is(err, ErrThrottled) { // the entry gate said no
		if r.throttled == nil {
			r.throttled = err
		}
		return
	}
	if errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBadCredentials) {
		a.log.Warn("auth backend unavailable", "backend", name, "user", user, "ip", remoteIP, "err", err)
		if r.unavailable == nil {
			r.unavailable = fmt.Errorf("%w: %s: %v", ErrUnavailable, name, err)
		}
		return
	}
	r.names = append(r.names, name)
	r.reasons = append(r.reasons, name+": "+err.Error())
}

// checkPassword asks the backends in order and caches a success.
func (a *Authenticator) checkPassword(ctx context.Context, user, password, remoteIP string) checkResult {
	var r checkResult
	for _, b := range a.opts.Password {
		id, err := a.callPassword(ctx, b, user, password)
		if err == nil {
			a.cache.put(user, password, id, a.now())
			a.log.Debug("auth success", "user", user, "ip", remoteIP, "backend", b.Name())
			r.id = id
			return r
		}
		r.note(a, b.Name(), err, user, remoteIP)
		if r.throttled != nil {
			return r
		}
	}
	return r
}
