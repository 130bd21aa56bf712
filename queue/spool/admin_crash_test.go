package spool

import (
	"fmt"
	"testing"
)

// TestAdminCrashPoints: the operator's Hold and Delete, on a message file
// (with a crashed claim before, whose count must survive the Hold) and on
// a journal message, stopped by a power loss and by an EIO at each of
// their file operations, then reopened: nothing acknowledged is lost
// (crashHarness.verify); a Hold that returned nil is on disk and the
// message is not due; a Delete that returned nil is gone for good, and
// one that failed left the message whole or gone.
func TestAdminCrashPoints(t *testing.T) {
	for _, small := range []bool{false, true} {
		for _, crash := range []bool{true, false} {
			name := fmt.Sprintf("small=%v crash=%v", small, crash)
			hold := func(h *crashHarness) {
				h.small = small
				h.open()
				h.mustEnqueue("A")
				h.mustEnqueue("C")
			}
			n := crashPath(t, crash, hold, func(h *crashHarness) {
				if _, err := h.s.Hold(h.ctx, "A"); err == nil {
					h.check = func(h *crashHarness, s *Spool) {
						if !s.entries["A"].held {
							h.t.Errorf("%s: Hold returned nil, A not held after reopen", name)
						}
						if e := s.entries["C"]; e == nil || e.held {
							h.t.Errorf("%s: C held or gone", name)
						}
					}
				}
			})
			t.Logf("%s: hold: %d points", name, n)
			n = crashPath(t, crash, hold, func(h *crashHarness) {
				if _, err := h.s.Delete(h.ctx, "A"); err == nil {
					h.gone["A"] = true
				}
				delete(h.must, "A")
			})
			t.Logf("%s: delete: %d points", name, n)
		}
	}
	// A Hold of a message file whose claim a crash interrupted keeps that
	// claim counted.
	h := newCrashHarness(t)
	h.open()
	h.mustEnqueue("A")
	h.mustLease("A")
	h.s.Close()
	h.open()
	if _, err := h.s.Hold(h.ctx, "A"); err != nil {
		t.Fatal(err)
	}
	h.s.Close()
	h.open()
	defer h.s.Close()
	rec, err := h.s.readRecord("A")
	if err != nil || rec.LeaseUntil.IsZero() || !h.s.entries["A"].crashed || !h.s.entries["A"].held || rec.Attempts != 1 {
		t.Fatalf("after Hold and restart: %+v, %v", rec, err)
	}
}
