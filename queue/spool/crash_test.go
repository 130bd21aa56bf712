package spool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// Crash consistency of the spool (TESTING.md §4, issue 8): every path that
// writes — enqueue, claim (Lease: the lease slot written in place, torn
// when the power is cut during it), reschedule, complete, quarantine of a
// corrupt envelope, quarantine of a message whose deliveries crashed,
// Open's own clean-up, and Open's migration of the layout before issue 10
// — is stopped at each of its file operations in
// turn, once by a power loss (faultFS crash mode: the operation and all
// later ones fail, and whatever was not fsync'd is undone) and once by a
// single EIO (fault mode). The spool is then reopened on the real file
// system and checked:
//
//   - no message whose Enqueue returned nil is lost, and none that was
//     not Completed is gone (envelopes are never deleted);
//   - every message file in msg/ is readable and its body is complete;
//   - no envelope file without its message file, no file of the previous
//     layout and no temporary file is left (leftovers cleaned);
//   - a message whose claim may still be running (claimed, no durable
//     Reschedule or Complete) is not due again before its lease ends, so it
//     is never leased twice at once;
//   - only what was meant for quarantine is there, with its body.

// crashHarness is one run: a spool on a faultFS in a fresh directory, a
// fixed clock, and what the run expects.
type crashHarness struct {
	t     *testing.T
	dir   string
	fs    *faultFS
	now   time.Time
	s     *Spool
	o     Options
	ctx   context.Context
	cfail func()

	bodies     map[string]string    // every message ever enqueued, by ID
	must       map[string]bool      // acknowledged and not completed: must be there
	gone       map[string]bool      // Completed with success: must not be in msg/
	leased     map[string]time.Time // claimed, not ended durably: not due before this (the lease's end)
	quarantine map[string]bool      // may be in quarantine (then whole)
	wantQ      map[string]bool      // must be in quarantine
	failed     map[string]bool      // Enqueue returned an error: must never be queued
	check      func(h *crashHarness, s *Spool)
	pending    *queue.Message // a lease taken in setup
	small      bool           // bodies that fit the journal
}

func newCrashHarness(t *testing.T) *crashHarness {
	base := t.TempDir()
	h := &crashHarness{
		t: t, dir: filepath.Join(base, "spool"), fs: newFaultFS(base),
		now:    time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC),
		bodies: map[string]string{}, must: map[string]bool{}, gone: map[string]bool{},
		leased: map[string]time.Time{}, quarantine: map[string]bool{}, wantQ: map[string]bool{},
		failed: map[string]bool{},
	}
	h.ctx, h.cfail = context.WithTimeout(context.Background(), 5*time.Second)
	h.o = Options{Now: func() time.Time { return h.now }, PollInterval: time.Millisecond, LeaseTimeout: 10 * time.Minute, fs: h.fs}
	return h
}

func (h *crashHarness) open() {
	h.t.Helper()
	s, err := Open(h.dir, h.o)
	if err != nil {
		h.t.Fatalf("Open: %v", err)
	}
	h.s = s
}

func (h *crashHarness) body(id string) string {
	if h.small {
		return strings.Repeat(id+" body line\r\n", 200) // a journal record
	}
	// Several write calls' worth, so that each write is a crash point;
	// more than the journal takes.
	return strings.Repeat(id+" body line\r\n", 12000)
}

func (h *crashHarness) enqueue(id string) error {
	h.bodies[id] = h.body(id)
	env := &queue.Envelope{ID: id, From: "alice@example.com", Recipients: []queue.Recipient{
		{Addr: "bob@example.net", Status: queue.StatusPending}, {Addr: "carol@example.org", Status: queue.StatusPending}}}
	_, err := h.s.Enqueue(h.ctx, env, strings.NewReader(h.bodies[id]))
	if err == nil {
		h.must[id] = true
	} else {
		h.failed[id] = true
	}
	return err
}

func (h *crashHarness) mustEnqueue(id string) {
	h.t.Helper()
	if err := h.enqueue(id); err != nil {
		h.t.Fatalf("Enqueue %s: %v", id, err)
	}
}

func (h *crashHarness) lease() (*queue.Message, error) {
	ctx, cancel := context.WithTimeout(h.ctx, time.Second)
	defer cancel()
	m, err := h.s.Lease(ctx)
	if err == nil {
		h.leased[m.Envelope.ID] = h.now.Add(h.o.LeaseTimeout)
	}
	return m, err
}

func (h *crashHarness) mustLease(want string) *queue.Message {
	h.t.Helper()
	m, err := h.lease()
	if err != nil || m.Envelope.ID != want {
		h.t.Fatalf("Lease = %v, %v; want %s", m, err, want)
	}
	return m
}

// verify reopens the spool on the real file system and checks the
// invariants.
func (h *crashHarness) verify(label string) {
	t := h.t
	t.Helper()
	o := h.o
	o.fs = nil
	s, err := Open(h.dir, o)
	if err != nil {
		t.Fatalf("%s: reopen: %v", label, err)
	}
	defer s.Close()
	names := func(d string) map[string]bool {
		ns, err := safefile.OS{}.ReadDirNames(filepath.Join(h.dir, d))
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		m := map[string]bool{}
		for _, n := range ns {
			m[n] = true
		}
		return m
	}
	if tmp := names(spoolTmpDir); len(tmp) > 0 {
		t.Errorf("%s: tmp/ not cleaned: %v", label, tmp)
	}
	msg := names(spoolMsgDir)
	for n := range msg {
		id, ext := splitName(n)
		switch ext {
		case envelopeExt:
			if !msg[id+msgExt] {
				t.Errorf("%s: envelope file %s has no message file after reopen", label, n)
			}
		case msgExt:
			rec, err := s.readRecord(id)
			if err != nil {
				t.Errorf("%s: message %s unreadable after reopen: %v", label, id, err)
				continue
			}
			if b, err := readBodyFile(filepath.Join(h.dir, spoolMsgDir, n)); err != nil || b != h.bodies[id] {
				t.Errorf("%s: body of %s: %d bytes, %v; want the %d bytes enqueued", label, id, len(b), err, len(h.bodies[id]))
			}
			if rec.Size != int64(len(h.bodies[id])) {
				t.Errorf("%s: envelope of %s: Size %d, want %d", label, id, rec.Size, len(h.bodies[id]))
			}
			if s.entries[id] == nil {
				t.Errorf("%s: %s is in msg/ but not indexed", label, id)
			}
		default:
			t.Errorf("%s: unexpected file msg/%s", label, n)
		}
	}
	q := names(spoolQuarantineDir)
	inQ := func(id, ext string) bool {
		for n := range q {
			if strings.HasPrefix(n, id+ext) {
				return true
			}
		}
		return false
	}
	inJournal := func(id string) bool { return s.journalOf(id) != nil }
	for id := range h.must {
		if inJournal(id) {
			h.checkJournalMessage(label, s, id)
			if h.wantQ[id] {
				t.Errorf("%s: %s should be in quarantine, is in the journal", label, id)
			}
			continue
		}
		inMsg := msg[id+msgExt]
		switch {
		case h.wantQ[id]:
			if inMsg || !inQ(id, msgExt) {
				t.Errorf("%s: %s should be in quarantine with its body (msg/ %v, quarantine/ %v)", label, id, inMsg, q)
			}
		case h.quarantine[id] && (inQ(id, msgExt) || inQ(id, envelopeExt)):
			if inMsg || msg[id+envelopeExt] || !inQ(id, msgExt) {
				t.Errorf("%s: %s half in quarantine (msg/ %v, quarantine/ %v)", label, id, msg, q)
			}
			if b, err := readBodyFile(filepath.Join(h.dir, spoolQuarantineDir, id+msgExt)); err != nil || b != h.bodies[id] {
				t.Errorf("%s: quarantined body of %s damaged: %d bytes, %v", label, id, len(b), err)
			}
		case !inMsg:
			t.Errorf("%s: acknowledged message %s lost (msg/ %v, quarantine/ %v)", label, id, msg, q)
		}
	}
	for n := range q {
		if id, _ := splitName(n); !h.quarantine[id] && !h.wantQ[id] {
			t.Errorf("%s: %s quarantined unexpectedly", label, n)
		}
	}
	for id := range h.failed {
		if s.entries[id] != nil && !h.must[id] {
			t.Errorf("%s: %s is queued after the restart, but its Enqueue failed", label, id)
		}
	}
	for id := range h.gone {
		if msg[id+msgExt] || s.entries[id] != nil {
			t.Errorf("%s: completed message %s is back", label, id)
		}
	}
	for id, until := range h.leased {
		if e := s.entries[id]; e != nil && e.next.Before(until) {
			t.Errorf("%s: %s is due at %v after the restart, before its lease ends at %v: it could be delivered twice at once", label, id, e.next, until)
		}
	}
	if h.check != nil {
		h.check(h, s)
	}
}

// crashPath runs one path at every crash point (crash mode) or fault point
// and returns how many points there were. setup runs on the unarmed
// faultFS (and opens h.s unless the path opens it), run is the path.
func crashPath(t *testing.T, crash bool, setup, run func(h *crashHarness)) int {
	t.Helper()
	for k := 1; k <= 400; k++ {
		h := newCrashHarness(t)
		setup(h)
		h.fs.arm(k, crash)
		run(h)
		fired := h.fs.fired()
		if h.s != nil {
			h.s.Close()
		}
		if crash {
			h.fs.powerLoss()
		}
		mode := "fault"
		if crash {
			mode = "crash"
		}
		if !crash {
			h.fs.closeAll()
		}
		h.verify(fmt.Sprintf("%s at op %d", mode, k))
		h.cfail()
		if t.Failed() {
			t.FailNow()
		}
		if !fired {
			return k - 1
		}
	}
	t.Fatal("the path did not end within 400 operations")
	return 0
}

func TestSpoolCrashPoints(t *testing.T) {
	paths := []struct {
		name       string
		setup, run func(h *crashHarness)
	}{
		{"enqueue", func(h *crashHarness) {
			h.open()
			h.mustEnqueue("A")
		}, func(h *crashHarness) {
			h.enqueue("B") // must[B] only if it returned nil
		}},
		{"claim", func(h *crashHarness) {
			h.open()
			h.mustEnqueue("A")
		}, func(h *crashHarness) {
			h.lease()
		}},
		{"claim after a crashed claim", func(h *crashHarness) {
			// The second claim writes the other lease slot; torn, the
			// first (unfinished, its lease over) is what counts.
			h.open()
			h.mustEnqueue("A")
			h.mustLease("A")
			h.s.Close()
			h.open()
			h.now = h.now.Add(11 * time.Minute)
		}, func(h *crashHarness) {
			h.lease()
		}},
		{"reschedule", func(h *crashHarness) {
			h.open()
			h.mustEnqueue("A")
			h.pending = h.mustLease("A")
		}, func(h *crashHarness) {
			m := h.pending
			m.Envelope.Recipients[0].Status = queue.StatusDelivered
			at := h.now.Add(time.Hour)
			if err := h.s.Reschedule(h.ctx, m, at); err == nil {
				h.check = func(h *crashHarness, s *Spool) {
					rec, err := s.readRecord("A")
					if err != nil || rec.Recipients[0].Status != queue.StatusDelivered || !rec.NextAttempt.Equal(at) || !rec.LeaseUntil.IsZero() {
						h.t.Errorf("Reschedule returned nil but the envelope on disk is %+v, %v", rec, err)
					}
				}
			}
		}},
		{"complete", func(h *crashHarness) {
			h.open()
			h.mustEnqueue("A")
			h.mustEnqueue("C")
			h.pending = h.mustLease("A")
		}, func(h *crashHarness) {
			if err := h.s.Complete(h.ctx, h.pending); err == nil {
				delete(h.must, "A")
				h.gone["A"] = true
			} else {
				// Either still queued, whole, or gone: both are allowed.
				delete(h.must, "A")
			}
		}},
		{"quarantine corrupt envelope", func(h *crashHarness) {
			h.open()
			h.mustEnqueue("A")
			h.now = h.now.Add(time.Second)
			h.mustEnqueue("C")
			if err := os.WriteFile(h.s.envelopePath("A"), []byte(`{"id":"A","recipients":[]}`), 0o600); err != nil {
				h.t.Fatal(err)
			}
			h.wantQ["A"] = true // whatever happens, the next start quarantines it
			h.quarantine["A"] = true
		}, func(h *crashHarness) {
			h.lease()
		}},
		{"quarantine after crashed deliveries", crashedDeliveries, func(h *crashHarness) {
			h.lease()
		}},
		{"open", func(h *crashHarness) {
			h.open()
			h.mustEnqueue("A")
			h.mustEnqueue("Q")
			h.mustEnqueue("D")
			// All rescheduled: each has an envelope file.
			var held []*queue.Message
			for range 3 {
				m, err := h.lease()
				must(h.t, err)
				held = append(held, m)
			}
			for _, m := range held {
				at := h.now.Add(time.Hour)
				if m.Envelope.ID == "D" {
					at = h.now
				}
				must(h.t, h.s.Reschedule(h.ctx, m, at))
				delete(h.leased, m.Envelope.ID)
			}
			// D completed, and enqueued again since, but the envelope file
			// of the first D is still there (a Complete interrupted between
			// its two removals).
			staleD, err := os.ReadFile(h.s.envelopePath("D"))
			must(h.t, err)
			m, err := h.lease()
			must(h.t, err)
			if m.Envelope.ID != "D" {
				h.t.Fatalf("leased %s, want D", m.Envelope.ID)
			}
			must(h.t, h.s.Complete(h.ctx, m))
			delete(h.leased, "D")
			h.mustEnqueue("D")
			must(h.t, os.WriteFile(h.s.envelopePath("D"), staleD, 0o600))
			h.s.Close()
			h.s = nil
			// An interrupted enqueue of the layout before issue 10,
			// temporary files, and a quarantine interrupted after the
			// message file moved.
			must(h.t, os.WriteFile(filepath.Join(h.dir, spoolMsgDir, "ORPHAN.eml"), []byte("half"), 0o600))
			must(h.t, os.WriteFile(filepath.Join(h.dir, spoolTmpDir, "X.env.1.tmp"), []byte("{"), 0o600))
			must(h.t, os.Rename(filepath.Join(h.dir, spoolMsgDir, "Q.msg"), filepath.Join(h.dir, spoolQuarantineDir, "Q.msg")))
			h.wantQ["Q"] = true
			h.quarantine["Q"] = true
			h.check = func(h *crashHarness, s *Spool) {
				if rec, err := s.readRecord("D"); err != nil || !rec.NextAttempt.IsZero() {
					h.t.Errorf("D after reopen: %+v, %v; want the envelope of its second Enqueue", rec, err)
				}
			}
		}, func(h *crashHarness) {
			if s, err := Open(h.dir, h.o); err == nil {
				h.s = s
			}
		}},
		{"migrate", func(h *crashHarness) {
			// A spool of the layout before issue 10: M1 queued, M2 with a
			// claim that never ended (lease until 5 minutes from now, one
			// earlier crash).
			for _, d := range []string{spoolMsgDir, spoolTmpDir, spoolQuarantineDir} {
				must(h.t, os.MkdirAll(filepath.Join(h.dir, d), 0o700))
			}
			writeOldMessage(h.t, h, "M1", time.Time{}, 0, 0)
			writeOldMessage(h.t, h, "M2", h.now.Add(5*time.Minute), 3, 1)
			h.leased["M2"] = h.now.Add(5 * time.Minute)
			h.check = func(h *crashHarness, s *Spool) {
				if rec, err := s.readRecord("M2"); err != nil || !rec.LeaseUntil.Equal(h.now.Add(5*time.Minute)) || rec.Crashes != 1 || rec.Attempts != 3 {
					h.t.Errorf("M2 after the migration: %+v, %v; want its claim (lease, 1 crash, 3 attempts)", rec, err)
				}
				if s.Len() != 2 {
					h.t.Errorf("Len = %d after the migration, want 2", s.Len())
				}
			}
		}, func(h *crashHarness) {
			if s, err := Open(h.dir, h.o); err == nil {
				h.s = s
			}
		}},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			nc := crashPath(t, true, p.setup, p.run)
			nf := crashPath(t, false, p.setup, p.run)
			t.Logf("%s: %d crash points, %d fault points tried", p.name, nc, nf)
		})
	}
}

// checkJournalMessage checks that journal message id reads back whole
// after the reopen.
func (h *crashHarness) checkJournalMessage(label string, s *Spool, id string) {
	t := h.t
	t.Helper()
	jm := s.journalOf(id)
	env, err := s.readJournalEnvelope(id, jm)
	if err != nil || env.Size != int64(len(h.bodies[id])) {
		t.Errorf("%s: journal envelope of %s: %+v, %v; want Size %d", label, id, env, err, len(h.bodies[id]))
		return
	}
	rc, err := s.journalBody(id, jm)
	if err != nil {
		t.Errorf("%s: journal body of %s: %v", label, id, err)
		return
	}
	defer rc.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, rc); err != nil || b.String() != h.bodies[id] {
		t.Errorf("%s: journal body of %s: %d bytes, %v; want the %d bytes enqueued", label, id, b.Len(), err, len(h.bodies[id]))
	}
}

// crashedDeliveries sets up A, whose deliveries crashed the process
// MaxDeliveryCrashes times (the next claim quarantines it), and C.
func crashedDeliveries(h *crashHarness) {
	h.open()
	h.mustEnqueue("A")
	h.now = h.now.Add(time.Second)
	for range queue.DefaultMaxDeliveryCrashes {
		h.mustLease("A")
		h.s.Close()
		h.open()
		h.now = h.now.Add(11 * time.Minute)
	}
	h.mustEnqueue("C")
	delete(h.leased, "A")
	h.quarantine["A"] = true
}

// writeOldMessage writes message id as the spool before issue 10 did:
// msg/<id>.eml, the body, and msg/<id>.env, the envelope JSON with the
// claim's lease_until and crashes.
func writeOldMessage(t *testing.T, h *crashHarness, id string, leaseUntil time.Time, attempts, crashes int) {
	t.Helper()
	h.bodies[id] = h.body(id)
	h.must[id] = true
	env := &queue.Envelope{ID: id, From: "alice@example.com", Recipients: []queue.Recipient{
		{Addr: "bob@example.net", Status: queue.StatusPending}}, Arrival: h.now.Add(-time.Hour),
		Attempts: attempts, Size: int64(len(h.bodies[id]))}
	data, err := json.Marshal(struct {
		*queue.Envelope
		LeaseUntil time.Time `json:"lease_until,omitzero"`
		Crashes    int       `json:"crashes,omitempty"`
	}{env, leaseUntil, crashes})
	must(t, err)
	must(t, os.WriteFile(filepath.Join(h.dir, spoolMsgDir, id+".eml"), []byte(h.bodies[id]), 0o600))
	must(t, os.WriteFile(filepath.Join(h.dir, spoolMsgDir, id+".env"), append(data, '\n'), 0o600))
}

// readBodyFile reads the body section of a message file.
func readBodyFile(path string) (string, error) {
	f, err := safefile.OS{}.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return "", err
	}
	b := make([]byte, bodyOffset)
	if _, err := f.ReadAt(b, 0); err != nil {
		return "", err
	}
	hdr, err := decodeHeader(b, size)
	if err != nil {
		return "", err
	}
	body := make([]byte, hdr.bodyLen)
	_, err = f.ReadAt(body, hdr.bodyOff)
	return string(body), err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
