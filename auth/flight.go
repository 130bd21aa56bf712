package auth

import (
	"crypto/sha256"
	"fmt"
	"sync"
)

// flight makes concurrent password checks for the same user and password
// share one backend call. Without it, a client (or a load balancer's worth
// of clients) that opens many connections at once — exactly when the
// success cache is cold or has just expired — costs one bcrypt comparison
// or one LDAP bind per connection, and a burst of 64 logins becomes seconds
// of CPU or a small storm on the directory.
type flight struct {
	mu    sync.Mutex
	calls map[[sha256.Size]byte]*flightCall
}

type flightCall struct {
	done chan struct{}
	res  checkResult
}

// do runs fn once for key among concurrent callers; all get its result.
func (f *flight) do(key [sha256.Size]byte, fn func() checkResult) checkResult {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[[sha256.Size]byte]*flightCall)
	}
	if c, ok := f.calls[key]; ok {
		f.mu.Unlock()
		<-c.done
		return c.res.clone()
	}
	// Until fn returns, the result is an outage: if fn panics, the callers
	// waiting for it get that, and the key is free again (a call left in
	// the map would make every later login with these credentials wait
	// forever).
	c := &flightCall{done: make(chan struct{}), res: checkResult{unavailable: errFlightAbandoned}}
	f.calls[key] = c
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.calls, key)
		f.mu.Unlock()
		close(c.done)
	}()
	c.res = fn()
	return c.res.clone()
}

// errFlightAbandoned is what callers sharing a check get when it panicked.
var errFlightAbandoned = fmt.Errorf("%w: the shared check did not finish", ErrUnavailable)
