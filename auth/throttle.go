package auth

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// maxTracked bounds how many client addresses and user names the failure
// table remembers. At about 100 bytes an entry this is ~10 MB at worst.
const maxTracked = 100_000

// failureTable counts authentication failures per key (a client network or a
// user name) in a fixed window that starts at the key's first failure. It is
// safe for concurrent use; its lock is never held across I/O.
type failureTable struct {
	max    int
	window time.Duration
	limit  int // map size cap

	mu sync.Mutex
	m  map[string]*failureCount
}

type failureCount struct {
	n     int
	start time.Time
}

func newFailureTable(max int, window time.Duration, limit int) *failureTable {
	return &failureTable{max: max, window: window, limit: limit, m: make(map[string]*failureCount)}
}

// blocked reports whether key reached the limit within the current window.
func (t *failureTable) blocked(key string, now time.Time) bool {
	if key == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	if f == nil {
		return false
	}
	if now.Sub(f.start) >= t.window {
		delete(t.m, key)
		return false
	}
	return f.n >= t.max
}

// fail records one failure for key and returns the key's count in the window.
func (t *failureTable) fail(key string, now time.Time) int {
	if key == "" {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[key]
	if f == nil || now.Sub(f.start) >= t.window {
		if f == nil && len(t.m) >= t.limit {
			t.prune(now)
		}
		f = &failureCount{start: now}
		t.m[key] = f
	}
	f.n++
	return f.n
}

// reset forgets key's failures.
func (t *failureTable) reset(key string) {
	if key == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
}

// prune drops expired entries and, if the table is still full (an attack
// from very many addresses), arbitrary entries down to three quarters of the
// cap. Go's map iteration order is unspecified, so an attacker cannot choose
// which entries go; the amortised cost per insertion stays constant.
func (t *failureTable) prune(now time.Time) {
	for k, f := range t.m {
		if now.Sub(f.start) >= t.window {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= t.limit*3/4 {
			break
		}
		delete(t.m, k)
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

// userKey is the throttling key for a login name.
func userKey(user string) string {
	if user == "" {
		return ""
	}
	return "user:" + strings.ToLower(user)
}
