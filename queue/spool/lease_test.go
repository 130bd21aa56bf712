package spool_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolLeaseOrder: due messages are handed out oldest due time (the
// NextAttempt, else the Arrival) first, and one that is not due yet becomes due when the clock reaches it.
func TestSpoolLeaseOrder(t *testing.T) {
	clock := testutil.NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	s := openSpool(t, t.TempDir(), spool.Options{JournalMaxBytes: -1, Now: clock.Now, PollInterval: 5 * time.Millisecond})
	base := clock.Now()
	offsets := []time.Duration{-time.Minute, time.Hour, -time.Hour, 0, -time.Second}
	byOffset := make(map[time.Duration]string)
	for _, off := range offsets {
		env := envelope("bob@example.net")
		env.NextAttempt = base.Add(off)
		byOffset[off] = mustEnqueue(t, s, env, "x")
	}
	// Never rescheduled: due since its Arrival, so it queues behind retries
	// that were due before it arrived.
	fresh := envelope("bob@example.net")
	fresh.Arrival = base.Add(-30 * time.Second)
	byOffset[-30*time.Second] = mustEnqueue(t, s, fresh, "x")
	for _, off := range []time.Duration{-time.Hour, -time.Minute, -30 * time.Second, -time.Second, 0} {
		m := mustLease(t, s)
		if m.Envelope.ID != byOffset[off] {
			t.Fatalf("leased %s (next %v), want the one due at %v", m.Envelope.ID, m.Envelope.NextAttempt.Sub(base), off)
		}
	}
	noLease(t, s)
	// A Lease already waiting notices the clock passing the due time
	// through its poll interval.
	go func() {
		time.Sleep(20 * time.Millisecond)
		clock.Advance(time.Hour)
	}()
	if m := mustLease(t, s); m.Envelope.ID != byOffset[time.Hour] {
		t.Fatalf("leased %s, want the one due in an hour", m.Envelope.ID)
	}
}

// TestSpoolLeaseWakes: a waiting Lease is woken by Enqueue and by
// Reschedule at once, not by polling (the poll interval is an hour).
func TestSpoolLeaseWakes(t *testing.T) {
	s := openSpool(t, t.TempDir(), spool.Options{JournalMaxBytes: -1, PollInterval: time.Hour})
	for _, step := range []string{"enqueue", "reschedule"} {
		var held *queue.Message
		if step == "reschedule" {
			mustEnqueue(t, s, envelope("bob@example.net"), "x")
			held = mustLease(t, s)
		}
		got := make(chan *queue.Message, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			m, err := s.Lease(ctx)
			if err != nil {
				t.Errorf("%s: Lease: %v", step, err)
			}
			got <- m
		}()
		time.Sleep(20 * time.Millisecond)
		if held != nil {
			if err := s.Reschedule(context.Background(), held, time.Now()); err != nil {
				t.Fatal(err)
			}
		} else {
			mustEnqueue(t, s, envelope("bob@example.net"), "x")
		}
		m := <-got
		if m == nil {
			t.FailNow()
		}
		if err := s.Complete(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpoolClaimBeforeDeliver: the claim (Attempts+1) is on disk when
// Lease returns, and Reschedule writes the holder's envelope.
func TestSpoolClaimBeforeDeliver(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	id := mustEnqueue(t, s, envelope("bob@example.net", "carol@example.org"), "x")
	m := mustLease(t, s)
	if got := readEnvelopeFile(t, dir, id).Attempts; got != 1 {
		t.Fatalf("Attempts on disk after Lease = %d, want 1", got)
	}
	m.Envelope.Recipients[1].Status = queue.StatusFailed
	m.Envelope.Recipients[1].Reply = &queue.Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"no such user"}}
	m.Envelope.ID = "tampered" // the token, not the envelope, names the message
	at := time.Now().Add(time.Hour).Round(0)
	if err := s.Reschedule(context.Background(), m, at); err != nil {
		t.Fatal(err)
	}
	onDisk := readEnvelopeFile(t, dir, id)
	if onDisk.ID != id || !onDisk.NextAttempt.Equal(at) || onDisk.Recipients[1].Status != queue.StatusFailed ||
		onDisk.Recipients[1].Reply.Enhanced != "5.1.1" {
		t.Fatalf("envelope on disk after Reschedule = %+v", onDisk)
	}
}

// TestSpoolStaleLease: a Message whose lease ended cannot be rescheduled or
// completed again, and a foreign Message is refused.
func TestSpoolStaleLease(t *testing.T) {
	s := openSpool(t, t.TempDir(), spool.Options{JournalMaxBytes: -1})
	mustEnqueue(t, s, envelope("bob@example.net"), "x")
	ctx := context.Background()
	m := mustLease(t, s)
	if err := s.Reschedule(ctx, m, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.Reschedule(ctx, m, time.Now()); err == nil {
		t.Error("second Reschedule with the same Message succeeded")
	}
	m2 := mustLease(t, s)
	if err := s.Complete(ctx, m); err == nil {
		t.Error("Complete with a stale Message succeeded")
	}
	if err := s.Complete(ctx, &queue.Message{Envelope: m2.Envelope, Token: "x"}); err == nil {
		t.Error("Complete with a foreign token succeeded")
	}
	if err := s.Complete(ctx, m2); err != nil {
		t.Fatalf("Complete with the live lease: %v", err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d", s.Len())
	}
}

// TestSpoolCorruptAtLease: an envelope that goes bad while the spool is
// open is quarantined when its turn comes, and Lease goes on.
func TestSpoolCorruptAtLease(t *testing.T) {
	dir := t.TempDir()
	var logs logBuffer
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1, Logger: logs.Logger()})
	bad := mustEnqueue(t, s, envelope("bob@example.net"), "bad")
	good := mustEnqueue(t, s, envelope("bob@example.net"), "good")
	if err := os.WriteFile(filepath.Join(dir, "msg", bad+".env"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if m := mustLease(t, s); m.Envelope.ID != good {
		t.Fatalf("leased %s, want %s", m.Envelope.ID, good)
	}
	if got, want := dirNames(t, filepath.Join(dir, "quarantine")), []string{bad + ".env", bad + ".msg"}; !equal(got, want) {
		t.Fatalf("quarantine = %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), bad) {
		t.Fatalf("no ERROR log naming %s:\n%s", bad, logs.String())
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

// TestSpoolLocked: a second Open of the same directory fails while the
// first is open, and succeeds after Close.
func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	if s2, err := spool.Open(dir, spool.Options{JournalMaxBytes: -1}); err == nil {
		s2.Close()
		t.Fatal("second Open of an open spool succeeded")
	}
	s.Close()
	openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
}

// TestSpoolClosed: Enqueue after Close fails with ErrClosed; a lease taken
// before Close can still record its outcome.
func TestSpoolClosed(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	mustEnqueue(t, s, envelope("bob@example.net"), "x")
	m := mustLease(t, s)
	s.Close()
	if _, err := s.Enqueue(context.Background(), envelope("bob@example.net"), strings.NewReader("x")); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Enqueue after Close: %v", err)
	}
	if err := s.Complete(context.Background(), m); err != nil {
		t.Fatalf("Complete after Close: %v", err)
	}
	if s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1}); s.Len() != 0 {
		t.Fatalf("Len after reopen = %d", s.Len())
	}
}

// TestSpoolUnreadableAtLease: an envelope that cannot be read for a reason
// other than its content (here: a directory in its place) is not
// quarantined at lease time; Lease reports the error and the message waits
// for a later retry.
func TestSpoolUnreadableAtLease(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	id := mustEnqueue(t, s, envelope("bob@example.net"), "x")
	p := filepath.Join(dir, "msg", id+".env") // where a Reschedule writes its envelope
	if err := os.Mkdir(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lease(context.Background()); err == nil || !strings.Contains(err.Error(), id) {
		t.Fatalf("Lease error = %v, want one naming %s", err, id)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (kept)", s.Len())
	}
	if got := dirNames(t, filepath.Join(dir, "quarantine")); len(got) != 0 {
		t.Fatalf("quarantine/ = %v, want empty", got)
	}
	noLease(t, s) // not due again at once
}
