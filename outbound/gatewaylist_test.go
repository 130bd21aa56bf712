package outbound

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// deadAddr is a loopback address where nothing listens: dialing it is
// refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// plainGateway is a GatewayConfig without TLS for a script server's
// stand-in name (the harness dials name through dialMap).
func plainGateway(name string) GatewayConfig {
	return GatewayConfig{URL: "smtp+insecure://" + name, Addr: name, TLS: GatewayTLSNone}
}

// eventLog collects Options.ObserveGateway's events.
type eventLog struct {
	mu sync.Mutex
	ev []GatewayEvent
}

func (e *eventLog) add(ev GatewayEvent) { e.mu.Lock(); e.ev = append(e.ev, ev); e.mu.Unlock() }

func (e *eventLog) count(gateway, kind string, down bool) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if ev.Gateway == gateway && ev.Kind == kind && (kind != GatewayAttempt || ev.Down == down) {
			n++
		}
	}
	return n
}

// pairHarness is a worker whose RELAY_GATEWAY is a.test:25, b.test:25, in
// that order, mapped to the given real addresses.
func pairHarness(t *testing.T, a, b string, ev *eventLog) *harness {
	h := newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{plainGateway("a.test:25"), plainGateway("b.test:25")}
		o.ObserveGateway = ev.add
	})
	h.dialMap["a.test:25"], h.dialMap["b.test:25"] = a, b
	return h
}

func (h *harness) dialedCount(addr string) int {
	n := 0
	for _, d := range h.Dialed() {
		if d == addr {
			n++
		}
	}
	return n
}

// TestFailoverFirstRefuses: the first gateway refuses connections, so the
// message goes through the second in the same attempt; the first is then
// skipped during its back-off, and used again once the back-off is over
// and it works.
func TestFailoverFirstRefuses(t *testing.T) {
	b := newScriptServer(t)
	ev := &eventLog{}
	h := pairHarness(t, deadAddr(t), b.Addr, ev)

	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed || r.Attempts != 1 {
		t.Fatalf("status %s attempts %d reply %v, want relayed through b in the first attempt", r.Status, r.Attempts, r.Reply)
	}
	if len(b.Received()) != 1 {
		t.Fatalf("b got %d messages, want 1", len(b.Received()))
	}
	if !strings.Contains(h.log.String(), "gateway down, failing over") || !strings.Contains(h.log.String(), "next=smtp+insecure://b.test:25") {
		t.Errorf("no failover line in the log:\n%s", h.log)
	}
	if ev.count("smtp+insecure://a.test:25", GatewayFailover, false) != 1 || ev.count("smtp+insecure://a.test:25", GatewayAttempt, true) != 1 ||
		ev.count("smtp+insecure://b.test:25", GatewayAttempt, false) != 1 {
		t.Errorf("events %+v, want a down with one failover, b one attempt", ev.ev)
	}

	// During a's back-off, a is not dialed at all.
	h.enqueue(nil, bob)
	h.attempt()
	if n := h.dialedCount("a.test:25"); n != 1 {
		t.Errorf("a dialed %d times, want 1 (skipped during its back-off)", n)
	}

	// a recovers; after its back-off it gets the mail again.
	a := newScriptServer(t)
	h.mu.Lock()
	h.dialMap["a.test:25"] = a.Addr
	h.mu.Unlock()
	h.clock.Advance(time.Minute)
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("after recovery: status %s reply %v", r.Status, r.Reply)
	}
	if len(a.Received()) != 1 || len(b.Received()) != 2 {
		t.Fatalf("a got %d, b %d; want 1 and 2 (back to the first)", len(a.Received()), len(b.Received()))
	}
	if st := h.w.GatewayStatus(); !st[0].DownSince.IsZero() || st[0].LastError != "" {
		t.Errorf("a's status after it worked: %+v", st[0])
	}
}

// TestFailover421Greeting: a 421 greeting is the gateway saying it cannot
// serve now (RFC 5321 §3.1): the next one is used.
func TestFailover421Greeting(t *testing.T) {
	a := newScriptServer(t, withGreet(replyStep(421, "4.3.2", "busy")))
	b := newScriptServer(t)
	h := pairHarness(t, a.Addr, b.Addr, &eventLog{})
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v, want relayed through b", r.Status, r.Reply)
	}
	if len(a.Received()) != 0 || len(b.Received()) != 1 {
		t.Fatalf("a got %d, b %d, want 0 and 1", len(a.Received()), len(b.Received()))
	}
	st := h.w.GatewayStatus()
	if st[0].DownSince.IsZero() || !strings.Contains(st[0].LastError, "421") {
		t.Errorf("a's status %+v, want down with its 421", st[0])
	}
}

// TestNoFailoverOnRecipientReply: once MAIL was sent the gateway decides:
// a 5xx for a recipient fails it for good and a 4xx leaves it pending for
// the retry schedule (RFC 5321 §4.2.5); neither goes to the next gateway,
// and neither puts the first in back-off.
func TestNoFailoverOnRecipientReply(t *testing.T) {
	a := newScriptServer(t, withRcpt(bob, replyStep(550, "5.1.1", "no such user")),
		withRcpt(carol, replyStep(451, "4.3.0", "try later")))
	b := newScriptServer(t)
	ev := &eventLog{}
	h := pairHarness(t, a.Addr, b.Addr, ev)
	h.enqueue(nil, bob, carol)
	env := h.attempt()
	if r := rcpt(t, env, bob); r.Status != queue.StatusFailed || r.Reply.Code != 550 {
		t.Errorf("bob: %s %v, want failed with a's 550", r.Status, r.Reply)
	}
	if r := rcpt(t, env, carol); r.Status != queue.StatusPending || r.Reply.Code != 451 {
		t.Errorf("carol: %s %v, want pending with a's 451", r.Status, r.Reply)
	}
	if b.Conns() != 0 {
		t.Errorf("b got %d connections, want none", b.Conns())
	}
	if ev.count("smtp+insecure://a.test:25", GatewayFailover, false) != 0 || !h.w.GatewayStatus()[0].DownSince.IsZero() {
		t.Errorf("a failed over or is marked down: %+v", h.w.GatewayStatus())
	}
}

// TestAllBackingOffStillTries: with every gateway down, an attempt tries
// each once; the next attempt, while all are backing off, still tries one
// (the least recently failed), never none.
func TestAllBackingOffStillTries(t *testing.T) {
	h := pairHarness(t, deadAddr(t), deadAddr(t), &eventLog{})
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusPending || r.Reply.Code/100 != 4 {
		t.Fatalf("status %s reply %v, want pending", r.Status, r.Reply)
	}
	if h.dialedCount("a.test:25") != 1 || h.dialedCount("b.test:25") != 1 {
		t.Fatalf("dialed %v, want a then b", h.Dialed())
	}
	h.clock.Advance(time.Second) // a failed first: b is the more recent
	h.enqueue(nil, carol)
	if r := rcpt(t, h.attempt(), carol); r.Status != queue.StatusPending {
		t.Fatalf("status %s, want pending", r.Status)
	}
	if d := h.Dialed(); len(d) != 3 {
		t.Fatalf("dialed %v, want exactly one more gateway tried", d)
	}
	if !strings.Contains(h.log.String(), "no other gateway to try") {
		t.Errorf("log lacks the give-up line:\n%s", h.log)
	}
}

func TestBackoffFor(t *testing.T) {
	for _, c := range []struct {
		base time.Duration
		n    int
		want time.Duration
	}{
		{time.Minute, 1, time.Minute}, {time.Minute, 2, 2 * time.Minute}, {time.Minute, 4, 8 * time.Minute},
		{time.Minute, 5, 15 * time.Minute}, {time.Minute, 500, 15 * time.Minute},
		{time.Hour, 1, time.Hour}, {time.Hour, 9, time.Hour}, {10 * time.Second, 3, 40 * time.Second},
	} {
		if got := backoffFor(c.base, c.n); got != c.want {
			t.Errorf("backoffFor(%v, %d) = %v, want %v", c.base, c.n, got, c.want)
		}
	}
}

// TestFailoverConcurrent: many deliveries in flight at once through a list
// whose first gateway is down all arrive through the second (run with
// -race: the list's state is shared).
func TestFailoverConcurrent(t *testing.T) {
	b := newScriptServer(t)
	h := newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{plainGateway("a.test:25"), plainGateway("b.test:25")}
		o.Concurrency = 6
		o.GatewayBackoff = time.Nanosecond // a is tried again by nearly every delivery
	})
	h.dialMap["a.test:25"], h.dialMap["b.test:25"] = deadAddr(t), b.Addr
	const n = 30
	for range n {
		h.enqueue(nil, bob)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for h.q.Len() > 0 && time.Now().Before(deadline) {
		h.clock.Advance(time.Millisecond)
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if got := len(b.Received()); got != n || h.q.Len() != 0 {
		t.Fatalf("b got %d of %d, queue holds %d", got, n, h.q.Len())
	}
}

// fakeHop is a hop whose answer the test sets: down or a delivery.
type fakeHop struct {
	n     string
	mu    sync.Mutex
	down  bool
	calls int
}

func (f *fakeHop) name() string { return f.n }

func (f *fakeHop) deliver(_ context.Context, _ *queue.Message, idx []int) (map[int]result, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	res := map[int]result{}
	for _, i := range idx {
		if f.down {
			res[i] = result{status: queue.StatusPending, reply: replyNotAttempted()}
		} else {
			res[i] = result{status: queue.StatusRelayed}
		}
	}
	return res, f.down
}

func (f *fakeHop) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *fakeHop) take() int { f.mu.Lock(); defer f.mu.Unlock(); n := f.calls; f.calls = 0; return n }

// TestGatewayListProbeLeastRecentlyFailed: with every gateway backing off,
// the one whose last failure is oldest is tried, once per attempt; its
// back-off doubles with each failure; a success resets it.
func TestGatewayListProbeLeastRecentlyFailed(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.GatewayBackoff = time.Minute })
	a, b, c := &fakeHop{n: "a", down: true}, &fakeHop{n: "b", down: true}, &fakeHop{n: "c", down: true}
	l := &gatewayList{w: h.w, hops: []hop{a, b, c}, state: make([]hopState, 3)}
	m := &queue.Message{Envelope: &queue.Envelope{ID: "x", Recipients: []queue.Recipient{{Addr: bob}}}}
	deliver := func() map[int]result { return l.deliver(context.Background(), m, []int{0}) }

	// b fails first, then c, then a (each alone: the others are backing off).
	l.down(1, nil, nil, l.state[1].gen)
	h.clock.Advance(time.Second)
	l.down(2, nil, nil, l.state[2].gen)
	h.clock.Advance(time.Second)
	l.down(0, nil, nil, l.state[0].gen)
	if r := deliver(); r[0].status != queue.StatusPending || b.take() != 1 || a.take()+c.take() != 0 {
		t.Fatalf("all backing off: want only b (failed longest ago) tried")
	}
	// b failed again just now: c is the least recently failed.
	if deliver(); c.take() != 1 || a.take()+b.take() != 0 {
		t.Fatal("next attempt: want only c tried")
	}
	l.mu.Lock()
	until, failures := l.state[1].until.Sub(h.clock.Now()), l.state[1].failures
	l.mu.Unlock()
	if failures != 2 || until != 2*time.Minute {
		t.Errorf("b: %d failures, back-off %v; want 2 and 2m", failures, until)
	}
	// a comes back: after its back-off it is tried first and works.
	a.set(false)
	h.clock.Advance(time.Minute)
	if r := deliver(); r[0].status != queue.StatusRelayed || a.take() != 1 || b.take()+c.take() != 0 {
		t.Fatal("after a's back-off: want a tried first and delivered")
	}
	if st := l.status(); !st[0].DownSince.IsZero() || st[1].DownSince.IsZero() {
		t.Errorf("status %+v: a up, b down", st)
	}
	// A delivery cancelled by shutdown marks nothing down.
	a.set(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.deliver(ctx, m, []int{0})
	if st := l.status(); !st[0].DownSince.IsZero() {
		t.Errorf("a marked down by a cancelled delivery: %+v", st[0])
	}
}

// TestFailoverNoSTARTTLS: smtp:// requires STARTTLS; a gateway that does
// not offer it is down and the next one gets the mail.
func TestFailoverNoSTARTTLS(t *testing.T) {
	a := newScriptServer(t) // no TLS: STARTTLS not offered
	b := newScriptServer(t, withTLS())
	h := newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{
			{URL: "smtp://a.test:587", Addr: "a.test:587", TLS: GatewayTLSStartTLS},
			{URL: "smtp://b.test:587", Addr: "b.test:587", TLS: GatewayTLSStartTLS},
		}
	})
	h.dialMap["a.test:587"], h.dialMap["b.test:587"] = a.Addr, b.Addr
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v, want relayed through b", r.Status, r.Reply)
	}
	if len(a.Received()) != 0 || len(b.Received()) != 1 || !b.Received()[0].TLS {
		t.Fatalf("a got %d, b %d", len(a.Received()), len(b.Received()))
	}
}
