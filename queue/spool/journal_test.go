package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

func jenv(id string) *queue.Envelope {
	return &queue.Envelope{ID: id, From: "alice@example.com", Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}}}
}

func jbody(id string, n int) string { return strings.Repeat(id+" line\r\n", n) }

// segments lists the journal's segment files, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	names, err := safefile.ReadDirNames(filepath.Join(dir, spoolJournalDir))
	must(t, err)
	slices.Sort(names)
	for i, n := range names {
		names[i] = filepath.Join(dir, spoolJournalDir, n)
	}
	return names
}

// recordOffsets returns the offset of every record in a segment file.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	var offs []int64
	if _, err := readRecords(f, func(_ jrec, off int64) error { offs = append(offs, off); return nil }); err != nil {
		t.Fatal(err)
	}
	return offs
}

// bodyOf leases nothing: it reads the body of a queued message directly.
func bodyOf(t *testing.T, s *Spool, id string) string {
	t.Helper()
	jm := s.journalOf(id)
	if jm == nil {
		t.Fatalf("%s is not a journal message", id)
	}
	rc, err := s.journalBody(id, jm)
	must(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	must(t, err)
	return string(b)
}

// TestJournalTornTail cuts the newest segment at every byte offset of its
// last record: the earlier messages replay whole, the cut one never does,
// and the segment is truncated back to the end of the last whole record
// with a WARN that gives the byte count.
func TestJournalTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	for i, id := range []string{"A", "B", "C"} {
		if _, err := s.Enqueue(t.Context(), jenv(id), strings.NewReader(jbody(id, 3+i))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v, want 1", segs)
	}
	whole, err := os.ReadFile(segs[0])
	must(t, err)
	offs := recordOffsets(t, segs[0])
	last := offs[len(offs)-1]
	for cut := last; cut < int64(len(whole)); cut++ {
		must(t, os.WriteFile(segs[0], whole[:cut], 0o600))
		logs := &testutil.LogBuffer{}
		s, err := Open(dir, Options{Logger: logs.Logger()})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		if s.Len() != 2 || s.journalOf("C") != nil || bodyOf(t, s, "B") != jbody("B", 4) {
			t.Fatalf("cut at %d: Len %d, C %v; want A and B only", cut, s.Len(), s.journalOf("C"))
		}
		if fi, err := os.Stat(segs[0]); err != nil || fi.Size() != last {
			t.Fatalf("cut at %d: segment not truncated to %d: %v %v", cut, last, fi.Size(), err)
		}
		if n := cut - last; n > 0 && !strings.Contains(logs.String(), fmt.Sprintf("bytes=%d", n)) {
			t.Fatalf("cut at %d: no WARN with the %d bytes cut off:\n%s", cut, n, logs)
		}
		s.Close()
	}
}

// TestJournalDamagedSegment flips a byte in a record in the middle of an
// older segment: the records before it are kept, the rest of that segment
// goes to quarantine/ with an ERROR, and the newer segments replay.
func TestJournalDamagedSegment(t *testing.T) {
	dir := t.TempDir()
	o := Options{JournalSegmentBytes: 8 << 10}
	s, err := Open(dir, o)
	must(t, err)
	var ids []string
	for i := range 12 {
		id := fmt.Sprintf("M%02d", i)
		ids = append(ids, id)
		if _, err := s.Enqueue(t.Context(), jenv(id), strings.NewReader(jbody(id, 200))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("segments %v, want at least 3", segs)
	}
	offs := recordOffsets(t, segs[0])
	if len(offs) < 3 {
		t.Fatalf("%d records in the first segment, want 3 or more", len(offs))
	}
	data, err := os.ReadFile(segs[0])
	must(t, err)
	var before []string // the messages of the records before the damage
	must2(readRecords(strings.NewReader(string(data[:offs[1]])), func(r jrec, _ int64) error { before = append(before, r.id); return nil }))
	data[offs[1]+40] ^= 0x5a
	must(t, os.WriteFile(segs[0], data, 0o600))

	logs := &testutil.LogBuffer{}
	o.Logger = logs.Logger()
	s, err = Open(dir, o)
	must(t, err)
	defer s.Close()
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "journal segment damaged") {
		t.Fatalf("no ERROR for the damaged segment:\n%s", logs)
	}
	q, _ := filepath.Glob(filepath.Join(dir, spoolQuarantineDir, "journal@*"))
	if len(q) != 1 {
		t.Fatalf("quarantine/ %v, want the segment's rest", q)
	}
	if rest, _ := os.ReadFile(q[0]); len(rest) != len(data)-int(offs[1]) {
		t.Fatalf("quarantined rest is %d bytes, want %d", len(rest), len(data)-int(offs[1]))
	}
	for _, id := range before {
		if bodyOf(t, s, id) != jbody(id, 200) {
			t.Fatalf("%s (before the damage) not kept", id)
		}
	}
	// Every message of the newer segments is there.
	lastSeg := recordOffsets(t, segs[len(segs)-1])
	if len(lastSeg) == 0 || s.journalOf(ids[len(ids)-1]) == nil {
		t.Fatalf("the newest message is gone after damage in an older segment")
	}
	// A second Open finds nothing more to do.
	s.Close()
	logs2 := &testutil.LogBuffer{}
	o.Logger = logs2.Logger()
	s2, err := Open(dir, o)
	must(t, err)
	s2.Close()
	if strings.Contains(logs2.String(), "damaged") {
		t.Fatalf("the damage is reported again at the next Open:\n%s", logs2)
	}
}

func must2(_ int64, err error) {
	if err != nil {
		panic(err)
	}
}

// failSyncFS is the real file system whose journal segments fail their
// next failing fdatasyncs with err (all of them when failing is negative),
// and their Truncate while failTrunc is set.
type failSyncFS struct {
	safefile.OS
	failing   atomic.Int32
	failTrunc atomic.Bool
	err       error
}

func (f *failSyncFS) Create(path string) (safefile.File, error) {
	sf, err := f.OS.Create(path)
	if err != nil {
		return nil, err
	}
	return failSyncFile{sf, f}, nil
}

type failSyncFile struct {
	safefile.File
	fs *failSyncFS
}

func (f failSyncFile) Datasync() error {
	if n := f.fs.failing.Load(); n < 0 || n > 0 && f.fs.failing.CompareAndSwap(n, n-1) {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: f.fs.err}
	}
	return f.File.Datasync()
}

func (f failSyncFile) Truncate(n int64) error {
	if f.fs.failTrunc.Load() {
		return &os.PathError{Op: "truncate", Path: f.Name(), Err: syscall.EIO}
	}
	return f.File.Truncate(n)
}

// TestJournalSyncFailure: an fdatasync that fails (ENOSPC, EIO) fails the
// Enqueue whose record it was to cover (ENOSPC as ErrInsufficientStorage),
// that record never replays, and the next Enqueue works.
func TestJournalSyncFailure(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := t.TempDir()
			fsys := &failSyncFS{err: errno}
			s, err := Open(dir, Options{fs: fsys})
			must(t, err)
			if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a")); err != nil {
				t.Fatal(err)
			}
			fsys.failing.Store(1)
			_, err = s.Enqueue(t.Context(), jenv("B"), strings.NewReader("b"))
			if err == nil || errno == syscall.ENOSPC && !errors.Is(err, queue.ErrInsufficientStorage) {
				t.Fatalf("Enqueue with a failing fdatasync = %v", err)
			}
			if _, err := s.Enqueue(t.Context(), jenv("C"), strings.NewReader("c")); err != nil {
				t.Fatalf("Enqueue after the failure: %v", err)
			}
			if err := s.Ready(t.Context()); err != nil {
				t.Fatalf("Ready after a failure that was cleaned up: %v", err)
			}
			s.Close()
			s, err = Open(dir, Options{})
			must(t, err)
			defer s.Close()
			if s.Len() != 2 || s.journalOf("B") != nil || s.journalOf("A") == nil || s.journalOf("C") == nil {
				t.Fatalf("after reopen: Len %d, B %v; want A and C", s.Len(), s.journalOf("B"))
			}
		})
	}
}

// TestJournalBroken: when the tail of a failed fdatasync cannot be cut
// back, the journal is broken: Ready says so, Enqueue writes msg/ files.
func TestJournalBroken(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys})
	must(t, err)
	defer s.Close()
	fsys.failing.Store(-1)
	fsys.failTrunc.Store(true)
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a")); err == nil {
		t.Fatal("Enqueue with a failing fdatasync succeeded")
	}
	if err := s.Ready(t.Context()); !errors.Is(err, errJournalBroken) {
		t.Fatalf("Ready = %v, want the broken journal", err)
	}
	if _, err := s.Enqueue(t.Context(), jenv("B"), strings.NewReader("b")); err != nil {
		t.Fatalf("Enqueue on a broken journal: %v", err)
	}
	if _, err := os.Stat(s.msgPath("B")); err != nil {
		t.Fatalf("B not written to msg/: %v", err)
	}
}

// TestJournalGroupCommit: concurrent Enqueues share fdatasyncs, every one
// that returned nil is there after a reopen, and completed messages'
// segments are deleted.
func TestJournalGroupCommit(t *testing.T) {
	dir := t.TempDir()
	o := Options{JournalSegmentBytes: 64 << 10, PollInterval: time.Millisecond}
	s, err := Open(dir, o)
	must(t, err)
	var wg sync.WaitGroup
	const n = 64
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("G%03d", i)
			if _, err := s.Enqueue(context.Background(), jenv(id), strings.NewReader(jbody(id, 100))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	s.Close()
	s, err = Open(dir, o)
	must(t, err)
	defer s.Close()
	if s.Len() != n {
		t.Fatalf("Len %d after reopen, want %d", s.Len(), n)
	}
	for range n {
		m, err := s.Lease(t.Context())
		must(t, err)
		rc, err := s.Body(t.Context(), m)
		must(t, err)
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != jbody(m.Envelope.ID, 100) || m.Envelope.Attempts != 1 {
			t.Fatalf("%s: body %d bytes, attempts %d", m.Envelope.ID, len(b), m.Envelope.Attempts)
		}
		must(t, s.Complete(t.Context(), m))
	}
	if segs := segments(t, dir); len(segs) != 1 {
		t.Fatalf("segments left after every message completed: %v, want only the active one", segs)
	}
}

// TestJournalConcurrentSyncFailure: with 16 Enqueues in flight, one
// fdatasync fails: whatever each Enqueue returned holds after a reopen
// (nil: there, whole; an error: never there), and later Enqueues work.
func TestJournalConcurrentSyncFailure(t *testing.T) {
	for round := range 8 {
		dir := t.TempDir()
		fsys := &failSyncFS{err: syscall.EIO}
		s, err := Open(dir, Options{fs: fsys})
		must(t, err)
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := map[string]bool{}
		for i := range 16 {
			if i == 4+round {
				fsys.failing.Store(1)
			}
			wg.Go(func() {
				id := fmt.Sprintf("R%02d", i)
				_, err := s.Enqueue(context.Background(), jenv(id), strings.NewReader(jbody(id, 50)))
				mu.Lock()
				ok[id] = err == nil
				mu.Unlock()
			})
		}
		wg.Wait()
		if _, err := s.Enqueue(t.Context(), jenv("LATER"), strings.NewReader("later")); err != nil {
			t.Fatalf("round %d: Enqueue after the failure: %v", round, err)
		}
		ok["LATER"] = true
		s.Close()
		s, err = Open(dir, Options{})
		must(t, err)
		for id, acked := range ok {
			switch {
			case acked && s.journalOf(id) == nil:
				t.Fatalf("round %d: %s acknowledged, gone after reopen", round, id)
			case acked && id != "LATER" && bodyOf(t, s, id) != jbody(id, 50):
				t.Fatalf("round %d: %s damaged", round, id)
			case !acked && s.journalOf(id) != nil:
				t.Fatalf("round %d: %s failed, but replays", round, id)
			}
		}
		s.Close()
	}
}
