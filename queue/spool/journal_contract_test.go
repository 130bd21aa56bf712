package spool_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/queuetest"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolContractJournalOff runs the contract suite with the journal
// off (JournalMaxBytes < 0): every message goes down the one-file path.
// TestSpoolContract runs it with the journal on (the default).
func TestSpoolContractJournalOff(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) (queue.Queue, func() queue.Queue) {
		dir := t.TempDir()
		o := spool.Options{LeaseTimeout: 300 * time.Millisecond, JournalMaxBytes: -1}
		s := openSpool(t, dir, o)
		t.Cleanup(func() {
			if names := dirNames(t, filepath.Join(dir, "journal")); len(names) > 0 {
				t.Errorf("journal written with the journal off: %v", names)
			}
		})
		return s, func() queue.Queue {
			s.Close()
			s = openSpool(t, dir, o)
			return s
		}
	})
}

// TestSpoolJournalBound enqueues bodies of sizes around the journal's
// bound (some in the journal, some in msg/), reopens the spool, and reads
// each back whole through Lease and Body; a Reschedule of each (journal
// messages move to msg/) and another reopen keep them whole.
func TestSpoolJournalBound(t *testing.T) {
	dir := t.TempDir()
	const bound = 4096
	o := spool.Options{JournalMaxBytes: bound, PollInterval: time.Millisecond}
	s := openSpool(t, dir, o)
	bodies := map[string]string{}
	for size := bound - 600; size <= bound+64; size += 37 {
		body := strings.Repeat("x", size-10) + fmt.Sprintf("%010d", size)
		id := mustEnqueue(t, s, envelope("bob@example.net"), body)
		bodies[id] = body
	}
	if n := len(dirNames(t, filepath.Join(dir, "msg"))); n == 0 || n == len(bodies) {
		t.Fatalf("%d of %d messages in msg/: want some in the journal and some in msg/", n, len(bodies))
	}
	for round := range 2 {
		s.Close()
		s = openSpool(t, dir, o)
		if s.Len() != len(bodies) {
			t.Fatalf("round %d: Len %d, want %d", round, s.Len(), len(bodies))
		}
		for range bodies {
			m := mustLease(t, s)
			if got := readBody(t, s, m); got != bodies[m.Envelope.ID] || m.Envelope.Size != int64(len(got)) {
				t.Fatalf("round %d: %s: body of %d bytes (Size %d), want %d", round, m.Envelope.ID, len(got), m.Envelope.Size, len(bodies[m.Envelope.ID]))
			}
			if err := s.Reschedule(t.Context(), m, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, _ := filepath.Glob(filepath.Join(dir, "msg", "*.msg")); len(n) != len(bodies) {
		t.Fatalf("%d messages in msg/ after their Reschedule, want all %d", len(n), len(bodies))
	}
}
