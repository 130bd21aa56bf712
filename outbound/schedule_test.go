package outbound

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

func TestExpiryFailsWith447(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(451, "4.2.1", "mailbox busy")))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.RetrySchedule = []time.Duration{time.Hour}
		o.QueueLifetime = 3 * time.Hour
		o.DelayWarning = -1
	}))
	h.enqueue(nil, bob)
	for i := range 3 {
		if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusPending {
			t.Fatalf("attempt %d: %s", i+1, r.Status)
		}
		h.clock.Advance(time.Hour)
	}
	// Three hours after arrival: the fourth attempt still fails and the
	// lifetime is over.
	env := h.attempt()
	r := rcpt(t, env, bob)
	if r.Status != queue.StatusFailed || r.Reply.Enhanced != "4.4.7" || !r.Reported {
		t.Fatalf("status %s reply %q reported %v, want failed 4.4.7", r.Status, r.Reply, r.Reported)
	}
	if s := r.Reply.String(); !strings.Contains(s, "451 4.2.1 mailbox busy") || !strings.Contains(s, "3h") {
		t.Errorf("reply %q lost the last remote reply or the lifetime", s)
	}
	calls := h.rep.Calls()
	if len(calls) != 1 || calls[0].Kind != dsn.Failed || !slices.Equal(calls[0].Rcpts, []string{bob}) {
		t.Fatalf("reports %+v, want one failed report", calls)
	}
	if h.q.Len() != 0 {
		t.Fatal("expired message still queued")
	}
}

func TestRescheduleNeverPastExpiry(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(451, "4.2.1", "busy")))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.RetrySchedule = []time.Duration{4 * time.Hour}
		o.QueueLifetime = 90 * time.Minute
	}))
	h.enqueue(nil, bob)
	h.attempt()
	h.clock.Advance(89 * time.Minute)
	h.noneDue()
	h.clock.Advance(time.Minute)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusFailed || r.Reply.Enhanced != "4.4.7" {
		t.Fatalf("status %s reply %v", r.Status, r.Reply)
	}
}

func TestDelayWarningOnce(t *testing.T) {
	srv := newScriptServer(t,
		withRcpt(bob, replyStep(451, "4.2.1", "busy")),
		withRcpt(carol, replyStep(451, "4.2.1", "busy")),
		withRcpt("dave@example.net", replyStep(451, "4.2.1", "busy")))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.RetrySchedule = []time.Duration{time.Hour}
		o.DelayWarning = 2 * time.Hour
	}))
	h.enqueue(func(e *queue.Envelope) {
		e.Recipients[1].Notify = []string{queue.NotifyFailure} // carol wants no delay report
	}, bob, carol, "dave@example.net")
	arrival := h.clock.Now()
	h.attempt()
	h.clock.Advance(time.Hour)
	h.attempt()
	if c := h.rep.Calls(); len(c) != 0 {
		t.Fatalf("reports before the warning age: %+v", c)
	}
	h.clock.Advance(time.Hour)
	env := h.attempt()
	calls := h.rep.Calls()
	if len(calls) != 1 || calls[0].Kind != dsn.Delayed || !slices.Equal(calls[0].Rcpts, []string{bob, "dave@example.net"}) {
		t.Fatalf("reports %+v, want one delayed report for bob and dave", calls)
	}
	if want := arrival.Add(DefaultQueueLifetime); !calls[0].Until.Equal(want) {
		t.Errorf("WillRetryUntil = %v, want %v", calls[0].Until, want)
	}
	if !env.DelayWarned || !rcpt(t, env, bob).DelayReported || rcpt(t, env, carol).DelayReported {
		t.Errorf("DelayWarned %v, bob %v, carol %v", env.DelayWarned, rcpt(t, env, bob).DelayReported, rcpt(t, env, carol).DelayReported)
	}
	for range 3 {
		h.clock.Advance(time.Hour)
		h.attempt()
	}
	if n := len(h.rep.Calls()); n != 1 {
		t.Fatalf("%d reports, want the delay warning once", n)
	}
}

// TestDelayWarningZeroIsOff: DelayWarning 0 (RELAY_DELAY_WARNING=0 is
// passed as it is) sends no delay report, however long a message waits.
func TestDelayWarningZeroIsOff(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(451, "4.2.1", "busy")))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.RetrySchedule = []time.Duration{time.Hour}
		o.DelayWarning = 0
	}))
	h.enqueue(nil, bob)
	var env *queue.Envelope
	for range 6 {
		env = h.attempt()
		h.clock.Advance(time.Hour)
	}
	if c := h.rep.Calls(); len(c) != 0 || env.DelayWarned {
		t.Fatalf("reports %+v, DelayWarned %v: want none with DelayWarning 0", c, env.DelayWarned)
	}
}

func TestCompleteOnlyWhenNothingPending(t *testing.T) {
	srv := newScriptServer(t, withRcpt(carol, replyStep(450, "4.2.0", "mailbox busy"), stepOK))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob, carol)
	env := h.attempt()
	if rcpt(t, env, bob).Status != queue.StatusRelayed || rcpt(t, env, carol).Status != queue.StatusPending {
		t.Fatalf("statuses %v", env.Recipients)
	}
	if h.q.Len() != 1 {
		t.Fatal("message completed with a recipient pending")
	}
	h.clock.Advance(5 * time.Minute)
	env = h.attempt()
	if rcpt(t, env, carol).Status != queue.StatusRelayed {
		t.Fatalf("carol %v", rcpt(t, env, carol))
	}
	// bob is not sent again.
	got := srv.Received()
	if len(got) != 2 || got[0].rcptList() != bob || got[1].rcptList() != carol {
		t.Fatalf("received %+v", got)
	}
	if h.q.Len() != 0 {
		t.Fatal("message still queued")
	}
}

func TestRunDeliversAndStops(t *testing.T) {
	srv := newScriptServer(t)
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) { o.Concurrency = 3 }))
	for range 5 {
		h.enqueue(nil, bob)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	waitFor(t, func() bool { return h.q.Len() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := len(srv.Received()); n != 5 {
		t.Fatalf("received %d, want 5", n)
	}
	if n := srv.Conns(); n > 3 {
		t.Fatalf("%d connections for 5 messages with concurrency 3", n)
	}
}

func TestRunAbandonsStalledDeliveryAfterGrace(t *testing.T) {
	srv := newScriptServer(t, withData(stepStall))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.ShutdownGrace = 100 * time.Millisecond
		o.Timeouts.Final = time.Hour
	}))
	h.enqueue(nil, bob)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	waitFor(t, func() bool { return srvDataStarted(srv) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if h.q.Len() != 1 {
		t.Fatal("abandoned message left the queue")
	}
	if !strings.Contains(h.log.String(), "abandon") {
		t.Errorf("log does not say the delivery was abandoned:\n%s", h.log)
	}
}

// A delivery abandoned at shutdown gives its lease back at once: it is not a
// crashed delivery (which the queue counts towards quarantine), and the next
// start need not wait for the lease deadline.
func TestAbandonedDeliveryGivesLeaseBack(t *testing.T) {
	srv := newScriptServer(t, withData(stepStall))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.ShutdownGrace = 100 * time.Millisecond
		o.Timeouts.Final = time.Hour
	}))
	id := h.enqueue(nil, bob)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	waitFor(t, func() bool { return srvDataStarted(srv) })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer lcancel()
	m, err := h.q.Lease(lctx)
	if err != nil {
		t.Fatalf("Lease after an abandoned delivery: %v (the lease was not given back)", err)
	}
	if m.Envelope.ID != id {
		t.Fatalf("leased %s, want %s", m.Envelope.ID, id)
	}
	if r := rcpt(t, m.Envelope, bob); r.Status != queue.StatusPending {
		t.Fatalf("bob is %v after an abandoned attempt, want pending", r.Status)
	}
}

func TestRunReturnsWhenQueueCloses(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Gateway = "127.0.0.1:1" })
	done := make(chan error, 1)
	go func() { done <- h.w.Run(context.Background()) }()
	h.q.Close()
	if err := <-done; err != queue.ErrClosed {
		t.Fatalf("Run = %v, want queue.ErrClosed", err)
	}
}

func srvDataStarted(s *scriptServer) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nData > 0
}

// waitFor polls cond until it holds; it fails the test after 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
