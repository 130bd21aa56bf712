package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJournalCrashDuringDamagedReplay: Open finds garbage after the last
// record of an older segment (what a failed write leaves when a rotation
// got in first), a moved message whose END was lost, and a torn tail in
// the newest segment; it is crashed (power loss) and failed (EIO) at each
// of its file operations, and the spool reopened (a second replay) is
// checked: every acknowledged message there and whole, nothing failed or
// completed back.
func TestJournalCrashDuringDamagedReplay(t *testing.T) {
	setup := func(h *crashHarness) {
		h.small = true
		h.o.JournalSegmentBytes = 4096
		h.open()
		h.mustEnqueue("A") // segment 1
		h.mustEnqueue("B") // segment 2
		h.mustEnqueue("C") // segment 3
		m := h.mustLease("A")
		must(h.t, h.s.writeAs(h.ctx, m.Envelope, strings.NewReader(h.bodies["A"]), h.s.journalOf("A").instance)) // moved, END lost
		delete(h.leased, "A")
		h.s.Close()
		h.s = nil
		jd := filepath.Join(h.dir, spoolJournalDir)
		f, err := os.OpenFile(filepath.Join(jd, segmentName(1)), os.O_WRONLY|os.O_APPEND, 0)
		must(h.t, err)
		_, err = f.Write([]byte("ERJ1\xff\x00\x00\x00garbage after the last record"))
		must(h.t, err)
		must(h.t, f.Close())
		appendTorn(h.t, jd)
		h.quarantine["journal@"+segmentName(1)[:16]] = true // the copy of the damaged rest
		h.now = h.now.Add(time.Hour)
	}
	run := func(h *crashHarness) {
		if s, err := Open(h.dir, h.o); err == nil {
			h.s = s
		}
	}
	nc := crashPath(t, true, setup, run)
	nf := crashPath(t, false, setup, run)
	t.Logf("%d crash points, %d fault points", nc, nf)
}
