package spool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJournalImplausibleSegmentNumberIgnored: a segment file numbered 2^64-2 (damage, a
// restored backup, an operator's copy) makes the next rotation create
// 2^64-1, a name that replay skips as "unexpected": the messages
// acknowledged in it never came back. Such a number is not the journal's
// (maxSegmentNum): it is left alone, and the numbering goes on from the
// plausible ones.
func TestJournalImplausibleSegmentNumberIgnored(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, spoolJournalDir), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, spoolJournalDir, segmentName(1<<64-2)), nil, 0o644))
	s, err := Open(dir, Options{})
	must(t, err)
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader("a\r\n")); err != nil {
		t.Fatal(err) // an error here would be fine; nil must mean durable
	}
	s.Close()
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.Len() != 1 {
		segs, _ := os.ReadDir(filepath.Join(dir, spoolJournalDir))
		var names []string
		for _, e := range segs {
			names = append(names, e.Name())
		}
		t.Fatalf("after reopen Len = %d: A (Enqueue nil) lost; journal/ holds %v", s.Len(), names)
	}
}

// TestJournalUppercaseSegmentNameIgnored: a stray file whose name is a
// segment name in upper-case hex (an operator's copy, a restore tool) is
// parsed as segment 10 by ParseUint, then looked up as the lower-case
// name, which does not exist: every Open failed. Only exactly segmentName(n)
// is a segment.
func TestJournalUppercaseSegmentNameIgnored(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, spoolJournalDir), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, spoolJournalDir, "000000000000000A.log"), nil, 0o644))
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open with a stray upper-case segment name: %v", err)
	}
	s.Close()
}
