package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// countingBackend is an in-memory password and token backend that counts
// how often it was asked.
type countingBackend struct {
	name  string
	users map[string]string // user -> password
	down  atomic.Bool
	calls atomic.Int64
}

func (b *countingBackend) Name() string { return b.name }

func (b *countingBackend) CheckPassword(_ context.Context, user, password string) (*Identity, error) {
	b.calls.Add(1)
	if b.down.Load() {
		return nil, fmt.Errorf("%w: down", ErrUnavailable)
	}
	if pw, ok := b.users[user]; !ok || pw != password {
		return nil, fmt.Errorf("%w: no", ErrBadCredentials)
	}
	return &Identity{User: user, Addresses: []string{user + "@example.org"}, Backend: b.name}, nil
}

func (b *countingBackend) CheckToken(_ context.Context, token string) (*Identity, error) {
	b.calls.Add(1)
	if b.down.Load() {
		return nil, fmt.Errorf("%w: down", ErrUnavailable)
	}
	user, ok := strings.CutPrefix(token, "token-for-")
	if !ok {
		return nil, fmt.Errorf("%w: bad token", ErrBadCredentials)
	}
	return &Identity{User: user, Backend: b.name}, nil
}

// fakeClock is a settable clock.
type fakeClock = testutil.Clock

type authFixture struct {
	a      *Authenticator
	b      *countingBackend
	clock  *fakeClock
	delays *[]time.Duration
	logs   *logBuffer
}

func newAuthFixture(t *testing.T, o Options) *authFixture {
	t.Helper()
	b := &countingBackend{name: "mem", users: map[string]string{"alice": "apw", "bob": "bpw", "carol": "cpw"}}
	clock := testutil.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	log, lb := newTestLogger()
	if o.Password == nil {
		o.Password = []PasswordBackend{b}
	}
	if o.Token == nil {
		o.Token = []TokenBackend{b}
	}
	o.Now, o.Logger = clock.Now, log
	a := New(o)
	var mu sync.Mutex
	delays := &[]time.Duration{}
	a.sleep = func(_ context.Context, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		*delays = append(*delays, d)
	}
	return &authFixture{a: a, b: b, clock: clock, delays: delays, logs: lb}
}

func TestThrottlePerIP(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: 3, FailureWindow: time.Minute})
	ctx := context.Background()
	for i := range 3 {
		// Different user names: the per-user count stays at one each.
		if _, err := f.a.Password(ctx, "192.0.2.1:4321", fmt.Sprintf("nobody%d", i), "x"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	calls := f.b.calls.Load()
	if _, err := f.a.Password(ctx, "192.0.2.1:5555", "alice", "apw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("4th attempt from the same IP: %v, want ErrThrottled", err)
	}
	if _, err := f.a.Token(ctx, "192.0.2.1", "", "token-for-alice"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("token from the locked IP: %v, want ErrThrottled", err)
	}
	if got := f.b.calls.Load(); got != calls {
		t.Errorf("backend asked %d more times while throttled", got-calls)
	}
	if _, err := f.a.Password(ctx, "192.0.2.2", "alice", "apw"); err != nil {
		t.Fatalf("other IP: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestThrottlePerUser(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: 3, FailureWindow: time.Minute})
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.a.Password(ctx, fmt.Sprintf("198.51.100.%d", i), "alice", "guess"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Case does not give a fresh counter.
	if _, err := f.a.Password(ctx, "198.51.100.99", "ALICE", "apw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("locked user from a new IP: %v, want ErrThrottled", err)
	}
	if _, err := f.a.Password(ctx, "198.51.100.99", "bob", "bpw"); err != nil {
		t.Fatalf("other user: %v", err)
	}
	f.clock.Advance(59 * time.Second)
	if _, err := f.a.Password(ctx, "198.51.100.99", "alice", "apw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("inside the window: %v, want ErrThrottled", err)
	}
	f.clock.Advance(time.Second)
	if _, err := f.a.Password(ctx, "198.51.100.99", "alice", "apw"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestThrottleSuccessResetsUserNotIP(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: 3})
	ctx := context.Background()
	ip := "203.0.113.7"
	for range 2 {
		f.a.Password(ctx, ip, "alice", "typo")
	}
	if _, err := f.a.Password(ctx, ip, "alice", "apw"); err != nil {
		t.Fatal(err)
	}
	// alice's count is back to zero: two more failures from elsewhere are fine.
	for range 2 {
		f.a.Password(ctx, "203.0.113.8", "alice", "typo")
	}
	if _, err := f.a.Password(ctx, "203.0.113.9", "alice", "apw"); err != nil {
		t.Fatalf("user count was not reset by the success: %v", err)
	}
	// The IP's count was not: one more failure from it locks it.
	f.a.Password(ctx, ip, "bob", "typo")
	if _, err := f.a.Password(ctx, ip, "carol", "cpw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("IP count was reset by a success: %v", err)
	}
}

func TestThrottleIPv6Prefix(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: 2})
	ctx := context.Background()
	f.a.Password(ctx, "[2001:db8:1:2::1]:1234", "u1", "x")
	f.a.Password(ctx, "2001:db8:1:2::ffff", "u2", "x")
	if _, err := f.a.Password(ctx, "2001:db8:1:2:abcd::9", "alice", "apw"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("same /64: %v, want ErrThrottled", err)
	}
	if _, err := f.a.Password(ctx, "2001:db8:1:3::1", "alice", "apw"); err != nil {
		t.Fatalf("other /64: %v", err)
	}
}

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"":                     "",
		"192.0.2.1":            "ip:192.0.2.1",
		"192.0.2.1:25":         "ip:192.0.2.1",
		"::ffff:192.0.2.1":     "ip:192.0.2.1",
		"[2001:db8::1]:587":    "ip:2001:db8::/64",
		"2001:db8::1%eth0":     "ip:2001:db8::/64",
		"fe80::1:2:3:4":        "ip:fe80::/64",
		"not an address":       "ip:not an address",
		"2001:db8:a:b:c:d:e:f": "ip:2001:db8:a:b::/64",
	} {
		if got := ipKey(in); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFailureDelay(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: 10, FailureDelay: 100 * time.Millisecond})
	ctx := context.Background()
	if _, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw"); err != nil {
		t.Fatal(err)
	}
	if len(*f.delays) != 0 {
		t.Fatalf("success delayed: %v", *f.delays)
	}
	for range 6 {
		f.a.Password(ctx, "192.0.2.1", "alice", "wrong")
	}
	want := []time.Duration{100, 200, 300, 400, 400, 400}
	for i := range want {
		want[i] *= time.Millisecond
	}
	if fmt.Sprint(*f.delays) != fmt.Sprint(want) {
		t.Errorf("delays %v, want %v", *f.delays, want)
	}
	// An outage answers ErrUnavailable, never bad credentials, but no
	// backend accepted: it is counted and delayed like a failure (issue 8
	// item 10; a second backend could have been guessed against).
	f.b.down.Store(true)
	if _, err := f.a.Password(ctx, "192.0.2.9", "bob", "bpw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("backend down: %v", err)
	}
	if len(*f.delays) != len(want)+1 {
		t.Errorf("outage not delayed: %v", *f.delays)
	}
}

func TestSleepCtxHonoursCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sleepCtx(ctx, time.Hour) // returns at once, or the test times out
}

func TestCache(t *testing.T) {
	f := newAuthFixture(t, Options{CacheTTL: time.Minute})
	ctx := context.Background()
	id, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw")
	if err != nil {
		t.Fatal(err)
	}
	id.Addresses[0] = "mallory@example.org" // the caller's copy; the cache keeps its own
	if n := f.b.calls.Load(); n != 1 {
		t.Fatalf("calls %d", n)
	}
	id, err = f.a.Password(ctx, "192.0.2.2", "alice", "apw")
	if err != nil || id.Addresses[0] != "alice@example.org" || id.Backend != "mem" {
		t.Fatalf("cached: %+v, %v", id, err)
	}
	if n := f.b.calls.Load(); n != 1 {
		t.Errorf("cache hit still asked the backend (%d calls)", n)
	}
	// A different password misses, and is checked (and refused) by the backend.
	if _, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw2"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("other password: %v", err)
	}
	if n := f.b.calls.Load(); n != 2 {
		t.Errorf("calls %d, want 2", n)
	}
	// Length-prefixed key: ("alic","eapw") is not ("alice","apw").
	if _, err := f.a.Password(ctx, "192.0.2.1", "alic", "eapw"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("shifted split: %v", err)
	}
	f.clock.Advance(59 * time.Second)
	f.a.Password(ctx, "192.0.2.1", "alice", "apw")
	if n := f.b.calls.Load(); n != 3 {
		t.Errorf("calls %d, want 3 (hit before TTL)", n)
	}
	f.clock.Advance(time.Second)
	f.b.down.Store(true)
	if _, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after TTL the backend must be asked again: %v", err)
	}
	// Tokens are never cached.
	f.b.down.Store(false)
	before := f.b.calls.Load()
	for range 2 {
		if _, err := f.a.Token(ctx, "192.0.2.1", "", "token-for-alice"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.b.calls.Load() - before; n != 2 {
		t.Errorf("token checks %d, want 2", n)
	}
	if strings.Contains(f.logs.String(), "apw") {
		t.Errorf("a password reached the log:\n%s", f.logs)
	}
}

func TestCacheDisabled(t *testing.T) {
	f := newAuthFixture(t, Options{})
	for range 2 {
		if _, err := f.a.Password(context.Background(), "192.0.2.1", "alice", "apw"); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.b.calls.Load(); n != 2 {
		t.Errorf("calls %d, want 2 with CacheTTL 0", n)
	}
}

func TestChainOutageIsNotBadCredentials(t *testing.T) {
	down := &countingBackend{name: "ldap", users: map[string]string{}}
	down.down.Store(true)
	f := newAuthFixture(t, Options{})
	f.a.opts.Password = []PasswordBackend{down, f.b}
	ctx := context.Background()
	if _, err := f.a.Password(ctx, "192.0.2.1", "alice", "wrong"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if id, err := f.a.Password(ctx, "192.0.2.1", "alice", "apw"); err != nil || id.Backend != "mem" {
		t.Fatalf("second backend: %+v, %v", id, err)
	}
}

func TestTokenAuthzid(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: 2})
	ctx := context.Background()
	if id, err := f.a.Token(ctx, "192.0.2.1", "Alice", "token-for-alice"); err != nil || id.User != "alice" {
		t.Fatalf("matching authzid: %+v, %v", id, err)
	}
	if _, err := f.a.Token(ctx, "192.0.2.1", "bob", "token-for-alice"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("other authzid: %v", err)
	}
	if _, err := f.a.Token(ctx, "192.0.2.1", "", "garbage"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("bad token: %v", err)
	}
	if _, err := f.a.Token(ctx, "192.0.2.1", "", "token-for-alice"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after two failures: %v", err)
	}
	if strings.Contains(f.logs.String(), "token-for") {
		t.Errorf("a token reached the log")
	}
}

func TestThrottleDisabled(t *testing.T) {
	f := newAuthFixture(t, Options{MaxFailures: -1, FailureDelay: -1})
	for range 20 {
		f.a.Password(context.Background(), "192.0.2.1", "alice", "x")
	}
	if _, err := f.a.Password(context.Background(), "192.0.2.1", "alice", "apw"); err != nil {
		t.Fatal(err)
	}
	if f.a.delay != 0 || len(*f.delays) != 0 {
		t.Errorf("negative FailureDelay still delays")
	}
}

func TestFailureTableBounded(t *testing.T) {
	tab := newFailureTable(5, time.Minute, 100)
	now := time.Now()
	for i := range 1000 {
		tab.fail(fmt.Sprintf("ip:%d", i), now)
		if n := tab.len(); n > 100 {
			t.Fatalf("table grew to %d", n)
		}
	}
	// Expired entries go first.
	tab = newFailureTable(5, time.Minute, 100)
	for i := range 100 {
		tab.fail(fmt.Sprintf("old:%d", i), now)
	}
	tab.fail("new", now.Add(2*time.Minute))
	if n := tab.len(); n != 1 {
		t.Errorf("after pruning expired entries: %d, want 1", n)
	}
}

func TestCacheBounded(t *testing.T) {
	c := newSuccessCache(time.Minute)
	now := time.Now()
	id := &Identity{User: "u"}
	for i := range maxCached + 10 {
		c.put(fmt.Sprint("u", i), "p", id, now)
	}
	c.mu.Lock()
	n := len(c.m)
	c.mu.Unlock()
	if n > maxCached {
		t.Errorf("cache grew to %d", n)
	}
}

// slowBackend counts calls and blocks each until released.
type slowBackend struct {
	mu      sync.Mutex
	calls   int
	release chan struct{}
}

func (b *slowBackend) Name() string { return "slow" }
func (b *slowBackend) CheckPassword(ctx context.Context, user, password string) (*Identity, error) {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	<-b.release
	if password != "right" {
		return nil, ErrBadCredentials
	}
	return &Identity{User: user, Addresses: []string{user}, Backend: "slow"}, nil
}

// TestConcurrentLoginsShareOneCheck: a burst of logins with the same user
// and password costs one backend call, not one per connection.
func TestConcurrentLoginsShareOneCheck(t *testing.T) {
	b := &slowBackend{release: make(chan struct{})}
	a := New(Options{Password: []PasswordBackend{b}, CacheTTL: time.Minute, FailureDelay: -1})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := a.Password(context.Background(), "192.0.2.1", "u@example.org", "right")
			if err == nil && id.User != "u@example.org" {
				err = errors.New("wrong identity")
			}
			errs <- err
		}()
	}
	// Let the goroutines pile up on the one call in flight, then release it.
	for {
		b.mu.Lock()
		n := b.calls
		b.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(b.release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if b.calls != 1 {
		t.Fatalf("%d backend calls for 20 concurrent identical logins, want 1", b.calls)
	}
	// A different password is not shared with, nor served from, the cache.
	if _, err := a.Password(context.Background(), "192.0.2.1", "u@example.org", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
}

// clockBackend takes `cost` of (fake) time to answer, like a directory
// bind or a bcrypt comparison.
type clockBackend struct {
	clock *fakeClock
	cost  time.Duration
}

func (b *clockBackend) Name() string { return "slowdir" }
func (b *clockBackend) CheckPassword(_ context.Context, user, _ string) (*Identity, error) {
	b.clock.Advance(b.cost)
	return nil, fmt.Errorf("%w: wrong password for %s", ErrBadCredentials, user)
}

// TestFailureDelayIsAFloor: a failure is answered FailureDelay after the
// attempt started, however long the backend took (up to that), so a fast
// "unknown user" and a slow "wrong password" cannot be told apart by time.
func TestFailureDelayIsAFloor(t *testing.T) {
	for _, cost := range []time.Duration{0, 40 * time.Millisecond, 90 * time.Millisecond} {
		f := newAuthFixture(t, Options{FailureDelay: 100 * time.Millisecond, MaxFailures: 100})
		f.a.opts.Password = []PasswordBackend{&clockBackend{clock: f.clock, cost: cost}}
		if _, err := f.a.Password(context.Background(), "192.0.2.1", "u"+cost.String(), "x"); !errors.Is(err, ErrBadCredentials) {
			t.Fatal(err)
		}
		if d := *f.delays; len(d) != 1 || cost+d[0] != 100*time.Millisecond {
			t.Errorf("backend took %v: slept %v, want the answer at 100ms", cost, d)
		}
	}
}
