package outbound

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestOperatorBounce: a message the operator bounced is not delivered;
// its pending recipients fail with 554 5.3.0 "deleted by the operator"
// (the last reply kept), one RFC 3464 report about them alone is stored
// and queued to the sender from <>, and the message leaves the queue.
func TestOperatorBounce(t *testing.T) {
	var store *ndrMemStore
	h := newHarness(t, func(o *Options) {
		o.Gateway = "192.0.2.1:25" // never dialled
		o.Reporter, store = ndrReporter(t, o.Queue, 0)
	})
	id := h.enqueue(func(env *queue.Envelope) {
		env.Recipients[0].Status = queue.StatusDelivered
		env.Recipients[1].Reply = &queue.Reply{Code: 451, Enhanced: "4.4.1", Lines: []string{"gateway down"}}
	}, "done@example.net", "bob@example.net")
	if _, err := h.q.Bounce(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	env := h.attempt()
	if len(h.Dialed()) != 0 {
		t.Fatalf("dialled %v for a bounced message", h.Dialed())
	}
	r := rcpt(t, env, "bob@example.net")
	if r.Status != queue.StatusFailed || !r.Reported ||
		r.Reply.String() != "554 5.3.0 deleted by the operator last reply: 451 4.4.1 gateway down" {
		t.Fatalf("bob: %+v %s", r, r.Reply)
	}
	_, ndr := store.only(t)
	for _, want := range []string{"Status: 5.3.0", "Action: failed", "Final-Recipient: rfc822; bob@example.net",
		"554 5.3.0 deleted by the operator"} {
		if !strings.Contains(string(ndr), want) {
			t.Errorf("report lacks %q:\n%s", want, ndr)
		}
	}
	if strings.Contains(string(ndr), "done@example.net") {
		t.Error("report names the delivered recipient")
	}
	// The bounced message is gone; the report to the sender is queued.
	list, err := h.q.List(context.Background())
	if err != nil || len(list) != 1 || !list[0].Envelope.Bounce || list[0].Envelope.From != "" ||
		list[0].Envelope.Recipients[0].Addr != "alice@example.org" {
		t.Fatalf("queue after the bounce: %+v, %v", list, err)
	}
}

// TestOperatorDeleteAtLease: a message marked for deletion while it was
// being delivered is completed by the worker that leases it next, with no
// delivery and no report, and a WARN line naming it.
func TestOperatorDeleteAtLease(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Gateway = "192.0.2.1:25" })
	id := h.enqueue(nil, "bob@example.net", "carol@example.net")
	ctx := context.Background()
	m, err := h.q.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if imm, err := h.q.Delete(ctx, id); err != nil || imm {
		t.Fatalf("Delete during the delivery = %v, %v", imm, err)
	}
	if err := h.q.Reschedule(ctx, m, h.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	h.attempt() // due at once, not in an hour
	if len(h.Dialed()) != 0 || len(h.rep.Calls()) != 0 {
		t.Fatalf("dialled %v, reports %v", h.Dialed(), h.rep.Calls())
	}
	if h.q.Len() != 0 {
		t.Fatalf("%d messages left", h.q.Len())
	}
	logs := h.log.String()
	if !strings.Contains(logs, "level=WARN msg=\"message deleted by the operator\" id="+id) ||
		!strings.Contains(logs, "from=alice@example.org rcpts=2") {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestOperatorHoldAtLease: a message leased with Hold set (SQS: the mark
// read at receive) is not delivered; it is rescheduled HoldRecheck later
// with its attempt not counted.
func TestOperatorHoldAtLease(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.Gateway = "192.0.2.1:25" })
	id := h.enqueue(nil, "bob@example.net")
	m, err := h.q.Lease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m.Envelope.Hold = true
	h.w.process(context.Background(), m)
	if len(h.Dialed()) != 0 || len(h.rep.Calls()) != 0 {
		t.Fatalf("dialled %v, reports %v", h.Dialed(), h.rep.Calls())
	}
	e, err := h.q.Show(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Envelope.Hold || e.Envelope.Attempts != 0 || !e.Envelope.NextAttempt.Equal(h.clock.Now().Add(HoldRecheck)) ||
		e.Envelope.Recipients[0].Attempts != 0 {
		t.Fatalf("after a held lease: %+v", e.Envelope)
	}
	h.noneDue()
}
