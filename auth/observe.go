package auth

import (
	"errors"
	"time"
)

// Check is one backend call's outcome, for metrics: Options.Observe
// receives one per call. A success answered from the cache, and an attempt
// refused before any backend was asked (throttled, empty credentials), ask
// no backend and are not observed.
type Check struct {
	// Backend is the backend's Name: "file", "ldap" or "oidc".
	Backend string
	// Result is CheckOK, CheckFailed or CheckTempFail.
	Result string
	// Duration is the call's time, the failure delay not included.
	Duration time.Duration
}

// Check.Result values.
const (
	CheckOK       = "ok"       // the backend authenticated the user
	CheckFailed   = "failed"   // ErrBadCredentials: wrong password, unknown user, invalid token
	CheckTempFail = "tempfail" // ErrUnavailable (an outage, a panic) or ErrThrottled (the entry gate)
)

// checkResultOf names a backend call's outcome.
func checkResultOf(err error) string {
	switch {
	case err == nil:
		return CheckOK
	case errors.Is(err, ErrThrottled), errors.Is(err, ErrUnavailable), !errors.Is(err, ErrBadCredentials):
		return CheckTempFail
	}
	return CheckFailed
}

// observe hands one backend call to Options.Observe; deferred by the call,
// after the panic recovery set *err.
func (a *Authenticator) observe(backend string, start time.Time, err *error) {
	if a.opts.Observe != nil {
		a.opts.Observe(Check{Backend: backend, Result: checkResultOf(*err), Duration: time.Since(start)})
	}
}
