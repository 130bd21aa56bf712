package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestLDAPProbeRecovers (review of issue 8 item 15): once the directory
// answers again, the first probe after the fail-fast period must reach it
// and end the outage. Before the fix the probe waited for a pool slot in a
// select that also watched the "directory down" signal, which is closed for
// the whole outage: half the time the probe gave up without asking (once
// for the search, once for the bind), recorded "no answer" and doubled the
// backoff.
func TestLDAPProbeRecovers(t *testing.T) {
	d := newTestDirectory(t, nil, false)
	b, _ := newTestLDAP(t, d, nil)
	clock := time.Now()
	var mu sync.Mutex
	b.health.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	for i := range 20 {
		b.health.done(false, true) // found down by some check
		mu.Lock()
		clock = clock.Add(ldapBackoffMax)
		mu.Unlock()
		if _, err := b.CheckPassword(context.Background(), "alice", "alicepw"); err != nil {
			t.Fatalf("round %d: the probe to a directory that answers: %v", i, err)
		}
		if _, _, ok := b.health.admit(); !ok {
			t.Fatalf("round %d: still failing fast after the probe was answered", i)
		}
	}
}

// TestLDAPProbeGivenUpKeepsOutage: a probe whose caller gave up (shutdown)
// learnt nothing about the directory: it must neither end the outage nor
// leave the probe slot taken, and a probe that panics must free it too.
func TestLDAPProbeGivenUpKeepsOutage(t *testing.T) {
	h := newHangingDirectory(t)
	b := hangingLDAP(t, h, time.Second)
	clock := time.Now()
	var mu sync.Mutex
	b.health.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	b.health.done(false, true)
	mu.Lock()
	clock = clock.Add(ldapBackoffMax)
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.CheckPassword(ctx, "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled probe: %v", err)
	}
	before := h.accepts.Load()
	probe, _, ok := b.health.admit()
	if !ok || !probe {
		t.Fatalf("after a cancelled probe: probe=%v ok=%v, want the next check to be the probe (outage still on)", probe, ok)
	}
	b.health.done(true, true)
	if h.accepts.Load() != before {
		t.Fatal("unexpected dial")
	}

	// A probe that panics (a client library bug) frees the probe slot.
	mu.Lock()
	clock = clock.Add(ldapBackoffMax)
	mu.Unlock()
	b.search.dial = func(context.Context) (*ldapConn, error) { panic("ldap client bug") }
	func() {
		defer func() { recover() }()
		b.CheckPassword(context.Background(), "alice", "alicepw")
	}()
	mu.Lock()
	clock = clock.Add(ldapBackoffMax)
	mu.Unlock()
	if probe, _, ok := b.health.admit(); !ok || !probe {
		t.Fatalf("after a panicked probe: probe=%v ok=%v: the probe slot stays taken, the backend fails fast for good", probe, ok)
	}
}
