package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gateBackend refuses every password, counts calls, and holds each call
// until released, so that all parallel attempts are in flight at once.
type gateBackend struct {
	calls   atomic.Int64
	release chan struct{}
}

func (b *gateBackend) Name() string { return "gate" }
func (b *gateBackend) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	b.calls.Add(1)
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, fmt.Errorf("%w: no", ErrBadCredentials)
}

// TestThrottleReservesBeforeAsking (issue 8 item 11): 100 parallel wrong
// guesses from one client with MaxFailures 5: at most 5 reach the backend
// (no slack: an attempt is reserved atomically before any backend is asked,
// and further attempts wait for a reservation to settle or are refused).
func TestThrottleReservesBeforeAsking(t *testing.T) {
	for _, cacheTTL := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprint("cache=", cacheTTL), func(t *testing.T) {
			b := &gateBackend{release: make(chan struct{})}
			a := New(Options{Password: []PasswordBackend{b}, MaxFailures: 5, FailureDelay: -1, CacheTTL: cacheTTL})
			var wg sync.WaitGroup
			var throttled, bad atomic.Int64
			for i := range 100 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := a.Password(context.Background(), "192.0.2.50", "alice", fmt.Sprint("guess", i))
					switch {
					case errors.Is(err, ErrThrottled):
						throttled.Add(1)
					case errors.Is(err, ErrBadCredentials):
						bad.Add(1)
					default:
						t.Errorf("attempt %d: %v", i, err)
					}
				}()
			}
			// Let every goroutine reach the backend or the throttle, then
			// let the backend answer.
			time.Sleep(100 * time.Millisecond)
			close(b.release)
			wg.Wait()
			if n := b.calls.Load(); n > 5 {
				t.Errorf("%d of 100 parallel wrong guesses reached the backend, want at most 5", n)
			}
			if bad.Load()+throttled.Load() != 100 || throttled.Load() < 95 {
				t.Errorf("bad credentials %d, throttled %d", bad.Load(), throttled.Load())
			}
		})
	}
}

// TestThrottleCountsPartialOutage (issue 8 item 10): with one backend down
// and another that can accept the password, wrong guesses answer 454 (an
// outage is not a wrong password) but are counted and delayed: after
// MaxFailures the client is throttled and the working backend is no
// longer asked.
func TestThrottleCountsPartialOutage(t *testing.T) {
	down := &countingBackend{name: "ldap", users: map[string]string{}}
	down.down.Store(true)
	f := newAuthFixture(t, Options{MaxFailures: 5, FailureDelay: 100 * time.Millisecond})
	f.a.opts.Password = []PasswordBackend{down, f.b}
	ctx := context.Background()
	for i := range 5 {
		if _, err := f.a.Password(ctx, "192.0.2.1", "alice", fmt.Sprint("guess", i)); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("guess %d: %v, want ErrUnavailable", i, err)
		}
	}
	if len(*f.delays) != 5 {
		t.Errorf("failure delays %v, want one per guess", *f.delays)
	}
	calls := f.b.calls.Load()
	if _, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("6th attempt (right password): %v, want ErrThrottled", err)
	}
	if _, err := f.a.Password(ctx, "198.51.100.1", "alice", "apw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("same user from elsewhere: %v, want ErrThrottled", err)
	}
	if f.b.calls.Load() != calls {
		t.Errorf("the working backend was asked while throttled")
	}
	// Tokens too.
	tf := newAuthFixture(t, Options{MaxFailures: 2})
	tf.a.opts.Token = []TokenBackend{down, tf.b}
	for range 2 {
		if _, err := tf.a.Token(ctx, "192.0.2.1", "", "garbage"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("token: %v", err)
		}
	}
	if _, err := tf.a.Token(ctx, "192.0.2.1", "", "token-for-alice"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("token after 2 failures in a partial outage: %v, want ErrThrottled", err)
	}
}
