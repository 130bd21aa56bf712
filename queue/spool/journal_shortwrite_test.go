package spool

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// gateFS: segment files whose first Datasync after arming blocks until
// the gate closes, and whose WriteAt of a record holding the marker writes
// half of it and fails with ENOSPC (a short write on a full disk).
type gateFS struct {
	safefile.OS
	armed   atomic.Bool
	entered chan struct{}
	gate    chan struct{}
	marker  []byte
}

func (g *gateFS) Create(path string) (safefile.File, error) {
	f, err := g.OS.Create(path)
	return gateFile{f, g}, err
}

type gateFile struct {
	safefile.File
	g *gateFS
}

func (f gateFile) WriteAt(p []byte, off int64) (int, error) {
	if bytes.Contains(p, f.g.marker) {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.WriteAt(p, off)
}

func (f gateFile) Datasync() error {
	if f.g.armed.CompareAndSwap(true, false) {
		f.g.entered <- struct{}{}
		<-f.g.gate
	}
	return f.File.Datasync()
}

// TestJournalShortWriteLeavesNothingPastTail: a short write (ENOSPC) of
// F's record at the tail, while a leader's fdatasync runs; H's record
// would go to the same offset (the tail did not move) over F's first
// bytes, and G's record does not fit, so G would rotate as soon as the
// leader is done. Had H written and G rotated before F got the mutex back,
// F would find another active segment and cut nothing, and the rotation's
// fdatasync would make the rest of F's bytes after H's record durable:
// replay reads them as records from H's end, and a record crafted inside
// F's body (here a MSG of ID EVIL, with its own envelope) is queued,
// though no Enqueue returned for it. Nothing may be written, synced or
// rotated until F's bytes past the tail are cut back.
func TestJournalShortWriteLeavesNothingPastTail(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mkenv := func(id string, size int) *queue.Envelope {
		e := jenv(id)
		e.Arrival = at
		e.Size = int64(size)
		return e
	}
	recLen := func(id string, body int) int {
		data, err := marshalEnvelope(mkenv(id, body))
		must(t, err)
		return msgBodyOffset(id) + body + len(data)
	}
	// The crafted record.
	evilBody := []byte("injected\r\n")
	evilEnv, err := marshalEnvelope(mkenv("EVIL", len(evilBody)))
	must(t, err)
	buf := make([]byte, msgBodyOffset("EVIL")+len(evilBody), 4096)
	copy(buf[msgBodyOffset("EVIL"):], evilBody)
	evil := encodeMsgRecord(buf, "EVIL", 42, len(evilBody), evilEnv)

	hBody := "h\r\n"
	hLen := recLen("H", len(hBody))
	fBody := make([]byte, 3000)
	for i := range fBody {
		fBody[i] = 'f'
	}
	copy(fBody[hLen-msgBodyOffset("F"):], evil)
	copy(fBody[2500:], "FMARK")

	for iter := range 40 {
		dir := t.TempDir()
		g := &gateFS{entered: make(chan struct{}, 1), gate: make(chan struct{}), marker: []byte("FMARK")}
		s, err := Open(dir, Options{fs: g, JournalSegmentBytes: 8192, Now: func() time.Time { return at }})
		must(t, err)
		if _, err := s.Enqueue(t.Context(), mkenv("R0", 0), strings.NewReader(strings.Repeat("r", 3500))); err != nil {
			t.Fatal(err)
		}
		g.armed.Store(true)
		var wg sync.WaitGroup
		res := map[string]error{}
		var mu sync.Mutex
		enq := func(id, body string) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Enqueue(t.Context(), mkenv(id, 0), strings.NewReader(body))
				mu.Lock()
				res[id] = err
				mu.Unlock()
			}()
		}
		enq("A", "a\r\n")
		<-g.entered // A's fdatasync (the leader) is running
		enq("F", string(fBody))
		time.Sleep(30 * time.Millisecond)
		enq("H", hBody)
		time.Sleep(30 * time.Millisecond)
		enq("G", strings.Repeat("g", 5000))
		time.Sleep(30 * time.Millisecond)
		close(g.gate)
		wg.Wait()
		s.Close()
		s, err = Open(dir, Options{})
		must(t, err)
		evilBack := s.entries["EVIL"] != nil
		s.Close()
		if evilBack {
			t.Fatalf("iteration %d: EVIL, a record crafted inside F's body, is queued after reopen (Enqueue results %v)", iter, res)
		}
		if res["F"] == nil {
			t.Fatalf("F's short write returned nil")
		}
	}
}

// TestJournalShortWriteFailuresKeepSegment: on a full disk every journal
// Enqueue's write fails (ENOSPC, short); each failure cuts the segment
// back and keeps using it, rather than rotating to a new segment file per
// failure (a disk full for an hour of client retries would leave as many
// files), and the journal works once the disk does.
func TestJournalShortWriteFailuresKeepSegment(t *testing.T) {
	dir := t.TempDir()
	g := &gateFS{entered: make(chan struct{}, 1), gate: make(chan struct{}), marker: []byte("FMARK")}
	s, err := Open(dir, Options{fs: g})
	must(t, err)
	defer s.Close()
	for range 100 {
		if _, err := s.Enqueue(t.Context(), jenv("F"), strings.NewReader("FMARK\r\n")); err == nil {
			t.Fatal("short write succeeded")
		}
	}
	if n := len(segments(t, dir)); n > 1 {
		t.Fatalf("%d segment files after 100 failed writes", n)
	}
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after failed writes that were cut back: %v", err)
	}
	if _, err := s.Enqueue(t.Context(), jenv("OK"), strings.NewReader("ok\r\n")); err != nil || s.journalOf("OK") == nil {
		t.Fatalf("Enqueue after the failures: %v, in the journal: %v", err, s.journalOf("OK") != nil)
	}
}
