package auth

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// maxTracked bounds how many client addresses and user names the failure
// table remembers. At about 100 bytes an entry this is ~10 MB at worst.
const maxTracked = 100_000

// failureTable counts authentication failures per key (a client network, a
// user name or a canonical identity) in a fixed window that starts at the
// key's first failure. It is safe for concurrent use; its lock is never held
// across I/O.
//
// It also holds reservations: an attempt reserves its keys (reserve) before
// any backend is asked and settles them afterwards (a success releases them,
// a failure or an outage turns them into failures). A key with failures plus
// reservations in flight at the limit admits no new attempt until one
// settles, so no more than max attempts per window ever reach a backend,
// whatever the concurrency (issue 8 item 11: check-then-act was racy).
type failureTable struct {
	max    int
	window time.Duration
	limit  int // map size cap

	mu sync.Mutex
	m  map[string]*failureCount
}

type failureCount struct {
	n       int
	start   time.Time
	pending int           // reservations in flight
	wake    chan struct{} // closed when a reservation settles; nil when nobody waits
}

func newFailureTable(max int, window time.Duration, limit int) *failureTable {
	return &failureTable{max: max, window: window, limit: limit, m: make(map[string]*failureCount)}
}

// entryLocked returns key's entry, or nil. An entry whose window has passed
// forgets its failures (its reservations stay) and goes when it holds none.
func (t *failureTable) entryLocked(key string, now time.Time) *failureCount {
	f := t.m[key]
	if f == nil {
		return nil
	}
	if f.n > 0 && now.Sub(f.start) >= t.window {
		f.n = 0
	}
	if f.n == 0 && f.pending == 0 {
		delete(t.m, key)
		return nil
	}
	return f
}

// getLocked returns key's entry, creating it.
func (t *failureTable) getLocked(key string, now time.Time) *failureCount {
	if f := t.entryLocked(key, now); f != nil {
		return f
	}
	if len(t.m) >= t.limit {
		t.prune(now)
	}
	f := &failureCount{start: now}
	t.m[key] = f
	return f
}

// failLocked counts one failure for f.
func (t *failureTable) failLocked(f *failureCount, now time.Time) int {
	if f.n == 0 || now.Sub(f.start) >= t.window {
		f.n, f.start = 0, now
	}
	f.n++
	return f.n
}

// wakeLocked lets the attempts waiting on f look again.
func wakeLocked(f *failureCount) {
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// blocked reports whether key reached the limit within the current window.
func (t *failureTable) blocked(key string, now time.Time) bool {
	if key == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.entryLocked(key, now)
	return f != nil && f.n >= t.max
}

// fail records one failure for key and returns the key's count in the window.
func (t *failureTable) fail(key string, now time.Time) int {
	if key == "" {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.getLocked(key, now)
	n := t.failLocked(f, now)
	wakeLocked(f)
	return n
}

// reset forgets key's failures (not its reservations in flight).
func (t *failureTable) reset(key string) {
	if key == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if f := t.m[key]; f != nil {
		f.n = 0
		wakeLocked(f)
		if f.pending == 0 {
			delete(t.m, key)
		}
	}
}

// throttleKey is one key of a reservation. A success resets the failures
// of the keys marked reset (user names, identities), never those of a
// client network: a client that owns one valid account must not be able to
// reset its counter between guesses at others.
type throttleKey struct {
	key   string
	reset bool
}

// reservation is one attempt's claim on its keys; settle it exactly once
// with succeed or fail.
type reservation struct {
	t    *failureTable
	now  func() time.Time
	keys []throttleKey
}

// errBlocked is returned by reserve when a key is at its limit; key names it.
type errBlocked struct{ key string }

func (e *errBlocked) Error() string { return "throttled: " + e.key }

// reserve claims one attempt on every key at once. When a key already has
// max failures it returns *errBlocked at once; when failures plus attempts
// in flight reach max it waits until one of them settles (the answer
// decides whether there is room), or until ctx ends (ctx.Err()).
func (t *failureTable) reserve(ctx context.Context, now func() time.Time, keys ...throttleKey) (*reservation, error) {
	r := &reservation{t: t, now: now}
	if err := t.add(ctx, r, keys...); err != nil {
		return nil, err
	}
	return r, nil
}

// add extends r with more keys, under the same rules as reserve. On error
// r keeps only the keys it had.
func (t *failureTable) add(ctx context.Context, r *reservation, keys ...throttleKey) error {
	var fresh []throttleKey
	for _, k := range keys {
		if k.key != "" && !slices.ContainsFunc(r.keys, func(o throttleKey) bool { return o.key == k.key }) &&
			!slices.ContainsFunc(fresh, func(o throttleKey) bool { return o.key == k.key }) {
			fresh = append(fresh, k)
		}
	}
	for {
		t.mu.Lock()
		n := r.now()
		var wait chan struct{}
		for _, k := range fresh {
			f := t.entryLocked(k.key, n)
			if f == nil {
				continue
			}
			if f.n >= t.max {
				t.mu.Unlock()
				return &errBlocked{key: k.key}
			}
			if f.n+f.pending >= t.max && wait == nil {
				if f.wake == nil {
					f.wake = make(chan struct{})
				}
				wait = f.wake
			}
		}
		if wait == nil {
			for _, k := range fresh {
				t.getLocked(k.key, n).pending++
			}
			r.keys = append(r.keys, fresh...)
			t.mu.Unlock()
			return nil
		}
		t.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// How a reservation is settled.
const (
	settleSuccess = iota // released, and the resettable keys' failures cleared
	settleFailure        // one failure on every key
)

// succeed releases the reservation and resets the failures of its
// resettable keys.
func (r *reservation) succeed() { r.settle(settleSuccess) }

// fail turns the reservation into one failure on each key, and counts one
// on each of extra that it did not hold. It returns the highest count.
func (r *reservation) fail(extra ...string) int {
	keys := slices.Clone(r.keys)
	n := r.settle(settleFailure)
	for _, k := range extra {
		if k != "" && !slices.ContainsFunc(keys, func(o throttleKey) bool { return o.key == k }) {
			n = max(n, r.t.fail(k, r.now()))
		}
	}
	return n
}

func (r *reservation) settle(how int) int {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now, n := r.now(), 0
	for _, k := range r.keys {
		f := t.m[k.key]
		if f == nil { // cannot happen: an entry with pending > 0 stays
			f = &failureCount{start: now, pending: 1}
			t.m[k.key] = f
		}
		f.pending--
		switch {
		case how == settleFailure:
			n = max(n, t.failLocked(f, now))
		case how == settleSuccess && k.reset:
			f.n = 0
		}
		wakeLocked(f)
		if f.pending == 0 && (f.n == 0 || now.Sub(f.start) >= t.window) {
			delete(t.m, k.key)
		}
	}
	r.keys = nil
	return n
}

// prune drops expired entries and, if the table is still full (an attack
// from very many addresses), arbitrary entries down to three quarters of the
// cap. Go's map iteration order is unspecified, so an attacker cannot choose
// which entries go; the amortised cost per insertion stays constant.
func (t *failureTable) prune(now time.Time) {
	for k, f := range t.m {
		if f.pending == 0 && now.Sub(f.start) >= t.window {
			delete(t.m, k)
		}
	}
	for k, f := range t.m {
		if len(t.m) <= t.limit*3/4 {
			break
		}
		if f.pending == 0 { // an entry in use stays: it is bounded by the attempts in flight
			delete(t.m, k)
		}
	}
}

func (t *failureTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// ipKey is the throttling key for a client address. A port is dropped. An
// IPv6 client is keyed by its /64: one host usually owns a whole /64
// (RFC 6177 / SLAAC), so per-address counting would be no limit at all.
func ipKey(remote string) string {
	if remote == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h
	}
	a, err := netip.ParseAddr(remote)
	if err != nil {
		return "ip:" + remote
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return "ip:" + p.String()
	}
	return "ip:" + a.String()
}

// idKey is the throttling key for a canonical identity (Identity.Canonical).
func idKey(canonical string) string {
	if canonical == "" {
		return ""
	}
	return "id:" + strings.ToLower(canonical)
}

// userKey is the throttling key for a login name.
func userKey(user string) string {
	if user == "" {
		return ""
	}
	return "user:" + strings.ToLower(user)
}
