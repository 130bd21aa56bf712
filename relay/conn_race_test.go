package relay

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConnTopPublishedUnderLock: a connection is visible to Shutdown (which
// reads tc.top under tc.mu in say421) as soon as it is in the listener's
// set, so top must be written before that or under the lock. Run with
// -race: the detector reports the unsynchronised write if it happens after
// publication.
func TestConnTopPublishedUnderLock(t *testing.T) {
	e := newEnv(t)
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, c := range e.srv.allConns() {
				c.mu.Lock()
				_ = c.top
				c.mu.Unlock()
			}
		}
	}()
	for i := 0; i < 50; i++ {
		for _, addr := range []string{e.addr587, e.addr465} {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			nc.Close()
		}
	}
	waitConns(t, e, 0)
	stop.Store(true)
	wg.Wait()
}
