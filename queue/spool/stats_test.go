package spool_test

import (
	"context"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestBacklog: Backlog counts the messages and finds the oldest arrival,
// follows messages that leave the spool, and after a restart reads the
// arrivals from the envelopes on disk.
func TestBacklog(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{})
	b := spool.NewBacklog(s)
	if n, oldest := b.Read(); n != 0 || !oldest.IsZero() {
		t.Fatalf("empty spool: %d, %v", n, oldest)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for _, age := range []time.Duration{3 * time.Minute, time.Minute, 2 * time.Minute} {
		env := envelope("bob@example.net")
		env.Arrival = base.Add(-age)
		mustEnqueue(t, s, env, "Subject: x\r\n\r\nx\r\n")
	}
	if n, oldest := b.Read(); n != 3 || !oldest.Equal(base.Add(-3*time.Minute)) {
		t.Fatalf("3 messages: %d, oldest %v, want %v", n, oldest, base.Add(-3*time.Minute))
	}
	// Due by arrival: the first lease is the oldest message.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := s.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := b.Read(); n != 3 {
		t.Fatalf("a leased message is still in the spool: %d", n)
	}
	if err := s.Complete(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n, oldest := b.Read(); n != 2 || !oldest.Equal(base.Add(-2*time.Minute)) {
		t.Fatalf("after Complete: %d, oldest %v", n, oldest)
	}

	s.Close()
	s = openSpool(t, dir, spool.Options{})
	if n, oldest := spool.NewBacklog(s).Read(); n != 2 || !oldest.Equal(base.Add(-2*time.Minute)) {
		t.Fatalf("after a restart: %d, oldest %v", n, oldest)
	}
}
