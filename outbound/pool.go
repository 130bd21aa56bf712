package outbound

import (
	"slices"
	"sync"
	"time"
)

// connPool keeps idle gateway connections so that several messages reuse
// one session (one TCP and TLS handshake, one AUTH). A connection waits at
// most idleTimeout; the pool holds at most max of them.
type connPool struct {
	max         int
	idleTimeout time.Duration

	mu     sync.Mutex
	idle   []*smtpConn // most recently used last
	closed bool
}

// get returns an idle connection, or nil.
func (p *connPool) get() *smtpConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	sc := p.idle[n-1]
	p.idle = p.idle[:n-1]
	// If the timer already fired, evict finds sc gone from the list and
	// leaves it alone.
	sc.idle.Stop()
	return sc
}

// put parks sc for reuse, or ends it when the pool is full or closed.
func (p *connPool) put(sc *smtpConn) {
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.max {
		p.mu.Unlock()
		sc.quit()
		return
	}
	sc.idle = time.AfterFunc(p.idleTimeout, func() { p.evict(sc) })
	p.idle = append(p.idle, sc)
	p.mu.Unlock()
}

// evict ends sc if it is still idle in the pool.
func (p *connPool) evict(sc *smtpConn) {
	p.mu.Lock()
	i := slices.Index(p.idle, sc)
	if i >= 0 {
		p.idle = slices.Delete(p.idle, i, i+1)
	}
	p.mu.Unlock()
	if i >= 0 {
		sc.quit()
	}
}

// close ends all idle connections, at once (each QUIT waits up to
// quitTimeout), and makes put end the others.
func (p *connPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, sc := range idle {
		sc.idle.Stop()
		wg.Go(sc.quit)
	}
	wg.Wait()
}
