package spool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// journalPending reports whether the journal still holds the outcome of
// any record (a batch not yet taken by its waiters).
func journalPending(s *Spool) bool {
	s.j.mu.Lock()
	defer s.j.mu.Unlock()
	return s.j.open != nil || s.j.inflight != nil
}

// TestJournalSyncFailuresBounded: 300 failed fdatasyncs (each cleaned up:
// the tail cut back and synced) leave no failure state behind once their
// Enqueues returned, and no segment file per failure: the segment is kept,
// its durable part was synced before. Later Enqueues work, and after a
// reopen exactly the acknowledged messages are there.
func TestJournalSyncFailuresBounded(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a")); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		fsys.failing.Store(1)
		if i%2 == 0 {
			if _, err := s.Enqueue(t.Context(), jenv(fmt.Sprintf("F%03d", i)), strings.NewReader("f")); err == nil {
				t.Fatalf("failure %d: Enqueue with a failing fdatasync succeeded", i)
			}
			continue
		}
		// Several in flight: the failure takes every record of its
		// batch; a record written after it may make the next batch.
		var wg sync.WaitGroup
		for k := range 4 {
			wg.Go(func() {
				s.Enqueue(context.Background(), jenv(fmt.Sprintf("C%03d-%d", i, k)), strings.NewReader("c"))
			})
		}
		wg.Wait()
	}
	if journalPending(s) {
		t.Fatal("the journal keeps a batch's outcome after every waiter returned")
	}
	if segs := segments(t, dir); len(segs) > 2 {
		t.Fatalf("%d segment files after 300 failed fdatasyncs", len(segs))
	}
	if err := s.j.brokenErr(); err != nil {
		t.Fatalf("journal broken by cleaned-up failures: %v", err)
	}
	if _, err := s.Enqueue(t.Context(), jenv("B"), strings.NewReader("b")); err != nil || s.journalOf("B") == nil {
		t.Fatalf("Enqueue after the failures: %v (in the journal: %v)", err, s.journalOf("B") != nil)
	}
	want := map[string]bool{}
	s.mu.Lock()
	for id := range s.entries {
		want[id] = true
	}
	s.mu.Unlock()
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.Len() != len(want) || !want["A"] || !want["B"] {
		t.Fatalf("after reopen Len %d, want %d (A and B among them)", s.Len(), len(want))
	}
	for id := range want {
		if s.journalOf(id) == nil {
			t.Fatalf("%s acknowledged, gone after reopen", id)
		}
	}
}

// TestJournalCleanupRetried: a transient fault in the clean-up of a failed
// fdatasync (the truncate, or the fdatasync after it, fails once) breaks
// the journal: Ready fails and Enqueue takes the one-file path. The
// clean-up is retried after a back-off: before it, Ready still fails; once
// it passes and the fault is gone, Ready passes and the journal takes
// messages again. The failed message never replays.
func TestJournalCleanupRetried(t *testing.T) {
	for _, what := range []string{"truncate", "fdatasync"} {
		t.Run(what, func(t *testing.T) {
			dir := t.TempDir()
			clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			fsys := &failSyncFS{err: syscall.EIO}
			s, err := Open(dir, Options{fs: fsys})
			must(t, err)
			s.j.mu.Lock()
			s.j.now = clk.now
			s.j.mu.Unlock()
			if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a")); err != nil {
				t.Fatal(err)
			}
			if what == "truncate" {
				fsys.failing.Store(1)
				fsys.failTrunc.Store(true)
			} else {
				fsys.failing.Store(2) // the leader's and the clean-up's
			}
			if _, err := s.Enqueue(t.Context(), jenv("B"), strings.NewReader("b")); err == nil {
				t.Fatal("Enqueue with a failing fdatasync succeeded")
			}
			fsys.failTrunc.Store(false) // the fault is gone
			if err := s.Ready(t.Context()); !errors.Is(err, errJournalBroken) {
				t.Fatalf("Ready right after the failed clean-up = %v, want the broken journal", err)
			}
			if _, err := s.Enqueue(t.Context(), jenv("C"), strings.NewReader("c")); err != nil || s.journalOf("C") != nil {
				t.Fatalf("Enqueue on a broken journal: %v (in the journal: %v), want msg/", err, s.journalOf("C") != nil)
			}
			clk.add(journalRetryMin)
			if err := s.Ready(t.Context()); err != nil {
				t.Fatalf("Ready once the clean-up's back-off passed and the fault is gone: %v", err)
			}
			if _, err := s.Enqueue(t.Context(), jenv("D"), strings.NewReader("d")); err != nil || s.journalOf("D") == nil {
				t.Fatalf("Enqueue after the clean-up: %v (in the journal: %v)", err, s.journalOf("D") != nil)
			}
			s.Close()
			s, err = Open(dir, Options{})
			must(t, err)
			defer s.Close()
			if s.Len() != 3 || s.journalOf("B") != nil || s.journalOf("A") == nil || s.journalOf("D") == nil {
				t.Fatalf("after reopen: Len %d, B replayed %v; want A, C (msg/) and D", s.Len(), s.journalOf("B") != nil)
			}
		})
	}
}

// TestJournalCleanupRetriedByAppend: the retry also runs at an append
// (a Complete's END) once the back-off passed, with no Ready call, and
// the back-off grows while the clean-up keeps failing.
func TestJournalCleanupRetriedByAppend(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	defer s.Close()
	s.j.mu.Lock()
	s.j.now = clk.now
	s.j.mu.Unlock()
	fsys.failing.Store(1)
	fsys.failTrunc.Store(true)
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a")); err == nil {
		t.Fatal("Enqueue with a failing fdatasync succeeded")
	}
	clk.add(journalRetryMin) // the retry runs and fails: the back-off doubles
	if err := s.Ready(t.Context()); err == nil {
		t.Fatal("Ready passed while the clean-up still fails")
	}
	fsys.failTrunc.Store(false)
	clk.add(journalRetryMin)
	if _, _, err := s.j.append(encodeEndRecord("X", 1), false); !errors.Is(err, errJournalBroken) {
		t.Fatalf("append before the doubled back-off passed = %v, want the broken journal", err)
	}
	clk.add(journalRetryMin)
	if _, _, err := s.j.append(encodeEndRecord("X", 1), false); err != nil {
		t.Fatalf("append once the back-off passed: %v", err)
	}
	if err := s.j.brokenErr(); err != nil {
		t.Fatalf("journal still broken after a successful clean-up: %v", err)
	}
}
