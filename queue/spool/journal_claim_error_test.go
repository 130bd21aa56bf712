package spool

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJournalBrokenClaimDoesNotStarveMsgDir: once the journal is broken, a
// journal message's claim fails (its CLAIM cannot be appended) and
// claimNotWritten put it back due at once, at the top of the heap: every
// Lease returned that error, and the messages in msg/ (which would deliver
// fine, the one-file fallback took them) were never handed out until a
// restart. A failed claim now makes the message due after spoolErrorRetry.
func TestJournalBrokenClaimDoesNotStarveMsgDir(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys, Now: clk.now, PollInterval: 10 * time.Millisecond})
	must(t, err)
	defer s.Close()
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a\r\n")); err != nil {
		t.Fatal(err)
	}
	fsys.failing.Store(1)
	fsys.failTrunc.Store(true)
	if _, err := s.Enqueue(t.Context(), jenv("B"), strings.NewReader("b\r\n")); err == nil {
		t.Fatal("Enqueue B with a failing fdatasync succeeded")
	}
	fsys.failTrunc.Store(false) // the disk is fine again
	if s.j.brokenErr() == nil {
		t.Skip("journal not broken")
	}
	// The clean-up's back-off runs on the spool's clock: not advanced, the
	// journal stays broken and C takes the one-file path.
	if _, err := s.Enqueue(t.Context(), jenv("C"), strings.NewReader("c\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.msgPath("C")); err != nil {
		t.Fatalf("C not in msg/: %v", err)
	}
	var errs []string
	for range 20 {
		id, err := attackLease(t, s, 200*time.Millisecond)
		if err == nil {
			if id == "C" {
				return
			}
			continue
		}
		errs = append(errs, err.Error())
		clk.add(time.Second) // the worker pauses, then leases again
	}
	t.Fatalf("C (in msg/, deliverable) never leased in 20 Leases over 20 s; every Lease failed: %q", errs[0])
}
