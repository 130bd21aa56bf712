package auth

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangingDirectory accepts TCP connections on 127.0.0.1 and never answers:
// a directory that hangs rather than fails (TESTING.md §5).
type hangingDirectory struct {
	ln      net.Listener
	accepts atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
}

func newHangingDirectory(t *testing.T) *hangingDirectory {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hangingDirectory{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.accepts.Add(1)
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
	})
	return h
}

func hangingLDAP(t *testing.T, h *hangingDirectory, timeout time.Duration) *LDAPBackend {
	log, _ := newTestLogger()
	b, err := NewLDAPBackend(LDAPConfig{URL: "ldap://" + h.ln.Addr().String(), BindDN: "cn=svc," + testBaseDN,
		BindPassword: "svcpw", BaseDN: testBaseDN, Timeout: timeout, PoolSize: 4}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestLDAPHangingDirectoryFailsFast (issue 8 item 15): 20 concurrent logins
// against a directory that accepts and never answers. One deadline covers
// the whole check (pool wait, search, bind), so the logins do not queue for
// the four pool slots one timeout after another: only the first wave
// connects (at most PoolSize dials), every login answers ErrUnavailable,
// and once the directory is known down a further login answers at once
// without connecting (fail-fast backoff, one probe at a time).
func TestLDAPHangingDirectoryFailsFast(t *testing.T) {
	h := newHangingDirectory(t)
	const timeout = time.Second
	b := hangingLDAP(t, h, timeout)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.CheckPassword(context.Background(), "alice", "alicepw")
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("login %d: %v, want ErrUnavailable", i, err)
		}
	}
	if n := h.accepts.Load(); n > 4 {
		t.Errorf("%d connections to the hanging directory for 20 logins, want at most the pool size (4)", n)
	}
	t.Logf("20 concurrent logins against a hanging directory (timeout %v, pool 4): all answered after %v, %d dials",
		timeout, elapsed.Round(time.Millisecond), h.accepts.Load())
	before := h.accepts.Load()
	if _, err := b.CheckPassword(context.Background(), "alice", "alicepw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("while down: %v", err)
	}
	if h.accepts.Load() != before {
		t.Errorf("a login while the directory is known down connected again (no fail-fast)")
	}
}

// TestLDAPCancelEndsSlowCheck: a check against a hanging directory with a
// long timeout ends when its context is cancelled (the session's context,
// which the server cancels at shutdown), waiting or not for a pool slot.
func TestLDAPCancelEndsSlowCheck(t *testing.T) {
	h := newHangingDirectory(t)
	b := hangingLDAP(t, h, 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var unavailable atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.CheckPassword(ctx, "alice", "alicepw"); errors.Is(err, ErrUnavailable) {
				unavailable.Add(1)
			}
		}()
	}
	for h.accepts.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait() // the test's own timeout is the bound: 30 s per check otherwise
	if unavailable.Load() != 8 {
		t.Errorf("%d of 8 cancelled checks answered ErrUnavailable", unavailable.Load())
	}
}

// TestLDAPHealthBackoff: the fail-fast period grows 1 s, 2 s, 4 s … 30 s
// with each failed probe, one probe at a time, and any answer ends it.
func TestLDAPHealthBackoff(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	log, _ := newTestLogger()
	h := newLDAPHealth(log)
	h.now = func() time.Time { return now }
	if _, _, ok := h.admit(); !ok {
		t.Fatal("refused while up")
	}
	down := h.downSignal()
	h.done(false, true)
	select {
	case <-down:
	default:
		t.Fatal("going down did not signal the pool waiters")
	}
	for _, want := range []time.Duration{1, 2, 4, 8, 16, 30, 30} {
		want *= time.Second
		if _, retry, ok := h.admit(); ok || retry != want {
			t.Fatalf("inside the period: ok=%v retry=%v, want refused for %v", ok, retry, want)
		}
		now = now.Add(want)
		probe, _, ok := h.admit()
		if !ok || !probe {
			t.Fatalf("after %v: no probe", want)
		}
		if _, _, ok := h.admit(); ok {
			t.Fatal("a second check admitted while the probe is out")
		}
		h.done(true, true)
	}
	now = now.Add(time.Minute)
	probe, _, _ := h.admit()
	h.done(probe, false) // the directory answered (even "wrong password")
	if _, _, ok := h.admit(); !ok {
		t.Fatal("still failing fast after the directory answered")
	}
}
