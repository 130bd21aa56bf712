package spool

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// pauseRemoveFS is the real file system, but a Remove of one path waits
// until the test lets it go on.
type pauseRemoveFS struct {
	safefile.OS
	path            string
	reached, resume chan struct{}
}

func (p *pauseRemoveFS) Remove(path string) error {
	if path == p.path {
		close(p.reached)
		<-p.resume
	}
	return p.OS.Remove(path)
}

// TestSpoolEnqueueDuringComplete: an Enqueue of a preset ID (a report
// queued again after a retried delivery) that runs while Complete of the
// same ID is between removing the message file and removing its envelope
// file must not end up with an acknowledged message whose envelope Complete
// then deleted or replaced (issue 8 review; issue 10: the one-file layout).
func TestSpoolEnqueueDuringComplete(t *testing.T) {
	dir := t.TempDir()
	const id = "06H32GE1S57TAAV3RV1Q-failed-0123456789"
	pfs := &pauseRemoveFS{reached: make(chan struct{}), resume: make(chan struct{})}
	s, err := Open(dir, Options{fs: pfs, PollInterval: 10 * time.Millisecond, JournalMaxBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	env := func() *queue.Envelope {
		return &queue.Envelope{ID: id, Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}}}
	}
	if _, err := s.Enqueue(t.Context(), env(), strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	pfs.path = s.envelopePath(id) // the second removal of Complete, after the message file's
	completed := make(chan error, 1)
	go func() { completed <- s.Complete(context.Background(), m) }()
	<-pfs.reached
	enq := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), env(), strings.NewReader("second"))
		enq <- err
	}()
	// Let the Enqueue get as far as it can while Complete is paused.
	time.Sleep(100 * time.Millisecond)
	close(pfs.resume)
	if err := <-completed; err != nil {
		t.Fatal(err)
	}
	if err := <-enq; err != nil {
		t.Fatal(err)
	}
	if s.Len() == 0 {
		return // taken for the message being completed: nothing queued
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	m, err = s.Lease(ctx)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	rc, err := s.Body(ctx, m)
	if err != nil {
		t.Fatalf("the Enqueue that returned nil during Complete left an envelope without its body: %v", err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "second" {
		t.Fatalf("body %q, want %q", b, "second")
	}
}
