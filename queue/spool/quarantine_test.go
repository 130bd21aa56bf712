package spool

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// TestSpoolQuarantineTransientError: when moving a corrupt message's
// message file to quarantine fails (EIO), nothing is moved — the envelope
// file stays with its message file in msg/, so no start can take it for a
// leftover — Lease reports the error naming the message, and a later claim
// completes the quarantine, message file first (issue 8 item 2; issue 10:
// the one-file layout).
func TestSpoolQuarantineTransientError(t *testing.T) {
	h := newCrashHarness(t)
	defer h.cfail()
	h.open()
	defer func() { h.s.Close() }()
	h.mustEnqueue("A")
	if err := os.WriteFile(h.s.envelopePath("A"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	ls := func(d string) string {
		ns, _ := safefile.OS{}.ReadDirNames(filepath.Join(h.dir, d))
		slices.Sort(ns)
		return strings.Join(ns, " ")
	}

	h.fs.arm(1, false) // the first file operation of the quarantine: the message file's rename
	if _, err := h.lease(); err == nil || !strings.Contains(err.Error(), "A") {
		t.Fatalf("Lease with the quarantine failing: %v, want an error naming A", err)
	}
	if got := ls(spoolMsgDir); got != "A.env A.msg" {
		t.Fatalf("msg/ = %q after the failed quarantine, want both files kept", got)
	}
	if got := ls(spoolQuarantineDir); got != "" {
		t.Fatalf("quarantine/ = %q after the failed quarantine, want empty", got)
	}

	h.now = h.now.Add(spoolErrorRetry + time.Second)
	h.mustEnqueue("C")
	h.mustLease("C") // A is quarantined on the way
	if got := ls(spoolMsgDir); got != "C.msg" {
		t.Fatalf("msg/ = %q, want only C", got)
	}
	if got := ls(spoolQuarantineDir); got != "A.env A.msg" {
		t.Fatalf("quarantine/ = %q, want A's two files", got)
	}
	if st := h.s.Stats(); st.Quarantined != 1 {
		t.Fatalf("Stats = %+v, want Quarantined 1", st)
	}
}
