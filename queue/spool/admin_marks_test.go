package spool

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestAttackMarksSurviveFailedWrite: an operator's delete or bounce asked
// while a worker holds the message is a mark (immediate false: "recorded;
// it takes effect when a worker next receives the message"). When the
// worker's Reschedule cannot write its envelope (EIO) the mark was
// dropped: the message was due at once, the next worker leased the
// envelope last written, without the mark, and delivered what the
// operator had deleted. Likewise when the claim's write failed after the
// mark (the message due again later, handed out without it). The mark
// now stays until an envelope holding it is written, and a claim hands
// the message out with it.
func TestAttackMarksSurviveFailedWrite(t *testing.T) {
	for _, small := range []bool{false, true} {
		for _, op := range []string{queue.OperatorDelete, queue.OperatorBounce} {
			t.Run(fmt.Sprintf("small=%v/%s", small, op), func(t *testing.T) {
				h := markThenFailReschedule(t, small, op)
				defer h.s.Close()
				if en, err := h.s.Show(h.ctx, "A"); err != nil || en.Envelope.Operator != op {
					t.Fatalf("shown after the failed write: %+v, %v; want operator %s", en, err, op)
				}
				ctx, cancel := context.WithTimeout(h.ctx, 2*time.Second)
				defer cancel()
				m, err := h.s.Lease(ctx)
				if err != nil {
					t.Fatalf("Lease: %v (the mark made it due now)", err)
				}
				if m.Envelope.Operator != op {
					t.Fatalf("leased without the operator's %s: the worker would deliver it", op)
				}
				// The next write carries it: durable from then on.
				if err := h.s.Reschedule(h.ctx, m, h.now.Add(time.Hour)); err != nil {
					t.Fatal(err)
				}
				h.s.Close()
				h.open()
				if en, err := h.s.Show(h.ctx, "A"); err != nil || en.Envelope.Operator != op {
					t.Fatalf("after reopen: %+v, %v", en, err)
				}
			})
		}
	}
}

// TestAttackHoldMarkSurvivesFailedWrite: a hold asked during a delivery
// (a mark: "recorded") whose Reschedule could not be written was held in
// memory only: the message was never leased again, so nothing wrote the
// hold, and the next start released it. Now the in-memory hold follows
// the disk: the message comes back to a worker at its due time with the
// hold (withMarks), whose Reschedule (outbound: HoldRecheck) writes it.
func TestAttackHoldMarkSurvivesFailedWrite(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("small=%v", small), func(t *testing.T) {
			h := markThenFailReschedule(t, small, "hold")
			defer h.s.Close()
			if en, err := h.s.Show(h.ctx, "A"); err != nil || !en.Envelope.Hold {
				t.Fatalf("shown after the failed write: %+v, %v; want held", en, err)
			}
			h.now = h.now.Add(time.Hour)
			ctx, cancel := context.WithTimeout(h.ctx, 2*time.Second)
			defer cancel()
			m, err := h.s.Lease(ctx)
			if err != nil || !m.Envelope.Hold {
				t.Fatalf("Lease = %v, %v; want A with its hold, for the worker to write it", m, err)
			}
			if err := h.s.Reschedule(h.ctx, m, h.now.Add(5*time.Minute)); err != nil {
				t.Fatal(err)
			}
			h.s.Close()
			h.open()
			if en, err := h.s.Show(h.ctx, "A"); err != nil || !en.Envelope.Hold {
				t.Fatalf("after reopen: %+v, %v; the hold was lost", en, err)
			}
		})
	}
}

// markThenFailReschedule leases message A (a journal message when small),
// runs the operator's op on it (hold, or an Operator value) while leased,
// which must record a mark, and then fails the worker's Reschedule (an
// hour ahead) with EIO at its first write.
func markThenFailReschedule(t *testing.T, small bool, op string) *crashHarness {
	t.Helper()
	h := newCrashHarness(t)
	h.small = small
	h.open()
	h.mustEnqueue("A")
	m := h.mustLease("A")
	act := map[string]func(context.Context, string) (bool, error){
		"hold": h.s.Hold, queue.OperatorDelete: h.s.Delete, queue.OperatorBounce: h.s.Bounce}[op]
	if imm, err := act(h.ctx, "A"); err != nil || imm {
		t.Fatalf("%s while leased = %v, %v; want a mark", op, imm, err)
	}
	h.fs.arm(1, false)
	if err := h.s.Reschedule(h.ctx, m, h.now.Add(time.Hour)); err == nil {
		t.Fatal("Reschedule succeeded; the fault did not hit it")
	}
	h.fs.arm(0, false)
	return h
}

// TestAttackRetryReleasesMarkedHold: retry of a held message releases it
// (decided, as postsuper -r); a hold still a mark (asked while a worker
// held the message) was kept by a retry: the worker's Reschedule wrote
// the hold and the message stayed held, due "now".
func TestAttackRetryReleasesMarkedHold(t *testing.T) {
	h := newCrashHarness(t)
	h.open()
	defer h.s.Close()
	h.mustEnqueue("A")
	m := h.mustLease("A")
	if imm, err := h.s.Hold(h.ctx, "A"); err != nil || imm {
		t.Fatalf("Hold while leased = %v, %v; want a mark", imm, err)
	}
	if imm, err := h.s.Retry(h.ctx, "A"); err != nil || imm {
		t.Fatalf("Retry while leased = %v, %v; want a mark", imm, err)
	}
	if err := h.s.Reschedule(h.ctx, m, h.now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Second)
	defer cancel()
	if m, err := h.s.Lease(ctx); err != nil || m.Envelope.Hold {
		t.Fatalf("Lease after retry = %v, %v; want A due now, not held", m, err)
	}
}
