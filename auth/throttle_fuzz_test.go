package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fuzzDirectory refuses every password, like a directory under a guessing
// attack. Spellings "uN", "UN" and "uN@example.org" resolve to one entry
// (canonical "dir:N"), which it checks with the throttle before its
// "bind", as the LDAP backend does. It records, per client, user key and
// entry, how many requests reached it.
type fuzzDirectory struct {
	mu       sync.Mutex
	searches map[string]int // per lowercased spelling
	binds    map[string]int // per canonical entry
	byIP     map[string]int
}

type ipCtxKey struct{}

func (d *fuzzDirectory) Name() string { return "fuzzdir" }
func (d *fuzzDirectory) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	ip, _ := ctx.Value(ipCtxKey{}).(string)
	canonical := "dir:" + strings.TrimSuffix(strings.ToLower(user), "@example.org")
	d.mu.Lock()
	d.searches[strings.ToLower(user)]++
	d.byIP[ip]++
	d.mu.Unlock()
	if strings.HasSuffix(password, "!") {
		return nil, fmt.Errorf("%w: directory busy", ErrUnavailable)
	}
	if err := CheckEntry(ctx, canonical); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.binds[canonical]++
	d.mu.Unlock()
	return nil, &RefusedEntryError{Canonical: canonical, Err: fmt.Errorf("%w: wrong password", ErrBadCredentials)}
}

// FuzzThrottleConcurrency checks the invariant of TESTING.md §1: no request
// reaches an identity backend once its throttle says no, whatever the
// concurrency (issue 8 items 10-12). The input is a list of attempts, each
// byte choosing the client (4), the user and spelling (3 users × 3
// spellings), and whether the backend answers "wrong password" or
// "unavailable"; a 0xff byte starts a new wave of concurrent attempts. With
// every attempt failing inside one window, no client network, user key or
// canonical entry may see more than MaxFailures requests. Each case must
// finish within 2 s.
func FuzzThrottleConcurrency(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0, 0, 0})
	f.Add([]byte{1, 9, 17, 25, 33, 41, 49, 57, 0xff, 65, 73, 81, 89})
	f.Add([]byte{0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0xff, 0x86, 0x87, 0x88})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 256 {
			ops = ops[:256]
		}
		const maxFail = 3
		d := &fuzzDirectory{searches: map[string]int{}, binds: map[string]int{}, byIP: map[string]int{}}
		clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		a := New(Options{Password: []PasswordBackend{d}, MaxFailures: maxFail, FailureDelay: -1,
			CacheTTL: time.Minute, Now: func() time.Time { return clock }})
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			for i, op := range ops {
				if op == 0xff {
					wg.Wait()
					continue
				}
				ip := fmt.Sprintf("192.0.2.%d", op&3)
				u := int(op>>2) & 3 % 3
				user := []string{"u%d", "U%d", "u%d@example.org"}[int(op>>4)&3%3]
				user = fmt.Sprintf(user, u)
				pw := fmt.Sprint("guess", i)
				if op&0x80 != 0 {
					pw += "!"
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.WithValue(context.Background(), ipCtxKey{}, ip)
					if id, err := a.Password(ctx, ip, user, pw); id != nil || err == nil {
						t.Errorf("a wrong password was accepted: %+v", id)
					}
				}()
			}
			wg.Wait()
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("attempts did not finish within 2 s (ops %x)", ops)
		}
		for k, n := range d.byIP {
			if n > maxFail {
				t.Errorf("client %s reached the backend %d times, limit %d", k, n, maxFail)
			}
		}
		for k, n := range d.searches {
			if n > maxFail {
				t.Errorf("user %q reached the backend %d times, limit %d", k, n, maxFail)
			}
		}
		for k, n := range d.binds {
			if n > maxFail {
				t.Errorf("entry %s was bound %d times, limit %d", k, n, maxFail)
			}
		}
	})
}
