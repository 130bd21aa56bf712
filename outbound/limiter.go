package outbound

import (
	"context"
	"sync"
)

// limiter bounds concurrent deliveries per key (recipient domain), so that
// one busy destination is not hit with every worker at once.
type limiter struct {
	n    int
	mu   sync.Mutex
	sems map[string]*keySem
}

type keySem struct {
	ch   chan struct{}
	refs int
}

func newLimiter(n int) *limiter {
	return &limiter{n: n, sems: make(map[string]*keySem)}
}

// acquire waits for a slot for key; release gives it back.
func (l *limiter) acquire(ctx context.Context, key string) (release func(), err error) {
	l.mu.Lock()
	s := l.sems[key]
	if s == nil {
		s = &keySem{ch: make(chan struct{}, l.n)}
		l.sems[key] = s
	}
	s.refs++
	l.mu.Unlock()

	unref := func() {
		l.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(l.sems, key)
		}
		l.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; unref() }, nil
	case <-ctx.Done():
		unref()
		return nil, ctx.Err()
	}
}
