package auth

import (
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Fail-fast backoff while the directory does not answer (issue 8 item 15).
const (
	ldapBackoffMin = time.Second
	ldapBackoffMax = 30 * time.Second
)

// errNoAnswer marks an LDAP error that means the directory did not answer
// at all (connection refused or cut, timeout), as opposed to an answer
// (busy, wrong service password, no such base DN).
var errNoAnswer = errors.New("no answer")

// ldapHealth is the backend's fail-fast state, like the OIDC backend's
// discovery retry: after a check found the directory not answering, checks
// answer ErrUnavailable at once for a short period that doubles with each
// failed probe (1 s, 2 s, … 30 s). When the period is over one check at a
// time (the probe) goes to the directory; the others keep failing fast
// until it has answered. Any answer from the directory ends the outage.
//
// Without it, a directory that hangs holds every pool slot for the full
// timeout per login, and N logins wait N/PoolSize timeouts for a 454.
type ldapHealth struct {
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	down    bool
	until   time.Time
	backoff time.Duration
	probing bool
	downCh  chan struct{} // closed when the directory is found down
}

func newLDAPHealth(log *slog.Logger) *ldapHealth {
	return &ldapHealth{log: log, now: time.Now, downCh: make(chan struct{})}
}

// admit decides whether a check may go to the directory. probe reports that
// it is the one check allowed while down. retry is when the next probe may
// go, when refused.
func (h *ldapHealth) admit() (probe bool, retry time.Duration, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.down {
		return false, 0, true
	}
	now := h.now()
	if now.Before(h.until) || h.probing {
		return false, max(h.until.Sub(now), 0), false
	}
	h.probing = true
	return true, 0, true
}

// done records the outcome of an admitted check: noAnswer when the
// directory did not answer (and the caller had not given up on its own).
func (h *ldapHealth) done(probe, noAnswer bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if probe {
		h.probing = false
	}
	switch {
	case noAnswer && !h.down:
		h.down, h.backoff = true, ldapBackoffMin
		h.until = h.now().Add(h.backoff)
		close(h.downCh)
		h.log.Warn("LDAP directory not answering; AUTH answers 454 at once while one probe at a time retries", "retry_in", h.backoff)
	case noAnswer && probe:
		h.backoff = min(2*h.backoff, ldapBackoffMax)
		h.until = h.now().Add(h.backoff)
		h.log.Warn("LDAP directory still not answering", "retry_in", h.backoff)
	case !noAnswer && h.down && probe:
		h.down, h.backoff = false, 0
		h.downCh = make(chan struct{})
		h.log.Info("LDAP directory answering again")
	}
}

// abandon ends an admitted check that learnt nothing about the directory
// (its caller gave up, or it panicked): a probe frees its slot, the state
// stays as it was.
func (h *ldapHealth) abandon(probe bool) {
	if !probe {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.probing = false
}

// downSignal is closed when the directory is found down, so that checks
// waiting for a pool slot give up at once instead of at their deadline.
func (h *ldapHealth) downSignal() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.downCh
}
