package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestJournalDamageInNewestSegmentQuarantined: one flipped byte in the
// first of three acknowledged records of the newest segment. Replay took
// it for a torn tail and cut the segment there (WARN): the two later,
// acknowledged, intact messages were gone, with no copy in quarantine (an
// older segment's damage is copied there). A bad record followed by a
// valid one is damage: the rest goes to quarantine (ERROR).
func TestJournalDamageInNewestSegmentQuarantined(t *testing.T) {
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
	if len(offs) != 3 {
		t.Fatalf("%d records in %s", len(offs), last)
	}
	b, err := os.ReadFile(last)
	must(t, err)
	b[offs[0]+40] ^= 0x01 // a bit of A's body
	must(t, os.WriteFile(last, b, 0o644))

	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
	if s.journalOf("B") == nil && len(qs) == 0 {
		t.Fatalf("B and C (acknowledged, intact, after the damaged A) dropped silently: Len %d, quarantine empty", s.Len())
	}
}

// TestJournalHugeSparseOlderSegmentCopyBounded: a segment file far larger
// than any segment the journal writes (a sparse file: damage, a bad
// restore), not the newest. Open copied "the rest" of it to quarantine
// byte for byte: an 8 TiB sparse file would fill the disk and fail every
// start. Here 256 MiB: the copy must stay within a segment's bound.
func TestJournalHugeSparseOlderSegmentCopyBounded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a\r\n")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Segment 1 holds A; the sparse segment must be older than A's:
	// rename A's segment up.
	jd := filepath.Join(dir, spoolJournalDir)
	must(t, os.Rename(filepath.Join(jd, segmentName(1)), filepath.Join(jd, segmentName(9))))
	f, err := os.Create(filepath.Join(jd, segmentName(2)))
	must(t, err)
	must(t, f.Truncate(256<<20))
	f.Close()
	start := time.Now()
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	var copied int64
	qs, _ := os.ReadDir(filepath.Join(dir, spoolQuarantineDir))
	for _, q := range qs {
		if fi, err := q.Info(); err == nil {
			copied += fi.Size()
		}
	}
	if copied > DefaultJournalSegmentBytes+maxRecordLen {
		t.Fatalf("Open copied %d bytes of a sparse garbage segment into quarantine/ (%v); unbounded by the segment size", copied, time.Since(start))
	}
	if s.Len() != 1 {
		t.Fatalf("Len %d", s.Len())
	}
}
