package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestJournalCrashPoints is TestSpoolCrashPoints for the journal (issue
// 10): every path that appends to it, rotates it, deletes a segment or
// replays it at Open is stopped at each of its file operations, by a
// power loss (whatever was not fdatasync'd is undone; the write the power
// is cut in is torn) and by a single EIO, and the spool reopened on the
// real file system is checked by crashHarness.verify: acknowledged
// messages are all there and whole, a message whose Enqueue failed never
// comes back, a claim not ended is not due before its lease ends.
func TestJournalCrashPoints(t *testing.T) {
	small := func(h *crashHarness) { h.small = true }
	segs := func(h *crashHarness) {
		h.small = true
		h.o.JournalSegmentBytes = 4096 // a record or so per segment
	}
	paths := []struct {
		name       string
		setup, run func(h *crashHarness)
	}{
		{"enqueue", func(h *crashHarness) {
			small(h)
			h.open()
			h.mustEnqueue("A")
		}, func(h *crashHarness) {
			h.enqueue("B")
			h.enqueue("C") // after a failure: must work, or fail as well
		}},
		{"enqueue with rotation", func(h *crashHarness) {
			segs(h)
			h.open()
			h.mustEnqueue("A")
		}, func(h *crashHarness) {
			h.enqueue("B") // B does not fit after A: a new segment first
		}},
		{"claim", func(h *crashHarness) {
			small(h)
			h.open()
			h.mustEnqueue("A")
		}, func(h *crashHarness) {
			h.lease()
		}},
		{"claim after a crashed claim", func(h *crashHarness) {
			small(h)
			h.open()
			h.mustEnqueue("A")
			h.mustLease("A")
			h.s.Close()
			h.open()
			h.now = h.now.Add(11 * time.Minute)
		}, func(h *crashHarness) {
			h.lease()
		}},
		{"reschedule (move to msg/)", func(h *crashHarness) {
			small(h)
			h.open()
			h.mustEnqueue("A")
			h.pending = h.mustLease("A")
		}, func(h *crashHarness) {
			m := h.pending
			m.Envelope.Recipients[0].Status = queue.StatusDelivered
			at := h.now.Add(time.Hour)
			if err := h.s.Reschedule(h.ctx, m, at); err == nil {
				delete(h.leased, "A")
				h.check = func(h *crashHarness, s *Spool) {
					if s.journalOf("A") != nil {
						h.t.Errorf("Reschedule returned nil but A is still in the journal")
						return
					}
					rec, err := s.readRecord("A")
					if err != nil || rec.Recipients[0].Status != queue.StatusDelivered || !rec.NextAttempt.Equal(at) || !rec.LeaseUntil.IsZero() || rec.Attempts != 1 {
						h.t.Errorf("Reschedule returned nil but the envelope on disk is %+v, %v", rec, err)
					}
				}
			}
		}},
		{"complete", func(h *crashHarness) {
			small(h)
			h.open()
			h.mustEnqueue("A")
			h.mustEnqueue("C")
			h.pending = h.mustLease("A")
		}, completePending},
		{"complete of a moved message", func(h *crashHarness) {
			small(h)
			h.open()
			h.mustEnqueue("A")
			m := h.mustLease("A")
			must(h.t, h.s.Reschedule(h.ctx, m, h.now))
			delete(h.leased, "A")
			h.pending = h.mustLease("A")
		}, completePending},
		{"segment deletion", func(h *crashHarness) {
			segs(h)
			h.open()
			h.mustEnqueue("A")
			h.mustEnqueue("B") // its own segment: A's is not the active one
			h.pending = h.mustLease("A")
		}, completePending},
		{"quarantine after crashed deliveries", func(h *crashHarness) {
			small(h)
			crashedDeliveries(h)
		}, func(h *crashHarness) {
			h.lease()
		}},
		{"open", func(h *crashHarness) {
			// The journal as a crash leaves it: A queued, D moved to msg/
			// by a Reschedule whose END was lost, E claimed and never
			// ended, and a torn record at the tail.
			small(h)
			h.open()
			h.mustEnqueue("A")
			h.mustEnqueue("D")
			h.mustEnqueue("E")
			m := h.mustLease("A")
			must(h.t, h.s.Reschedule(h.ctx, m, h.now.Add(time.Hour))) // A to msg/ (with its END)
			delete(h.leased, "A")
			d := h.mustLease("D")
			must(h.t, h.s.write(h.ctx, d.Envelope, strings.NewReader(h.bodies["D"])))
			delete(h.leased, "D")
			h.mustLease("E")
			h.s.Close()
			h.s = nil
			appendTorn(h.t, filepath.Join(h.dir, spoolJournalDir))
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

// completePending completes the lease taken in setup (A): gone if
// Complete returned nil, else either still queued or gone.
func completePending(h *crashHarness) {
	delete(h.must, "A")
	if err := h.s.Complete(h.ctx, h.pending); err == nil {
		h.gone["A"] = true
		delete(h.leased, "A")
	}
}

// appendTorn appends half a record to the newest segment in dir.
func appendTorn(t *testing.T, dir string) {
	t.Helper()
	names, err := os.ReadDir(dir)
	must(t, err)
	if len(names) == 0 {
		t.Fatal("no journal segment")
	}
	path := filepath.Join(dir, names[len(names)-1].Name())
	rec := encodeEndRecord("TORN", 7)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write(rec[:len(rec)-3])
	must(t, err)
	must(t, f.Close())
}
