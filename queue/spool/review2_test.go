package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Review of issue 10's one-file layout (second pass): a corrupt disk and
// the limits of the format.

func reviewSpool(t *testing.T, dir string) *Spool {
	t.Helper()
	s, err := Open(dir, Options{PollInterval: time.Millisecond, JournalMaxBytes: -1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func reviewLease(t *testing.T, s *Spool) *queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	m, err := s.Lease(ctx)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return m
}

func reviewEnvelope(id string) *queue.Envelope {
	return &queue.Envelope{ID: id, From: "alice@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}}}
}

// TestReviewHugeEnvelopeFileQuarantined: an envelope file whose size a
// damaged inode (or anything else) makes enormous is corrupt: Open must
// quarantine the message, not allocate the file's size (os.ReadFile made a
// buffer of the stat'd size: 8 TiB here, and the process died of "out of
// memory" at start, every start).
func TestReviewHugeEnvelopeFileQuarantined(t *testing.T) {
	dir := t.TempDir()
	s := reviewSpool(t, dir)
	if _, err := s.Enqueue(t.Context(), reviewEnvelope("HUGE"), strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(t.Context(), reviewLease(t, s), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Truncate(filepath.Join(dir, spoolMsgDir, "HUGE.env"), 1<<43); err != nil {
		t.Skipf("cannot make a sparse 8 TiB file here: %v", err)
	}
	s = reviewSpool(t, dir)
	defer s.Close()
	if s.Len() != 0 {
		t.Fatalf("Len = %d, want the message quarantined", s.Len())
	}
	if _, err := os.Stat(filepath.Join(dir, spoolQuarantineDir, "HUGE.msg")); err != nil {
		t.Fatalf("message file not in quarantine: %v", err)
	}
}

// TestReviewEnvelopeTooLargeRefused: an envelope larger than a message
// file's header may announce (maxEnvelopeLen) must be refused by Enqueue
// (nothing stored, an error, so no 250), not acknowledged and then
// quarantined by the first claim as "header does not match the file"; and
// a Reschedule that would write one fails and keeps the envelope before it.
func TestReviewEnvelopeTooLargeRefused(t *testing.T) {
	dir := t.TempDir()
	s := reviewSpool(t, dir)
	defer s.Close()
	big := reviewEnvelope("BIG")
	big.Recipients[0].ORCPT = "rfc822;" + strings.Repeat("x", maxEnvelopeLen)
	if _, err := s.Enqueue(t.Context(), big, strings.NewReader("body")); err == nil {
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		m, lerr := s.Lease(ctx)
		t.Fatalf("Enqueue of a %d-byte envelope returned nil; then Lease = %v, %v (Stats %+v)", maxEnvelopeLen, m != nil, lerr, s.Stats())
	} else if !errors.Is(err, queue.ErrInvalidEnvelope) {
		t.Fatalf("Enqueue = %v, want ErrInvalidEnvelope", err)
	}
	if n := len(dirList(t, filepath.Join(dir, spoolMsgDir))); n != 0 {
		t.Fatalf("msg/ holds %d files after a refused Enqueue", n)
	}

	if _, err := s.Enqueue(t.Context(), reviewEnvelope("SMALL"), strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	m := reviewLease(t, s)
	m.Envelope.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{strings.Repeat("y", maxEnvelopeLen)}}
	if err := s.Reschedule(t.Context(), m, time.Now()); err == nil {
		t.Fatal("Reschedule of an oversized envelope returned nil")
	}
	m = reviewLease(t, s)
	if m.Envelope.ID != "SMALL" || m.Envelope.Recipients[0].Reply != nil {
		t.Fatalf("after the failed Reschedule, leased %s with reply %v; want SMALL with its envelope before", m.Envelope.ID, m.Envelope.Recipients[0].Reply)
	}
	if st := s.Stats(); st.Quarantined != 0 {
		t.Fatalf("Stats = %+v: a message was quarantined", st)
	}
}

func dirList(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// TestReviewLeaseSeqOverflow: a lease sequence at the top of uint64 (an
// envelope file's lease_seq has no checksum; a slot's is only a CRC) made
// the next claim's sequence wrap to 0, and a slot of sequence 0 reads as
// "no claim": every later claim went unrecorded, so a delivery that kills
// the process was never counted (no lease deadline, no crash quarantine).
// Such a sequence is corrupt.
func TestReviewLeaseSeqOverflow(t *testing.T) {
	dir := t.TempDir()
	s := reviewSpool(t, dir)
	if _, err := s.Enqueue(t.Context(), reviewEnvelope("SEQ"), strings.NewReader("body")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(t.Context(), reviewLease(t, s), time.Now()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	p := filepath.Join(dir, spoolMsgDir, "SEQ.env")
	data, err := os.ReadFile(p)
	must(t, err)
	data = []byte(strings.Replace(string(data), `"lease_seq":1`, `"lease_seq":18446744073709551615`, 1))
	must(t, os.WriteFile(p, data, 0o600))

	s = reviewSpool(t, dir)
	if s.Len() == 1 {
		reviewLease(t, s) // the process dies during this delivery
	}
	s.Close()
	s = reviewSpool(t, dir)
	defer s.Close()
	rec, err := s.readRecord("SEQ")
	switch {
	case err != nil && s.Len() == 0:
		// Quarantined as corrupt: acceptable.
	case err != nil:
		t.Fatalf("readRecord: %v", err)
	case rec.LeaseUntil.IsZero():
		t.Fatalf("the claim before the crash is not on disk (lease slot %+v, envelope file's lease_seq %d): the crash goes uncounted", rec.lease, rec.leaseSeq)
	}
}
