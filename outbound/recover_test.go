package outbound

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// panicReporter is a reporter that panics for one message: a stand-in for
// any defect that a hostile message can reach in one delivery.
type panicReporter struct {
	fakeReporter
	id string
}

func (p *panicReporter) Report(ctx context.Context, req ReportRequest) error {
	if req.Message.Envelope.ID == p.id {
		var m map[string]int
		m["boom"]++ // a nil map write, as a real defect would panic
	}
	return p.fakeReporter.Report(ctx, req)
}

// attemptSafe is harness.attempt that turns a panic into a test failure, so
// that the test fails (instead of killing the test binary) before the fix.
func (h *harness) attemptSafe() (env *queue.Envelope) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := h.q.Lease(ctx)
	if err != nil {
		h.t.Fatalf("lease: %v (nothing due?)", err)
	}
	defer func() {
		if p := recover(); p != nil {
			h.t.Fatalf("processing %s panicked out of the worker: %v", m.Envelope.ID, p)
		}
	}()
	h.w.process(context.Background(), m)
	return m.Envelope
}

// TestPanicInDeliveryIsRecovered: a panic in one message's delivery is
// recovered, logged at ERROR with the message ID and the stack, counted,
// and the message is rescheduled with the normal backoff; other messages
// are delivered (issue 8 item 5, worker side).
func TestPanicInDeliveryIsRecovered(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(550, "5.1.1", "no such user")))
	pr := &panicReporter{}
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) { o.Reporter = pr }))
	pr.id = h.enqueue(nil, bob) // fails → report → panic
	good := h.enqueue(nil, carol)

	seen := map[string]*queue.Envelope{}
	for range 2 {
		env := h.attemptSafe()
		seen[env.ID] = env
	}
	if len(srv.Received()) != 1 || srv.Received()[0].rcptList() != carol {
		t.Fatalf("received %+v, want the other message delivered", srv.Received())
	}
	if seen[good] == nil || seen[good].Recipients[0].Status != queue.StatusRelayed {
		t.Fatalf("the other message was not delivered: %+v", seen[good])
	}
	if n := h.w.Stats().Panics; n != 1 {
		t.Errorf("Stats().Panics = %d, want 1", n)
	}
	logs := h.log.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "id="+pr.id) ||
		!strings.Contains(logs, "goroutine") || !strings.Contains(logs, "assignment to entry in nil map") {
		t.Errorf("no ERROR line with the ID, the panic and its stack:\n%s", logs)
	}
	// Rescheduled with the schedule's first step (no jitter in the harness),
	// keeping its state: bob failed for good, the report still owed.
	if h.q.Len() != 1 {
		t.Fatalf("queue holds %d messages, want the panicked one only", h.q.Len())
	}
	h.noneDue()
	h.clock.Advance(5 * time.Minute)
	pr.id = "" // the defect is fixed
	env := h.attemptSafe()
	if r := rcpt(t, env, bob); r.Status != queue.StatusFailed || !r.Reported || r.Attempts != 1 {
		t.Fatalf("after the panic: status %s reported %v attempts %d, want failed, reported, 1 attempt",
			r.Status, r.Reported, r.Attempts)
	}
	if h.q.Len() != 0 {
		t.Fatal("message still queued after its report")
	}
}

// TestRunSurvivesPanic: the same through Run, whose delivery goroutines a
// panic would otherwise take down with the whole process.
func TestRunSurvivesPanic(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(550, "5.1.1", "no such user")))
	pr := &panicReporter{}
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) { o.Reporter = pr; o.Concurrency = 1 }))
	pr.id = h.enqueue(nil, bob)
	h.enqueue(nil, carol)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Run(ctx) }()
	waitFor(t, func() bool { return len(srv.Received()) == 1 && h.q.Len() == 1 && h.w.Stats().Panics == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	h.noneDue() // rescheduled, not due again at once
}
