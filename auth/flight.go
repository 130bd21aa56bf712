package auth

import (
	"crypto/sha256"
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
	c := &flightCall{done: make(chan struct{})}
	f.calls[key] = c
	f.mu.Unlock()

	c.res = fn()
	f.mu.Lock()
	delete(f.calls, key)
	f.mu.Unlock()
	close(c.done)
	return c.res.clone()
}
