package spool_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolLeaseDeadlineAfterCrash: a claim persists its lease deadline, so
// a message whose delivery was interrupted by a crash is due again when the
// lease ends, not at once after the restart (issue 8 item 5).
func TestSpoolLeaseDeadlineAfterCrash(t *testing.T) {
	dir := t.TempDir()
	clock := fakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	o := spool.Options{Now: clock.Now, PollInterval: 10 * time.Millisecond}
	s := openSpool(t, dir, o)
	id := mustEnqueue(t, s, envelope("bob@example.net"), "x")
	mustLease(t, s)
	s.Close() // the process dies during the delivery

	s = openSpool(t, dir, o)
	noLease(t, s)
	clock.Advance(spool.DefaultLeaseTimeout - time.Second)
	noLease(t, s)
	clock.Advance(2 * time.Second)
	m := mustLease(t, s)
	if m.Envelope.ID != id || m.Envelope.Attempts != 2 {
		t.Fatalf("after the lease ended: leased %s with %d attempts, want %s with 2", m.Envelope.ID, m.Envelope.Attempts, id)
	}
}

// TestSpoolCrashLoopQuarantined: a message whose deliveries keep killing
// the process is set aside in quarantine (body included) after the
// configured number of crashed deliveries, with an ERROR log naming it and
// a counter, instead of being retried forever; a message that is
// rescheduled normally is never counted (issue 8 item 5).
func TestSpoolCrashLoopQuarantined(t *testing.T) {
	dir := t.TempDir()
	clock := fakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	var logs logBuffer
	o := spool.Options{Now: clock.Now, PollInterval: 10 * time.Millisecond, Logger: logs.Logger()}
	s := openSpool(t, dir, o)
	poison := mustEnqueue(t, s, envelope("bob@example.net"), "poison")
	clock.Advance(time.Second)
	fine := mustEnqueue(t, s, envelope("carol@example.org"), "fine")

	for crash := 1; crash <= queue.DefaultMaxDeliveryCrashes; crash++ {
		m1, m2 := mustLease(t, s), mustLease(t, s)
		if m1.Envelope.ID == fine {
			m1, m2 = m2, m1
		}
		if m1.Envelope.ID != poison || m2.Envelope.ID != fine {
			t.Fatalf("round %d: leased %s, %s; want %s and %s", crash, m1.Envelope.ID, m2.Envelope.ID, poison, fine)
		}
		// The worker records the healthy message's outcome; the poison one
		// kills the process before it can.
		if err := s.Reschedule(t.Context(), m2, clock.Now()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = openSpool(t, dir, o)
		clock.Advance(spool.DefaultLeaseTimeout + time.Second)
	}
	m := mustLease(t, s)
	if m.Envelope.ID != fine {
		t.Fatalf("after %d crashed deliveries leased %s, want only %s", queue.DefaultMaxDeliveryCrashes, m.Envelope.ID, fine)
	}
	noLease(t, s)
	if got, want := dirNames(t, filepath.Join(dir, "quarantine")), []string{poison + ".msg"}; !equal(got, want) {
		t.Fatalf("quarantine/ = %v, want %v", got, want)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "id="+poison) {
		t.Fatalf("no ERROR log naming %s:\n%s", poison, l)
	}
	if st := s.Stats(); st.CrashQuarantined != 1 {
		t.Fatalf("Stats = %+v, want CrashQuarantined 1", st)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
}

func fakeClockAt(t time.Time) *fakeClock { return testutil.NewClock(t) }
