package relay

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// switchQueue takes delay over each Enqueue and fails it while fail is set.
type switchQueue struct {
	queue.Queue
	delay time.Duration
	fail  *atomic.Bool
}

func (q switchQueue) Enqueue(ctx context.Context, env *queue.Envelope, r io.Reader) (string, error) {
	time.Sleep(q.delay)
	if q.fail.Load() {
		io.Copy(io.Discard, r)
		return "", errors.New("queue backend down")
	}
	return q.Queue.Enqueue(ctx, env, r)
}

// TestObserveAccept: Options.Observe gets one Accept per reply to a final
// dot, with the result Stats counts and the time from MAIL to that reply;
// a transaction aborted by RSET is not observed.
func TestObserveAccept(t *testing.T) {
	const delay = 30 * time.Millisecond
	var (
		mu  sync.Mutex
		got []Accept
	)
	fail := new(atomic.Bool)
	e := newEnv(t, func(o *Options) {
		o.Queue = switchQueue{Queue: o.Queue, delay: delay, fail: fail}
		o.Observe = func(a Accept) {
			mu.Lock()
			got = append(got, a)
			mu.Unlock()
		}
	})
	c := e.authed(alice, alicePW)
	send := func(from string) int {
		c.must(250, "2.", "MAIL FROM:<%s>", alice)
		c.must(250, "2.", "RCPT TO:<%s>", bob)
		code, _ := c.data(message(from, bob, ""))
		return code
	}
	if code := send(alice); code != 250 {
		t.Fatalf("queued: %d", code)
	}
	if code := send(bob); code != 550 { // header From not the user's
		t.Fatalf("refused: %d", code)
	}
	fail.Store(true)
	if code := send(alice); code != 451 {
		t.Fatalf("queue error: %d", code)
	}
	c.must(250, "2.", "MAIL FROM:<%s>", alice)
	c.must(250, "2.", "RSET")

	mu.Lock()
	defer mu.Unlock()
	want := []string{AcceptQueued, AcceptRefused, AcceptQueueError}
	if len(got) != len(want) {
		t.Fatalf("observed %d accepts %v, want %d", len(got), got, len(want))
	}
	for i, a := range got {
		if a.Result != want[i] {
			t.Errorf("accept %d: result %q, want %q", i, a.Result, want[i])
		}
		if a.Duration <= 0 || a.Duration > time.Minute {
			t.Errorf("accept %d: duration %v", i, a.Duration)
		}
	}
	// The queue was asked (and took delay) for the queued and the failed one.
	for _, i := range []int{0, 2} {
		if got[i].Duration < delay {
			t.Errorf("accept %d: duration %v, less than the queue's %v", i, got[i].Duration, delay)
		}
	}
	s := e.srv.Stats()
	if s.Queued != 1 || s.Refused != 1 || s.QueueErrors != 1 {
		t.Errorf("stats %+v: want one of each", s)
	}
}
