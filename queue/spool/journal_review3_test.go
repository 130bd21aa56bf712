package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// removeFailFS is failSyncFS whose Remove of a file named failName fails
// (EIO) while armed.
type removeFailFS struct {
	*failSyncFS
	failName string
	armed    atomic.Bool
}

func (f *removeFailFS) Remove(path string) error {
	if f.armed.Load() && filepath.Base(path) == f.failName {
		return &os.PathError{Op: "remove", Path: path, Err: syscall.EIO}
	}
	return f.failSyncFS.Remove(path)
}

// TestJournalReview3PendingEndCompleteFileErrorReported: X was moved to
// msg/ by a Reschedule whose END failed (pending). Its next Complete
// writes the pending END (flushEnds) and flushEnds then removes X's file
// (completeFile); when that removal fails, X stays queued and is due
// again a minute later, but Complete returned nil: flushEnds only logged
// the error. A caller told "done" gets the message again (the same class
// 11c752a removed: a Complete returning nil for a message that comes
// back). Complete must report the error of the removal it waited for.
func TestJournalReview3PendingEndCompleteFileErrorReported(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &removeFailFS{failSyncFS: &failSyncFS{err: syscall.EIO}, failName: "X" + msgExt}
	s, err := Open(dir, Options{fs: fsys, Now: clk.now, PollInterval: 10 * time.Millisecond})
	must(t, err)
	defer s.Close()
	ctx := t.Context()
	m := leasedWithPendingEnd(t, s, fsys.failSyncFS, clk.now())
	fsys.armed.Store(true) // msg/X.msg cannot be removed
	cerr := s.Complete(ctx, m)
	fsys.armed.Store(false)
	if _, err := os.Stat(filepath.Join(dir, spoolMsgDir, "X"+msgExt)); err != nil {
		t.Fatalf("X's file: %v (the removal was to fail)", err)
	}
	clk.add(2 * spoolErrorRetry)
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, lerr := s.Lease(lctx)
	if cerr == nil && lerr == nil {
		t.Fatalf("Complete returned nil, but X's file could not be removed and X is handed out again")
	}
	if cerr == nil {
		t.Fatalf("Complete returned nil, but X's file could not be removed (Lease: %v)", lerr)
	}
	t.Logf("Complete: %v; Lease after 2 min: %v", cerr, lerr)
}

// TestJournalReview3PendingEndCompleteNoError pins the ordinary case of
// the same path: the pending END and the removal succeed within Complete,
// which returns nil, and X is gone after a reopen.
func TestJournalReview3PendingEndCompleteNoError(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	m := leasedWithPendingEnd(t, s, fsys, time.Now())
	if err := s.Complete(t.Context(), m); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.Len() != 0 {
		t.Fatalf("Len after reopen = %d, want 0", s.Len())
	}
}

// leasedWithPendingEnd enqueues X in the journal, moves it to msg/ by a
// Reschedule (due at) whose END fails, and leases it again, its END
// still pending (the claim's flush fails too); the journal is not broken.
func leasedWithPendingEnd(t *testing.T, s *Spool, fsys *failSyncFS, at time.Time) *queue.Message {
	t.Helper()
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("X"), strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(1) // the END after the move fails (cut back: not broken)
	if err := s.Reschedule(ctx, m, at); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	fsys.failing.Store(1) // the claim's flushEnds fails too: still pending
	m, err = s.Lease(ctx)
	must(t, err)
	s.mu.Lock()
	pending := len(s.ends)
	s.mu.Unlock()
	if pending != 1 || s.j.brokenErr() != nil {
		t.Skipf("scenario not reached: %d pending ENDs, broken %v", pending, s.j.brokenErr())
	}
	return m
}

// appendMsg appends a MSG record of id with instance and body.
func appendMsg(t *testing.T, s *Spool, id string, instance uint64, body string) {
	t.Helper()
	env := jenv(id)
	env.Size = int64(len(body))
	data, err := marshalEnvelope(env)
	must(t, err)
	buf := make([]byte, msgBodyOffset(id)+len(body))
	copy(buf[msgBodyOffset(id):], body)
	if _, _, err := s.j.append(encodeMsgRecord(buf, id, instance, len(body), data), true); err != nil {
		t.Fatal(err)
	}
}

// TestJournalReview3OlderEndAfterNewerEnd: a journal holds MSG X#1, MSG
// X#7, END X#7, END X#1 (the older's END written after the newer's: an
// END that Open could not write for a superseded MSG stays pending, and
// the newer's Complete writes its own END when the flush fails). Replay
// looked up a CLAIM or END of another instance among the superseded MSGs
// only while the ID had a live MSG: once END X#7 removed it, END X#1
// was ignored and X#1 stayed superseded without END, so every Open
// copied it to quarantine again (an operator who handled it finds it
// back) and wrote another END.
func TestJournalReview3OlderEndAfterNewerEnd(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	appendMsg(t, s, "X", 1, "first\r\n")
	appendMsg(t, s, "X", 7, "second\r\n")
	for _, inst := range []uint64{7, 1} {
		if _, _, err := s.j.append(encodeEndRecord("X", inst), false); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	for i := range 2 {
		s, err = Open(dir, Options{})
		must(t, err)
		n := s.Len()
		s.Close()
		qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
		if n != 0 || len(qs) != 0 {
			t.Fatalf("Open %d: Len %d, %d quarantine files; want none: both MSGs of X have their END", i+1, n, len(qs))
		}
	}
}

// TestJournalReview3OlderClaimAndEndWhileNewerLive pins the case that
// works: END X#1 while X#7 is live ends X#1; X#7 is the message.
func TestJournalReview3OlderClaimAndEndWhileNewerLive(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	appendMsg(t, s, "X", 1, "first\r\n")
	appendMsg(t, s, "X", 7, "second\r\n")
	if _, _, err := s.j.append(encodeEndRecord("X", 1), false); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
	if s.Len() != 1 || len(qs) != 0 {
		t.Fatalf("Len %d, %d quarantine files; want X#7 only", s.Len(), len(qs))
	}
	if b := attackReadBody(t, s, "X"); b != "second\r\n" {
		t.Fatalf("X = %q", b)
	}
}

// movePendingEnd does what rescheduleJournal does for the journal
// message id when its END fails, without ending its lease: msg/<id>.msg
// written with the MSG's instance, the END pending.
func movePendingEnd(t *testing.T, s *Spool, id string) {
	t.Helper()
	jm := s.journalOf(id)
	if jm == nil {
		t.Fatalf("%s not in the journal", id)
	}
	env, err := s.readJournalEnvelope(id, jm)
	must(t, err)
	body, err := s.journalBody(id, jm)
	must(t, err)
	err = s.writeAs(t.Context(), env, body, jm.instance)
	body.Close()
	must(t, err)
	s.mu.Lock()
	e := s.entries[id]
	e.j = nil
	e.end = s.pendEnd(id, jm)
	s.mu.Unlock()
}

// TestJournalReview3CrashPointsPendingEnd stops, at each file operation
// (power loss, then a single EIO), the paths that write a pending END of
// a message moved to msg/: its Complete (END, then the file's removal),
// and an Enqueue of another ID (END, then its own MSG). crashHarness
// checks the reopened spool: A is there unless its Complete returned
// nil, whole; B is there if its Enqueue returned nil, never if it failed.
func TestJournalReview3CrashPointsPendingEnd(t *testing.T) {
	setup := func(h *crashHarness) {
		h.small = true
		h.open()
		h.mustEnqueue("A")
		h.mustEnqueue("C")
		h.pending = h.mustLease("A")
		movePendingEnd(h.t, h.s, "A")
		// msg/A.msg holds no claim: as a claim on a full disk, whose
		// lease is in memory only.
		delete(h.leased, "A")
	}
	runs := []struct {
		name string
		run  func(h *crashHarness)
	}{
		{"complete", completePending},
		{"enqueue of another ID", func(h *crashHarness) { h.enqueue("B") }},
	}
	// A journal message whose Complete's END failed (errEndPending): the
	// END written by an Enqueue of another ID.
	completed := func(h *crashHarness) {
		h.small = true
		h.open()
		h.mustEnqueue("A")
		h.mustEnqueue("C")
		h.mustLease("A")
		s := h.s
		s.mu.Lock()
		e := s.entries["A"]
		e.end = s.pendEnd("A", e.j)
		e.end.complete = e
		s.mu.Unlock()
		delete(h.must, "A") // Complete was called: there or gone
	}
	t.Run("enqueue after a completed journal message", func(t *testing.T) {
		run := func(h *crashHarness) {
			h.enqueue("B")
			h.s.mu.Lock()
			written := len(h.s.ends) == 0
			h.s.mu.Unlock()
			if written { // the END synced: A must not come back
				h.gone["A"] = true
				delete(h.leased, "A")
			}
		}
		nc := crashPath(t, true, completed, run)
		nf := crashPath(t, false, completed, run)
		t.Logf("%d crash points, %d fault points tried", nc, nf)
	})
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			nc := crashPath(t, true, setup, r.run)
			nf := crashPath(t, false, setup, r.run)
			t.Logf("%d crash points, %d fault points tried", nc, nf)
		})
	}
}

// TestJournalReview3EnqueueSameIDAfterCompleteEndPending: X's Complete
// returned errEndPending (its END failed); an Enqueue of X (a preset ID
// queued again) must not answer 250 while that END cannot be written
// (replay would pair the two MSGs wrongly), and once it can, the END goes
// first and the new X is the message, after a reopen too, with nothing
// in quarantine.
func TestJournalReview3EnqueueSameIDAfterCompleteEndPending(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys, Now: clk.now, PollInterval: 10 * time.Millisecond})
	must(t, err)
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("X"), strings.NewReader("first\r\n")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(1)
	if err := s.Complete(ctx, m); !errors.Is(err, errEndPending) {
		t.Fatalf("Complete with a failing END = %v, want errEndPending", err)
	}
	fsys.failing.Store(-1) // every fdatasync fails: the flush breaks the journal
	if _, err := s.Enqueue(ctx, jenv("X"), strings.NewReader("second\r\n")); err == nil {
		t.Fatalf("Enqueue of X returned nil while the END of the completed X cannot be written")
	}
	fsys.failing.Store(0)
	clk.add(journalRetryMax)
	if _, err := s.Enqueue(ctx, jenv("X"), strings.NewReader("second\r\n")); err != nil {
		t.Fatalf("Enqueue of X once the disk works: %v", err)
	}
	if b := attackReadBody(t, s, "X"); b != "second\r\n" {
		t.Fatalf("X = %q, want the second message", b)
	}
	s.Close()
	for i := range 2 {
		s, err = Open(dir, Options{})
		must(t, err)
		n := s.Len()
		b := attackReadBody(t, s, "X")
		s.Close()
		qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
		if n != 1 || b != "second\r\n" || len(qs) != 0 {
			t.Fatalf("Open %d: Len %d, X %q, %d quarantine files; want the second X only", i+1, n, b, len(qs))
		}
	}
}

// TestJournalReview3CloseWhileBrokenThenComplete: the journal is broken
// (a failed fdatasync whose cut-back failed) when Close runs; closeIdle
// keeps the segment, and a Complete during the shutdown retries the
// clean-up once its back-off passed and writes its END there. After a
// reopen: the completed message gone, the other one there, the failed
// Enqueue absent.
func TestJournalReview3CloseWhileBrokenThenComplete(t *testing.T) {
	dir := t.TempDir()
	clk := &attackClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys, Now: clk.now, PollInterval: 10 * time.Millisecond})
	must(t, err)
	ctx := t.Context()
	for _, id := range []string{"A", "B"} {
		if _, err := s.Enqueue(ctx, jenv(id), strings.NewReader(id+"\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Lease(ctx)
	must(t, err)
	fsys.failing.Store(-1)
	fsys.failTrunc.Store(true)
	_, cerr := s.Enqueue(ctx, jenv("C"), strings.NewReader("C\r\n"))
	if s.j.brokenErr() == nil {
		t.Skipf("journal not broken (Enqueue C: %v)", cerr)
	}
	s.Close()
	fsys.failing.Store(0)
	fsys.failTrunc.Store(false)
	clk.add(journalRetryMax)
	if err := s.Complete(ctx, m); err != nil {
		t.Fatalf("Complete after Close, the disk working again: %v", err)
	}
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	want := map[string]bool{"A": false, "B": true, "C": cerr == nil}
	if id := m.Envelope.ID; id != "A" {
		want["A"], want[id] = true, false
	}
	for id, w := range want {
		if s.has(id) != w {
			t.Errorf("%s queued after reopen: %v, want %v (Enqueue C: %v)", id, s.has(id), w, cerr)
		}
	}
}

// has reports whether message id is indexed.
func (s *Spool) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries[id] != nil
}

// TestJournalReview3CompleteRacesFlush: a flushEnds (the retry timer, or
// an Enqueue, claim or Reschedule of another message) that takes the
// pending END of a moved message while its Complete runs finishes that
// Complete (removes the file). Complete must not return nil before the
// file is gone: it waited only when its own flush found an END pending,
// and the other flush could have taken it off the list already.
func TestJournalReview3CompleteRacesFlush(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	defer s.Close()
	ctx := t.Context()
	for i := range 200 {
		id := fmt.Sprintf("R%03d", i)
		if _, err := s.Enqueue(ctx, jenv(id), strings.NewReader(id+"\r\n")); err != nil {
			t.Fatal(err)
		}
		m, err := s.Lease(ctx)
		must(t, err)
		movePendingEnd(t, s, id)
		done := make(chan struct{})
		go func() { s.flushEnds(); close(done) }()
		if i%2 == 0 {
			runtime.Gosched()
		}
		err = s.Complete(ctx, m)
		if err == nil {
			if _, serr := os.Stat(filepath.Join(dir, spoolMsgDir, id+msgExt)); serr == nil {
				t.Fatalf("%s: Complete returned nil while its file is still in msg/", id)
			}
		} else {
			t.Logf("%s: Complete: %v", id, err)
		}
		<-done
	}
}

// TestJournalReview3LastRecordBitFlip: one flipped bit in the body of the
// last record of the newest segment, an acknowledged message (C). Replay
// took any bad last record for a torn write and cut it with a WARN: C was
// gone without a copy anywhere. A torn write leaves its record short; one
// that is all there but fails its CRC is damage, copied to quarantine.
func TestJournalReview3LastRecordBitFlip(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	for _, id := range []string{"A", "B", "C"} {
		if _, err := s.Enqueue(t.Context(), jenv(id), strings.NewReader(jbody(id, 10))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	offs := recordOffsets(t, last)
	b, err := os.ReadFile(last)
	must(t, err)
	b[offs[2]+40] ^= 0x01 // a bit of C's body: C was acknowledged
	must(t, os.WriteFile(last, b, 0o644))
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
	if s.Len() != 2 || len(qs) != 1 {
		t.Fatalf("Len %d, %d quarantine files: C (acknowledged, its last record bit-flipped) dropped silently as a torn tail", s.Len(), len(qs))
	}
}

// TestJournalReview3MovedCheckMatchesInstance: msg/X.msg and a live
// journal MSG X of another instance (msg/X of a Complete whose removal
// was not durable when a crash came, after the same preset ID was
// enqueued again into the journal). Replay took any msg/ file of the ID
// for the moved copy of the MSG and wrote its END: the journal's X, an
// acknowledged message, was gone without a copy. It goes to quarantine
// now (once: a second Open finds it there), msg/X stays the message.
func TestJournalReview3MovedCheckMatchesInstance(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{JournalMaxBytes: 1024})
	must(t, err)
	big := strings.Repeat("big\r\n", 1000) // msg/: above JournalMaxBytes
	if _, err := s.Enqueue(t.Context(), jenv("X"), strings.NewReader(big)); err != nil {
		t.Fatal(err)
	}
	appendMsg(t, s, "X", 7, "second\r\n")
	s.Close()
	for i := range 2 {
		s, err = Open(dir, Options{})
		must(t, err)
		n, b := s.Len(), attackReadBody(t, s, "X")
		s.Close()
		qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
		if n != 1 || b != big || len(qs) != 1 {
			t.Fatalf("Open %d: Len %d, X %d bytes, %d quarantine files; want msg/X and the journal's X in quarantine", i+1, n, len(b), len(qs))
		}
		q, err := readBodyFile(filepath.Join(dir, spoolQuarantineDir, qs[0].Name()))
		if err != nil || q != "second\r\n" {
			t.Fatalf("quarantined body %q, %v", q, err)
		}
	}
}

// seqSyncFS: the segment files' fdatasyncs after arming: the first
// blocks until gate closes (then succeeds), the second fails (EIO), the
// later ones succeed.
type seqSyncFS struct {
	safefile.OS
	n       atomic.Int32 // fdatasyncs since arming; 0: not armed
	entered chan struct{}
	gate    chan struct{}
}

func (g *seqSyncFS) Create(path string) (safefile.File, error) {
	f, err := g.OS.Create(path)
	return seqSyncFile{f, g}, err
}

type seqSyncFile struct {
	safefile.File
	g *seqSyncFS
}

func (f seqSyncFile) Datasync() error {
	if f.g.n.Load() == 0 {
		return f.File.Datasync()
	}
	switch f.g.n.Add(1) {
	case 2:
		f.g.entered <- struct{}{}
		<-f.g.gate
	case 3:
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Datasync()
}

// TestJournalReview3RecordWrittenDuringSyncNotAckedByIt: B's record is
// written while the leader's fdatasync for A runs. That fdatasync
// succeeds: A is acknowledged, B is not (it started before B's write);
// the next one, B's, fails: B's Enqueue fails, and after a reopen A is
// there and B is not.
func TestJournalReview3RecordWrittenDuringSyncNotAckedByIt(t *testing.T) {
	dir := t.TempDir()
	g := &seqSyncFS{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	s, err := Open(dir, Options{fs: g})
	must(t, err)
	ctx := t.Context()
	if _, err := s.Enqueue(ctx, jenv("Z"), strings.NewReader("z\r\n")); err != nil {
		t.Fatal(err)
	}
	g.n.Store(1)
	errs := make(chan error, 2)
	go func() {
		_, err := s.Enqueue(ctx, jenv("A"), strings.NewReader("a\r\n"))
		errs <- err
	}()
	<-g.entered // A's leader is in its fdatasync
	bErr := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, jenv("B"), strings.NewReader("b\r\n"))
		bErr <- err
	}()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.j.mu.Lock()
		written := s.j.open != nil
		s.j.mu.Unlock()
		if written {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B's record not written while A's fdatasync runs")
		}
	}
	close(g.gate)
	if err := <-errs; err != nil {
		t.Fatalf("Enqueue A: %v", err)
	}
	if err := <-bErr; err == nil {
		t.Fatalf("Enqueue B returned nil: acknowledged by the fdatasync that started before its write, or by none")
	}
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if !s.has("A") || !s.has("Z") || s.has("B") {
		t.Fatalf("after reopen A %v, Z %v, B %v; want A and Z, not B", s.has("A"), s.has("Z"), s.has("B"))
	}
}

// TestJournalReview3CrashDuringOpenSuperseded: Open's own writes for a
// MSG that replay copies to quarantine before its END (an older X that a
// newer MSG superseded; a journal X beside another message X in msg/)
// stopped by a power loss at each file operation; the next Opens keep the
// other X as the message and hold the copied one in quarantine exactly
// once.
func TestJournalReview3CrashDuringOpenSuperseded(t *testing.T) {
	big := strings.Repeat("big\r\n", 1000)
	cases := []struct {
		name         string
		o            Options
		first        string // enqueued
		second       string // MSG X#7 appended
		kept, copied string
	}{
		{"two MSGs", Options{}, "first\r\n", "second\r\n", "second\r\n", "first\r\n"},
		{"msg/ holds another X", Options{JournalMaxBytes: 1024}, big, "second\r\n", big, "second\r\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := crashOpenPoints(t, func(h *crashHarness) {
				h.o.JournalMaxBytes = c.o.JournalMaxBytes
				h.open()
				if _, err := h.s.Enqueue(h.ctx, jenv("X"), strings.NewReader(c.first)); err != nil {
					t.Fatal(err)
				}
				appendMsg(t, h.s, "X", 7, c.second)
				h.s.Close()
			}, func(label string, s *Spool, dir string) {
				n, b := s.Len(), attackReadBody(t, s, "X")
				qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
				if n != 1 || b != c.kept || len(qs) != 1 {
					t.Fatalf("%s: Len %d, X %d bytes, %d quarantine files; want the kept X and the other once in quarantine", label, n, len(b), len(qs))
				}
				q, err := readBodyFile(filepath.Join(dir, spoolQuarantineDir, qs[0].Name()))
				if err != nil || q != c.copied {
					t.Fatalf("%s: quarantined %d bytes, %v", label, len(q), err)
				}
			})
			t.Logf("%d crash points", n)
		})
	}
}

// crashOpenPoints builds a spool with setup, then stops an Open of it by
// a power loss at each file operation, and checks two Opens after each
// on the real file system. It returns the number of points.
func crashOpenPoints(t *testing.T, setup func(h *crashHarness), check func(label string, s *Spool, dir string)) int {
	for k := 1; k <= 100; k++ {
		h := newCrashHarness(t)
		setup(h)
		h.fs.arm(k, true)
		if s, err := Open(h.dir, h.o); err == nil {
			s.Close()
		}
		fired := h.fs.fired()
		h.fs.powerLoss()
		for i := range 2 {
			label := fmt.Sprintf("crash at op %d, reopen %d", k, i+1)
			s, err := Open(h.dir, Options{Now: h.o.Now})
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			check(label, s, h.dir)
			s.Close()
		}
		h.cfail()
		if !fired {
			return k - 1
		}
	}
	t.Fatal("Open did not end within 100 operations")
	return 0
}
