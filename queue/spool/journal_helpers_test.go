package spool

import (
	"context"
	"sync"
	"testing"
	"time"
)

// attackClock is a fake clock safe for concurrent use.
type attackClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *attackClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *attackClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func attackLease(t *testing.T, s *Spool, d time.Duration) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	m, err := s.Lease(ctx)
	if err != nil {
		return "", err
	}
	return m.Envelope.ID, nil
}

func attackReadBody(t *testing.T, s *Spool, id string) string {
	t.Helper()
	jm := s.journalOf(id)
	if jm == nil {
		b, err := readBodyFile(s.msgPath(id))
		if err != nil {
			t.Fatalf("%s: neither in the journal nor in msg/: %v", id, err)
		}
		return b
	}
	return bodyOf(t, s, id)
}
