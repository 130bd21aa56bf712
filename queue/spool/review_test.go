package spool_test

import (
	"context"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolCrashCountResetByReschedule: MaxDeliveryCrashes counts crashed
// deliveries in a row. A delivery that ended with a Reschedule proves the
// message does not kill the process, so two crashes (or shutdowns that
// abandoned the delivery when the grace ran out) earlier in a message's
// life plus one later must not quarantine it (issue 8 review).
func TestSpoolCrashCountResetByReschedule(t *testing.T) {
	dir := t.TempDir()
	clock := fakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	o := spool.Options{Now: clock.Now, PollInterval: 10 * time.Millisecond}
	s := openSpool(t, dir, o)
	id := mustEnqueue(t, s, envelope("bob@example.net"), "slow gateway")
	crash := func() {
		mustLease(t, s)
		s.Close() // the process dies (or its shutdown grace ends) mid-delivery
		s = openSpool(t, dir, o)
		clock.Advance(spool.DefaultLeaseTimeout + time.Second)
	}
	for range queue.DefaultMaxDeliveryCrashes - 1 {
		crash()
	}
	m := mustLease(t, s)
	if err := s.Reschedule(t.Context(), m, clock.Now()); err != nil { // a delivery that ended
		t.Fatal(err)
	}
	crash()
	m = mustLease(t, s)
	if m.Envelope.ID != id {
		t.Fatalf("leased %s, want %s", m.Envelope.ID, id)
	}
	if got := dirNames(t, filepath.Join(dir, "quarantine")); len(got) != 0 {
		t.Fatalf("quarantine/ = %v, want empty: only one crash since the last Reschedule", got)
	}
}

// TestSpoolClaimOnFullDisk: when the file system is full to the last block,
// the claim cannot rewrite the envelope; the message must still be handed
// out, since delivering and completing is what frees space: otherwise the
// relay neither accepts (452) nor delivers until an operator steps in.
func TestSpoolClaimOnFullDisk(t *testing.T) {
	mnt := testutil.Tmpfs(t, "3m")
	dir := filepath.Join(mnt, "spool")
	s := openSpool(t, dir, spool.Options{})
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	// One message that takes every block but one, its envelope the last.
	free := int64(st.Bavail) * st.Bsize
	id := mustEnqueue(t, s, envelope("bob@example.net"), strings.Repeat("x", int(free-st.Bsize)))
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 {
		t.Fatalf("%d blocks still free; the test wants a full file system", st.Bavail)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	m, err := s.Lease(ctx)
	if err != nil {
		t.Fatalf("Lease on a full disk: %v; want the message handed out so that it can be delivered", err)
	}
	if m.Envelope.ID != id {
		t.Fatalf("leased %s, want %s", m.Envelope.ID, id)
	}
	if err := s.Complete(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(t.Context(), envelope("carol@example.org"), strings.NewReader("space again")); err != nil {
		t.Fatalf("Enqueue after the delivery freed space: %v", err)
	}
}
