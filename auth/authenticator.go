package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults for the throttling and cache Options.
const (
	DefaultMaxFailures   = 5
	DefaultFailureWindow = 10 * time.Minute
	DefaultFailureDelay  = 250 * time.Millisecond
	// DefaultCacheTTL is the recommended CacheTTL. It is not applied when
	// CacheTTL is zero: zero disables the cache.
	DefaultCacheTTL = 60 * time.Second
)

// maxDelaySteps caps the growth of the failure delay: FailureDelay times the
// failure count, at most this many times FailureDelay.
const maxDelaySteps = 4

// Options configure an Authenticator.
type Options struct {
	// Password backends, tried in order for PLAIN and LOGIN.
	Password []PasswordBackend
	// Token backends, tried in order for OAUTHBEARER and XOAUTH2.
	Token []TokenBackend
	// Logger receives one line per failed or throttled attempt and per
	// backend outage. Never a password or token.
	Logger *slog.Logger

	// MaxFailures is how many failed attempts a client network or a user
	// name may make within FailureWindow; further attempts get ErrThrottled
	// without reaching a backend until the window, which starts at the
	// first failure, has passed. 0 means DefaultMaxFailures; negative
	// disables throttling.
	MaxFailures int
	// FailureWindow: 0 means DefaultFailureWindow.
	FailureWindow time.Duration
	// FailureDelay is added before answering a failed attempt, times the
	// number of recent failures for that client or user (at most 4×), to
	// slow down guessing over parallel connections. Successes are never
	// delayed. 0 means DefaultFailureDelay; negative means no delay.
	FailureDelay time.Duration
	// CacheTTL is how long a successful password check is remembered, so
	// that the same user and password are accepted again without asking the
	// backend. A password changed or an account disabled in the backend
	// keeps working for at most this long. 0 disables the cache (see
	// DefaultCacheTTL). Token checks are not cached: they are local
	// signature checks once the issuer's keys are known.
	CacheTTL time.Duration
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// Authenticator chains the configured backends, throttles repeated failures
// and caches recent successes. It is safe for concurrent use.
//
// Throttling: failures (wrong password, unknown user, invalid token — not
// backend outages) are counted per client network (the IPv4 address or the
// IPv6 /64) and per lowercased user name. Past MaxFailures either key is
// refused with ErrThrottled for the rest of the window; a correct password is
// refused too while locked, so that the lock is no oracle. A success clears
// the user name's count but not the client's: a client that owns one valid
// account must not be able to reset its counter between guesses at others.
type Authenticator struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	fails  *failureTable                        // nil: throttling disabled
	cache  *successCache                        // nil: cache disabled
	flight flight                               // shares concurrent identical password checks
	delay  time.Duration                        // per-failure delay step, 0: none
	sleep  func(context.Context, time.Duration) // for tests
}

// New returns an Authenticator over the given backends.
func New(o Options) *Authenticator {
	l := o.Logger
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{opts: o, log: l, now: o.Now, sleep: sleepCtx}
	if a.now == nil {
		a.now = time.Now
	}
	if o.MaxFailures >= 0 {
		max, win := o.MaxFailures, o.FailureWindow
		if max == 0 {
			max = DefaultMaxFailures
		}
		if win <= 0 {
			win = DefaultFailureWindow
		}
		a.fails = newFailureTable(max, win, maxTracked)
	}
	switch {
	case o.FailureDelay == 0:
		a.delay = DefaultFailureDelay
	case o.FailureDelay > 0:
		a.delay = o.FailureDelay
	}
	if o.CacheTTL > 0 {
		a.cache = newSuccessCache(o.CacheTTL)
	}
	return a
}

// HasPassword reports whether a password mechanism (PLAIN, LOGIN) can work.
func (a *Authenticator) HasPassword() bool { return len(a.opts.Password) > 0 }

// HasToken reports whether a bearer-token mechanism (OAUTHBEARER, XOAUTH2) can work.
func (a *Authenticator) HasToken() bool { return len(a.opts.Token) > 0 }

// Password authenticates user with password. remoteIP is the client address
// (with or without a port), for throttling. The error wraps
// ErrBadCredentials, ErrUnavailable or ErrThrottled.
//
// Backends are tried in order: the first that authenticates wins; a backend
// that does not know the user (ErrBadCredentials) passes to the next; when no
// backend authenticated and at least one was unavailable, the answer is
// ErrUnavailable, so an outage never looks like a wrong password.
func (a *Authenticator) Password(ctx context.Context, remoteIP, user, password string) (*Identity, error) {
	start := a.now()
	ipk, uk := ipKey(remoteIP), userKey(user)
	if err := a.throttled(ipk, uk, remoteIP, user); err != nil {
		return nil, err
	}
	if user == "" || password == "" {
		return nil, a.failed(ctx, start, ipk, uk, remoteIP, user, "", "empty user name or password")
	}
	if id := a.cache.get(user, password, a.now()); id != nil {
		a.fails.resetIf(uk)
		a.log.Debug("auth success (cached)", "user", user, "ip", remoteIP, "backend", id.Backend)
		return id, nil
	}
	var r checkResult
	if a.cache != nil {
		// Concurrent logins with the same user and password share one
		// backend call. The key is the cache's HMAC: no password is kept.
		r = a.flight.do(a.cache.key(user, password), func() checkResult {
			return a.checkPassword(context.WithoutCancel(ctx), user, password, remoteIP)
		})
	} else {
		r = a.checkPassword(ctx, user, password, remoteIP)
	}
	switch {
	case r.id != nil:
		a.fails.resetIf(uk)
		return r.id, nil
	case r.unavailable != nil:
		return nil, r.unavailable
	case len(r.names) == 0:
		return nil, a.failed(ctx, start, ipk, uk, remoteIP, user, "", "no password backend configured")
	}
	return nil, a.failed(ctx, start, ipk, uk, remoteIP, user, strings.Join(r.names, ","), strings.Join(r.reasons, "; "))
}

// checkResult is the outcome of asking the password backends once.
type checkResult struct {
	id             *Identity
	unavailable    error
	names, reasons []string
}

func (r checkResult) clone() checkResult {
	if r.id != nil {
		r.id = cloneIdentity(r.id)
	}
	return r
}

// checkPassword asks the backends in order and caches a success.
func (a *Authenticator) checkPassword(ctx context.Context, user, password, remoteIP string) checkResult {
	var r checkResult
	for _, b := range a.opts.Password {
		id, err := b.CheckPassword(ctx, user, password)
		if err == nil {
			a.cache.put(user, password, id, a.now())
			a.log.Debug("auth success", "user", user, "ip", remoteIP, "backend", b.Name())
			r.id = id
			return r
		}
		if errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBadCredentials) {
			a.log.Warn("auth backend unavailable", "backend", b.Name(), "user", user, "ip", remoteIP, "err", err)
			if r.unavailable == nil {
				r.unavailable = fmt.Errorf("%w: %s: %v", ErrUnavailable, b.Name(), err)
			}
			continue
		}
		r.names = append(r.names, b.Name())
		r.reasons = append(r.reasons, b.Name()+": "+err.Error())
	}
	return r
}

// Token authenticates a bearer token. authzid is the user name the client
// gave in the SASL exchange (may be empty); when given it must name the
// token's identity. Failures are throttled like passwords (per client
// network, and per authzid when one was given); results are not cached.
func (a *Authenticator) Token(ctx context.Context, remoteIP, authzid, token string) (*Identity, error) {
	start := a.now()
	ipk, uk := ipKey(remoteIP), userKey(authzid)
	if err := a.throttled(ipk, uk, remoteIP, authzid); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, a.failed(ctx, start, ipk, uk, remoteIP, authzid, "", "empty token")
	}
	var unavailable error
	var names, reasons []string
	for _, b := range a.opts.Token {
		id, err := b.CheckToken(ctx, token)
		if err == nil {
			if authzid != "" && !strings.EqualFold(authzid, id.User) {
				return nil, a.failed(ctx, start, ipk, uk, remoteIP, authzid, b.Name(),
					fmt.Sprintf("SASL user %q does not match the token's %q", authzid, id.User))
			}
			a.fails.resetIf(userKey(id.User))
			a.log.Debug("auth success", "user", id.User, "ip", remoteIP, "backend", b.Name())
			return id, nil
		}
		if errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrBadCredentials) {
			a.log.Warn("auth backend unavailable", "backend", b.Name(), "ip", remoteIP, "err", err)
			if unavailable == nil {
				unavailable = fmt.Errorf("%w: %s: %v", ErrUnavailable, b.Name(), err)
			}
			continue
		}
		names = append(names, b.Name())
		reasons = append(reasons, b.Name()+": "+err.Error())
	}
	if unavailable != nil {
		return nil, unavailable
	}
	if len(names) == 0 {
		return nil, a.failed(ctx, start, ipk, uk, remoteIP, authzid, "", "no token backend configured")
	}
	return nil, a.failed(ctx, start, ipk, uk, remoteIP, authzid, strings.Join(names, ","), strings.Join(reasons, "; "))
}

// throttled returns ErrThrottled when the client network or the user name
// is locked out.
func (a *Authenticator) throttled(ipk, uk, remoteIP, user string) error {
	if a.fails == nil {
		return nil
	}
	now := a.now()
	var which string
	switch {
	case a.fails.blocked(ipk, now):
		which = "client"
	case a.fails.blocked(uk, now):
		which = "user"
	default:
		return nil
	}
	a.log.Warn("auth throttled", "user", user, "ip", remoteIP, "key", which)
	return fmt.Errorf("%w: %s", ErrThrottled, which)
}

// failed records a failure, logs it, waits the failure delay and returns the
// error for the caller. reason must never contain a secret.
func (a *Authenticator) failed(ctx context.Context, start time.Time, ipk, uk, remoteIP, user, backend, reason string) error {
	n := 1
	if a.fails != nil {
		now := a.now()
		n = max(a.fails.fail(ipk, now), a.fails.fail(uk, now), 1)
	}
	a.log.Info("auth failed", "user", user, "ip", remoteIP, "backend", backend, "reason", reason, "recent_failures", n)
	// The delay is a floor measured from the start of the attempt, not an
	// addition: a fast "no such user" and a slower "wrong password" (one
	// more directory round trip, a bcrypt comparison) answer at the same
	// moment, so timing does not tell which user names exist.
	if a.delay > 0 {
		if d := a.delay*time.Duration(min(n, maxDelaySteps)) - a.now().Sub(start); d > 0 {
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
