package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJournalMovedQuarantinedWithPendingEndStaysQuarantined: a journal
// message is rescheduled (moved to msg/) while its END cannot be written,
// then quarantined from msg/ through the file path. At the next Open the
// quarantine copy must be recognised as that MSG's (the moved file keeps
// the MSG's instance) and the END written: the original must not come
// back from the journal.
func TestJournalMovedQuarantinedWithPendingEndStaysQuarantined(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("X"), strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(-1) // every journal fdatasync fails from now on
	if err := s.Reschedule(ctx, m, time.Now()); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	if s.journalOf("X") != nil {
		t.Fatal("X still in the journal after its move")
	}
	if _, err := s.Lease(ctx); err != nil { // from msg/: its claim is no journal write
		t.Fatal(err)
	}
	s.mu.Lock()
	e := s.entries["X"]
	s.mu.Unlock()
	must(t, s.setAside(e, errors.New("test"), false))
	s.Close()

	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.Len() != 0 {
		t.Fatalf("after reopen Len = %d: the quarantined X came back from the journal", s.Len())
	}
}

// TestJournalQuarantineEndFailedThenSameIDKept: a journal message is
// quarantined (too many crashed deliveries) and the END of its MSG fails
// (one failed fdatasync, cleaned up: the journal is not broken). The entry
// is gone, so an Enqueue of the same preset ID (an NDR retried) goes into
// the journal as a second MSG and returns nil. At the next Open, replay
// keeps the first MSG ("a second MSG for a message without END is
// ignored"), finds it in quarantine, writes its END, and the acknowledged
// second message is gone.
// Now the END is pending: the Enqueue of the same ID writes it first (or
// fails), and replay pairs CLAIM and END with their MSG by instance.
func TestJournalQuarantineEndFailedThenSameIDKept(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := Options{Now: clk.now, PollInterval: 10 * time.Millisecond, MaxDeliveryCrashes: 1}
	s, err := Open(dir, opts)
	must(t, err)
	if _, err := s.Enqueue(t.Context(), jenv("X"), strings.NewReader("first\r\n")); err != nil {
		t.Fatal(err)
	}
	if id, err := attackLease(t, s, time.Second); err != nil || id != "X" {
		t.Fatalf("Lease = %q, %v", id, err)
	}
	s.Close() // the delivery "crashes": CLAIM without END

	clk.add(time.Hour)
	fsys := &failSyncFS{err: syscall.EIO}
	o2 := opts
	o2.fs = fsys
	s, err = Open(dir, o2)
	must(t, err)
	fsys.failing.Store(1) // the END of the quarantined MSG fails (cleaned up)
	if id, err := attackLease(t, s, 300*time.Millisecond); err == nil {
		t.Fatalf("Lease handed out %s; want X quarantined", id)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolQuarantineDir, "X"+msgExt)); err != nil {
		t.Fatalf("X not quarantined: %v", err)
	}
	if err := s.j.brokenErr(); err != nil {
		t.Fatalf("journal broken (%v); the test wants a cleaned-up failure", err)
	}
	// The same preset ID again: a new message, acknowledged.
	if _, err := s.Enqueue(t.Context(), jenv("X"), strings.NewReader("second\r\n")); err != nil {
		t.Fatalf("Enqueue X again: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("Len after re-Enqueue = %d, want 1", s.Len())
	}
	s.Close()

	s, err = Open(dir, opts)
	must(t, err)
	defer s.Close()
	if s.Len() != 1 {
		t.Fatalf("after reopen Len = %d: the second X, whose Enqueue returned nil, is lost", s.Len())
	}
	if b := attackReadBody(t, s, "X"); b != "second\r\n" {
		t.Fatalf("after reopen X's body = %q, want the second message", b)
	}
}

// TestJournalBrokenMovedMessageNotRedelivered: a journal message is
// leased and rescheduled; the move to msg/ succeeds but its END fails and
// the clean-up too, so the journal is broken (until a restart). The
// message (moved) is leased from msg/ and delivered; its Complete must
// write the END first, which a broken journal refuses: Complete fails and
// the message is handed out again a minute later, and again, for as long
// as the process lives: a duplicate delivery every minute.
// Now Complete leaves the message out of the due heap while its END is
// pending; a later flush writes the END and removes the file.
func TestJournalBrokenMovedMessageNotRedelivered(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys, Now: clk.now, PollInterval: 10 * time.Millisecond})
	must(t, err)
	defer s.Close()
	if _, err := s.Enqueue(t.Context(), jenv("X"), strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(-1)
	fsys.failTrunc.Store(true)
	if err := s.Reschedule(ctx, m, clk.now()); err != nil {
		t.Logf("Reschedule: %v", err)
	}
	fsys.failing.Store(0) // the disk is fine again
	fsys.failTrunc.Store(false)
	if s.j.brokenErr() == nil {
		t.Skip("journal not broken; scenario not reached")
	}
	deliveries := 0
	for range 3 {
		lctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		m, err := s.Lease(lctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		must(t, err)
		deliveries++ // delivered to the MX
		if err := s.Complete(ctx, m); err != nil {
			t.Logf("Complete after delivery %d: %v", deliveries, err)
		}
		clk.add(2 * spoolErrorRetry)
	}
	if deliveries > 1 {
		t.Fatalf("X delivered %d times in one process life: Complete of a moved message fails for as long as the journal is broken, and the message goes out again every minute", deliveries)
	}
}

// TestJournalMovedEndFailureRetriedFreesSegments: one transient failure of the END
// after a Reschedule's move to msg/ leaves that MSG live until the
// message's Complete, which may be days of retries away. Segments are
// deleted oldest first only, so every segment written meanwhile stays on
// disk: journal/ grows with the whole traffic (64 MiB per segment by
// default) until the disk is full, though every message in them is done.
// Now the pending END is written by the next append (flushEnds).
func TestJournalMovedEndFailureRetriedFreesSegments(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys, JournalSegmentBytes: 1024})
	must(t, err)
	defer s.Close()
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("R"), strings.NewReader("r\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(1) // the END after the move fails (cleaned up)
	if err := s.Reschedule(ctx, m, time.Now().Add(72*time.Hour)); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	if s.j.brokenErr() != nil {
		t.Skip("journal broken")
	}
	for i := range 100 {
		id := fmt.Sprintf("M%03d", i)
		if _, err := s.Enqueue(ctx, jenv(id), strings.NewReader(jbody(id, 20))); err != nil {
			t.Fatal(err)
		}
		m, err := s.Lease(ctx)
		must(t, err)
		must(t, s.Complete(ctx, m))
	}
	if n := len(segments(t, dir)); n > 10 {
		t.Fatalf("%d segment files kept for 100 completed messages: R's missing END (moved to msg/, due in 72 h) pins them all", n)
	}
}

// TestJournalOpenOnFullDiskWithPendingEnd: a Reschedule's END failed
// (ENOSPC: the disk filled up) after the move to msg/; the process
// restarts on the still-full disk. Open appends the pending END and fails
// when it cannot: the relay cannot start, so it can neither deliver nor
// complete anything to free space (the one-file path opens on a full
// disk, and claims hand messages out with their lease in memory for this
// reason).
// Now such an END stays pending at Open, as at runtime.
func TestJournalOpenOnFullDiskWithPendingEnd(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.ENOSPC}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("R"), strings.NewReader("r\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(1)
	if err := s.Reschedule(ctx, m, time.Now()); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	s.Close()
	full := &failSyncFS{err: syscall.ENOSPC}
	full.failing.Store(-1) // still full
	s, err = Open(dir, Options{fs: full})
	if err != nil {
		t.Fatalf("Open on a full disk with a pending END: %v", err)
	}
	s.Close()
}

// TestJournalReplaySupersededMsgQuarantined: a journal with two MSGs of
// one ID without END (another instance each: an END that failed before
// the same preset ID was enqueued again, as a journal written before
// pending ENDs could hold). Replay keeps the newer as the message and
// copies the older to quarantine with its END, so that neither is lost,
// and a second Open finds the same.
func TestJournalReplaySupersededMsgQuarantined(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	if _, err := s.Enqueue(t.Context(), jenv("X"), strings.NewReader("first\r\n")); err != nil {
		t.Fatal(err)
	}
	body := "second\r\n"
	env := jenv("X")
	env.Size = int64(len(body))
	data, err := marshalEnvelope(env)
	must(t, err)
	buf := make([]byte, msgBodyOffset("X")+len(body))
	copy(buf[msgBodyOffset("X"):], body)
	if _, _, err := s.j.append(encodeMsgRecord(buf, "X", 7, len(body), data), true); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for range 2 {
		s, err = Open(dir, Options{})
		must(t, err)
		if s.Len() != 1 {
			t.Fatalf("Len = %d, want 1", s.Len())
		}
		if b := attackReadBody(t, s, "X"); b != body {
			t.Fatalf("X's body = %q, want the newer message", b)
		}
		qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
		if len(qs) != 1 {
			t.Fatalf("quarantine holds %d files, want the older X once", len(qs))
		}
		q, err := readBodyFile(filepath.Join(dir, spoolQuarantineDir, qs[0].Name()))
		if err != nil || q != "first\r\n" {
			t.Fatalf("quarantined body %q, %v", q, err)
		}
		s.Close()
	}
}

// TestJournalPendingEndWrittenWhenIdle: an END that failed after a move
// is written by a timer when no Enqueue, Lease, Reschedule or Complete
// comes to write it, and the segment it pinned goes.
func TestJournalPendingEndWrittenWhenIdle(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	defer s.Close()
	s.mu.Lock()
	s.endRetry = 10 * time.Millisecond
	s.mu.Unlock()
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("R"), strings.NewReader("r\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(1) // the END after the move fails
	if err := s.Reschedule(ctx, m, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		n := len(s.ends)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d ENDs still pending on an idle spool after 5 s", n)
		}
	}
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.Len() != 1 || s.journalOf("R") != nil {
		t.Fatalf("after reopen Len %d, R in the journal %v: want R in msg/ only", s.Len(), s.journalOf("R") != nil)
	}
}

// TestJournalCompleteEndFailedNotRedelivered: the END of a delivered
// journal message's Complete fails (a full disk). Complete reports
// errEndPending, and the message is not handed out again (it was made due
// a minute later before: on a full disk, a delivery every minute); the
// next append writes the END and the message is gone, after a reopen too.
func TestJournalCompleteEndFailedNotRedelivered(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &failSyncFS{err: syscall.ENOSPC}
	s, err := Open(dir, Options{fs: fsys, Now: clk.now, PollInterval: 10 * time.Millisecond})
	must(t, err)
	defer s.Close()
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("A"), strings.NewReader("a\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(1)
	if err := s.Complete(ctx, m); !errors.Is(err, errEndPending) {
		t.Fatalf("Complete with its END failing = %v, want errEndPending", err)
	}
	clk.add(2 * spoolErrorRetry)
	if id, err := attackLease(t, s, 300*time.Millisecond); err == nil {
		t.Fatalf("Lease handed out %s again after its delivery", id)
	}
	if _, err := s.Enqueue(ctx, jenv("B"), strings.NewReader("b\r\n")); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 || s.journalOf("A") != nil {
		t.Fatalf("after the next append Len %d, A in the journal %v", s.Len(), s.journalOf("A") != nil)
	}
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.Len() != 1 || s.journalOf("B") == nil {
		t.Fatalf("after reopen Len %d; want B only", s.Len())
	}
}
