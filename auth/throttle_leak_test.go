package auth

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdBackend accepts alice/right at once and holds every other password
// until release, then refuses it; a password "boom" panics (a backend bug,
// or a client library that panics on a malformed answer).
type holdBackend struct {
	calls   atomic.Int64
	release chan struct{}
}

func (b *holdBackend) Name() string { return "hold" }
func (b *holdBackend) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	b.calls.Add(1)
	switch password {
	case "right":
		return &Identity{User: user, Backend: "hold", Canonical: "hold:" + user}, nil
	case "boom":
		panic("backend bug")
	}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, fmt.Errorf("%w: no", ErrBadCredentials)
}

// TestThrottleCacheNotAnOracle (review of issue 8 item 11): with MaxFailures
// 5 and five wrong guesses in flight, a further 95 concurrent guesses from
// other clients must not be evaluated, not even against the success cache:
// the correct password among them, cached by the real user's login a moment
// ago, must not be accepted. Before the fix the cache was consulted before
// the reservation, so every concurrent guess was tried against it.
func TestThrottleCacheNotAnOracle(t *testing.T) {
	b := &holdBackend{release: make(chan struct{})}
	a := New(Options{Password: []PasswordBackend{b}, MaxFailures: 5, FailureDelay: -1, CacheTTL: time.Minute})
	if _, err := a.Password(context.Background(), "198.51.100.1", "alice", "right"); err != nil {
		t.Fatal(err) // the real user logs in: the password is now cached
	}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.Password(context.Background(), fmt.Sprintf("192.0.2.%d", i), "alice", fmt.Sprint("guess", i))
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); b.calls.Load() < 6; {
		if time.Now().After(deadline) {
			t.Fatal("the first five guesses did not reach the backend")
		}
		time.Sleep(time.Millisecond)
	}
	var accepted atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	for i := 5; i < 100; i++ {
		pw := fmt.Sprint("guess", i)
		if i == 73 {
			pw = "right"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id, err := a.Password(ctx, fmt.Sprintf("203.0.113.%d", i), "alice", pw); err == nil && id != nil {
				accepted.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(b.release)
	wg.Wait()
	if n := accepted.Load(); n != 0 {
		t.Errorf("a guess beyond MaxFailures was evaluated and accepted (success cache consulted before the throttle): %d", n)
	}
	if n := b.calls.Load(); n > 6 {
		t.Errorf("%d backend calls, want at most 6 (one login, five guesses)", n)
	}
}

// callRecovering calls a.Password like go-smtp does: a panic is recovered
// by the caller and the process goes on.
func callRecovering(a *Authenticator, ctx context.Context, ip, user, pw string) (id *Identity, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return a.Password(ctx, ip, user, pw)
}

// TestBackendPanicLeaksNothing (review of issue 8 items 10-11): a backend
// that panics must not leak the attempt's reservation (after MaxFailures
// such panics the client and the user were locked out for good: every
// later attempt waited for room that never came) nor wedge the shared
// flight (the same user and password waited forever). A panic is an
// outage: ErrUnavailable, counted like one, and forgotten with the window.
func TestBackendPanicLeaksNothing(t *testing.T) {
	b := &holdBackend{release: make(chan struct{})}
	close(b.release)
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	a := New(Options{Password: []PasswordBackend{b}, MaxFailures: 5, FailureDelay: -1, CacheTTL: time.Minute, Now: now})
	for i := range 5 {
		done := make(chan error, 1)
		go func() {
			_, err := callRecovering(a, context.Background(), "192.0.2.7", "alice", "boom")
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("attempt %d: a panicking backend authenticated", i)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("attempt %d with the same user and password as a panicked check hangs (flight wedged)", i)
		}
	}
	mu.Lock()
	clock = clock.Add(DefaultFailureWindow + time.Second)
	mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := callRecovering(a, ctx, "192.0.2.7", "alice", "right"); err != nil {
		t.Fatalf("after the window, the right password: %v (reservations leaked by the panics lock the user out for good)", err)
	}
	if n := a.fails.len(); n != 0 {
		t.Errorf("%d throttle entries left after a success", n)
	}
}

// TestTokenBackendPanicLeaksNothing: the same for a token backend.
func TestTokenBackendPanicLeaksNothing(t *testing.T) {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	a := New(Options{Token: []TokenBackend{panicToken{}}, MaxFailures: 3, FailureDelay: -1, Now: now})
	for range 3 {
		func() {
			defer func() { recover() }()
			a.Token(context.Background(), "192.0.2.8", "alice", "tok")
		}()
	}
	mu.Lock()
	clock = clock.Add(DefaultFailureWindow + time.Second)
	mu.Unlock()
	a.fails.mu.Lock()
	defer a.fails.mu.Unlock()
	for k, f := range a.fails.m {
		if f.pending != 0 {
			t.Errorf("%s: %d reservations still in flight after the panics: leaked", k, f.pending)
		}
	}
}

type panicToken struct{}

func (panicToken) Name() string { return "panic" }
func (panicToken) CheckToken(context.Context, string) (*Identity, error) {
	panic("token backend bug")
}
