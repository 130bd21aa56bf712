package auth

import (
	"context"
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
	// Observe, when set, is called after every backend call with its
	// outcome and duration (see Check), on the caller's goroutine: it must
	// not block.
	Observe func(Check)
}

// Authenticator chains the configured backends, throttles repeated failures
// and caches recent successes. It is safe for concurrent use.
//
// Throttling: failures (wrong password, unknown user, invalid token) are
// counted per client network (the IPv4 address or the IPv6 /64), per
// lowercased user name and, when a backend resolved the user's entry, per
// canonical identity (Identity.Canonical: the LDAP entry's DN, ...), so that
// "alice" and "alice@example.org" share one count. An attempt that no backend
// accepted while one was unavailable counts too (issue 8 item 10: the others
// still answer, so guessing must stay limited during a partial outage); it is
// answered ErrUnavailable (454), never as a wrong password.
//
// Every attempt reserves its keys before any backend is asked (see
// failureTable.reserve), so past MaxFailures no request reaches a backend,
// whatever the concurrency. A locked key is refused with ErrThrottled for the
// rest of the window; a correct password is refused too while locked, so that
// the lock is no oracle. A success clears the user name's and the identity's
// counts but not the client's: a client that owns one valid account must not
// be able to reset its counter between guesses at others.
type Authenticator struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	fails  *failureTable                        // nil: throttling disabled
	cache  *successCache                        // nil: cache disabled
	keys   *credKeyer                           // keys for the cache and the flight
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
	a := &Authenticator{opts: o, log: l, now: o.Now, sleep: sleepCtx, keys: newCredKeyer()}
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
		a.cache = newSuccessCacheKeyed(o.CacheTTL, a.keys)
	}
	return a
}

// HasPassword reports whether a password mechanism (PLAIN, LOGIN) can work.
func (a *Authenticator) HasPassword() bool { return len(a.opts.Password) > 0 }

// HasToken reports whether a bearer-token mechanism (OAUTHBEARER, XOAUTH2) can work.
func (a *Authenticator) HasToken() bool { return len(a.opts.Token) > 0 }

// attempt is one Password or Token call's throttling state.
type attempt struct {
	start          time.Time
	ipk, uk        string
	remoteIP, user string
	res            *reservation // nil: not reserved (throttling off, or joined another call)
}

// Password authenticates user with password. remoteIP is the client address
// (with or without a port), for throttling. The error wraps
// ErrBadCredentials, ErrUnavailable or ErrThrottled.
//
// Backends are tried in order: the first that authenticates wins; a backend
// that does not know the user (ErrBadCredentials) passes to the next; when no
// backend authenticated and at least one was unavailable, the answer is
// ErrUnavailable, so an outage never looks like a wrong password.
//
// A user name with leading or trailing white space is refused as bad
// credentials without asking a backend: directories trim or ignore it, so it
// would be one more spelling of the same account.
func (a *Authenticator) Password(ctx context.Context, remoteIP, user, password string) (*Identity, error) {
	at := &attempt{start: a.now(), ipk: ipKey(remoteIP), uk: userKey(strings.TrimSpace(user)), remoteIP: remoteIP, user: user}
	if err := a.throttled(at); err != nil {
		return nil, err
	}
	if user == "" || password == "" {
		return nil, a.failed(ctx, at, "", "empty user name or password")
	}
	if user != strings.TrimSpace(user) {
		return nil, a.failed(ctx, at, "", "white space around the user name")
	}
	defer a.abandon(at)
	// Concurrent logins with the same user and password share one backend
	// call (the key is an HMAC: no password is kept). Only the caller that
	// makes the call reserves an attempt; the others wait for its answer.
	// A cancelled ctx of that caller (its session shut down) ends the
	// shared call: the others get ErrUnavailable and may retry.
	//
	// The success cache is looked at only once the attempt is reserved:
	// a cache lookup evaluates a guess like a backend does, and looked at
	// first it let any number of concurrent guesses be tried against a
	// recently used password while MaxFailures were in flight. A cached
	// identity that is locked is refused like the directory refuses it.
	r := a.flight.do(a.keys.key(user, password), func() checkResult {
		if err := a.reserve(ctx, at); err != nil {
			return checkResult{throttled: err}
		}
		if id := a.cache.get(user, password, a.now()); id != nil {
			if err := a.gate(at)(ctx, id.Canonical); err != nil {
				return checkResult{throttled: err}
			}
			a.log.Debug("auth success (cached)", "user", user, "ip", remoteIP, "backend", id.Backend)
			return checkResult{id: id}
		}
		return a.checkPassword(withEntryGate(ctx, a.gate(at)), user, password, remoteIP)
	})
	return a.outcome(ctx, at, r)
}

// abandon settles a reservation that nothing settled (a panic on the way):
// as a failure, so that it neither stays in flight for good (which would
// lock the client and the user out once MaxFailures leaked) nor is free.
func (a *Authenticator) abandon(at *attempt) {
	if at.res != nil {
		at.res.fail()
		at.res = nil
	}
}

// Token authenticates a bearer token. authzid is the user name the client
// gave in the SASL exchange (may be empty); when given it must name the
// token's identity. Failures are throttled like passwords (per client
// network, and per authzid when one was given); results are not cached.
func (a *Authenticator) Token(ctx context.Context, remoteIP, authzid, token string) (*Identity, error) {
	at := &attempt{start: a.now(), ipk: ipKey(remoteIP), uk: userKey(strings.TrimSpace(authzid)), remoteIP: remoteIP, user: authzid}
	if err := a.throttled(at); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, a.failed(ctx, at, "", "empty token")
	}
	if err := a.reserve(ctx, at); err != nil {
		return nil, err
	}
	defer a.abandon(at)
	var r checkResult
	for _, b := range a.opts.Token {
		id, err := a.callToken(ctx, b, token)
		if err == nil {
			if authzid != "" && !strings.EqualFold(authzid, id.User) {
				r.names = append(r.names, b.Name())
				r.reasons = append(r.reasons, fmt.Sprintf("SASL user %q does not match the token's %q", authzid, id.User))
				r.canonical = append(r.canonical, id.Canonical)
				break
			}
			a.log.Debug("auth success", "user", id.User, "ip", remoteIP, "backend", b.Name())
			r.id = id
			break
		}
		r.note(a, b.Name(), err, "", remoteIP)
	}
	return a.outcome(ctx, at, r)
}

// outcome settles the attempt's reservation and maps the result to the
// answer. Everything but a success counts as a failure and is delayed:
// wrong credentials, and an outage of some backend while none accepted.
func (a *Authenticator) outcome(ctx context.Context, at *attempt, r checkResult) (*Identity, error) {
	switch {
	case r.throttled != nil:
		if at.res != nil {
			// The entry gate refused: no password was checked, but the
			// attempt cost a directory search and its identity is
			// locked anyway: it counts against the client and the name.
			at.res.fail()
			at.res = nil
		}
		a.log.Warn("auth throttled", "user", at.user, "ip", at.remoteIP, "key", throttledWhich(r.throttled))
		return nil, r.throttled
	case r.id != nil:
		a.resetIdentity(at, r.id)
		return r.id, nil
	case r.unavailable != nil:
		a.failed(ctx, at, "", "no backend accepted while one was unavailable", r.canonical...)
		return nil, r.unavailable
	case len(r.names) == 0:
		return nil, a.failed(ctx, at, "", "no backend configured", r.canonical...)
	}
	return nil, a.failed(ctx, at, strings.Join(r.names, ","), strings.Join(r.reasons, "; "), r.canonical...)
}
