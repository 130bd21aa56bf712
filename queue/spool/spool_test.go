package spool_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/queuetest"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// openSpool opens the spool in dir and closes it when the test ends.
func openSpool(t testing.TB, dir string, o spool.Options) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSpoolContract(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) (queue.Queue, func() queue.Queue) {
		dir := t.TempDir()
		// A short lease: after the simulated crash the claimed message is
		// due again once its lease (written with the claim) has ended.
		o := spool.Options{LeaseTimeout: 300 * time.Millisecond}
		s := openSpool(t, dir, o)
		t.Cleanup(func() {
			// Whatever the case did, no temporary file may outlive it.
			if names := dirNames(t, filepath.Join(dir, "tmp")); len(names) > 0 {
				t.Errorf("temporary files left behind: %v", names)
			}
		})
		// A restart: Close drops the in-memory leases as a dying process
		// would, without touching the files, and releases the lock.
		return s, func() queue.Queue {
			s.Close()
			s = openSpool(t, dir, o)
			return s
		}
	})
}

// dirNames lists a directory, sorted; a missing directory is empty.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

func envelope(rcpts ...string) *queue.Envelope {
	env := &queue.Envelope{From: "alice@example.com"}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.Recipient{Addr: r, Status: queue.StatusPending})
	}
	return env
}

func mustEnqueue(t testing.TB, s queue.Queue, env *queue.Envelope, body string) string {
	t.Helper()
	id, err := s.Enqueue(context.Background(), env, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id
}

func mustLease(t testing.TB, s queue.Queue) *queue.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := s.Lease(ctx)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return m
}

// noLease checks that nothing is due for a short while.
func noLease(t testing.TB, s queue.Queue) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := s.Lease(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lease = %v, %v; want nothing due", m, err)
	}
}

func readBody(t testing.TB, s queue.Queue, m *queue.Message) string {
	t.Helper()
	rc, err := s.Body(context.Background(), m)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// logBuffer collects log output for assertions about what was logged.
type logBuffer = testutil.LogBuffer

// fakeClock is a settable clock for Options.Now.
type fakeClock = testutil.Clock
