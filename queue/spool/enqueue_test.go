package spool_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolEnqueueFiles checks the committed layout: one message file in
// msg/, the envelope's recorded size, and nothing in tmp/.
func TestSpoolEnqueueFiles(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	env := envelope("bob@example.net")
	id := mustEnqueue(t, s, env, "Subject: x\r\n\r\nhello\r\n")
	if got, want := dirNames(t, filepath.Join(dir, "msg")), []string{id + ".msg"}; !equal(got, want) {
		t.Fatalf("msg/ = %v, want %v", got, want)
	}
	if got := dirNames(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Fatalf("tmp/ = %v, want empty", got)
	}
	onDisk := readEnvelopeFile(t, dir, id)
	if onDisk.ID != id || onDisk.Size != 21 || onDisk.Arrival.IsZero() || onDisk.Attempts != 0 {
		t.Fatalf("stored envelope = %+v", onDisk)
	}
	if s.Len() != 1 || s.Dir() != dir {
		t.Fatalf("Len = %d, Dir = %q", s.Len(), s.Dir())
	}
}

func readEnvelopeFile(t testing.TB, dir, id string) *queue.Envelope {
	t.Helper()
	env, err := spool.ReadEnvelope(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// TestSpoolEnqueueIdempotent: a preset ID that is already queued is not
// stored twice (an NDR retried after a crash), and the first body stays.
func TestSpoolEnqueueIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	const id = "NDR-01HXYZ"
	for i, body := range []string{"first", "second"} {
		env := envelope("alice@example.com")
		env.ID = id
		if got := mustEnqueue(t, s, env, body); got != id {
			t.Fatalf("Enqueue #%d returned %q, want %q", i, got, id)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	m := mustLease(t, s)
	if got := readBody(t, s, m); got != "first" {
		t.Fatalf("body = %q, want the first one", got)
	}
	// Also while the message is leased, and after a restart.
	env := envelope("alice@example.com")
	env.ID = id
	mustEnqueue(t, s, env, "third")
	s.Close()
	s = openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	env.ID = id
	mustEnqueue(t, s, env, "fourth")
	if s.Len() != 1 {
		t.Fatalf("Len after restart = %d, want 1", s.Len())
	}
}

func TestSpoolEnqueueInvalidID(t *testing.T) {
	s := openSpool(t, t.TempDir(), spool.Options{JournalMaxBytes: -1})
	for _, id := range []string{"../etc/passwd", "a b", "x.env", strings.Repeat("a", 65)} {
		env := envelope("bob@example.net")
		env.ID = id
		if _, err := s.Enqueue(context.Background(), env, strings.NewReader("x")); err == nil {
			t.Errorf("Enqueue with ID %q succeeded", id)
		}
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d", s.Len())
	}
}

type failingReader struct{ n int }

var errInjected = errors.New("injected read failure")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errInjected
	}
	n := min(len(p), f.n)
	clear(p[:n])
	f.n -= n
	return n, nil
}

// TestSpoolEnqueueFailureLeavesNothing injects a failure at each step of an
// Enqueue and checks that the error is returned and no file is left that a
// restart could deliver.
func TestSpoolEnqueueFailureLeavesNothing(t *testing.T) {
	const presetID = "preset-1"
	cases := []struct {
		name  string
		setup func(t *testing.T, dir string) // runs after Open
		ctx   func() context.Context
		body  io.Reader
		want  error // errors.Is target, or nil for any error
	}{
		{
			name: "body reader fails half-way",
			body: &failingReader{n: 1 << 20},
			want: errInjected,
		},
		{
			name: "context cancelled",
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
			body: strings.NewReader("body"),
			want: context.Canceled,
		},
		{
			name:  "temporary directory unusable",
			setup: func(t *testing.T, dir string) { replaceWithFile(t, filepath.Join(dir, "tmp")) },
			body:  strings.NewReader("body"),
		},
		{
			// A directory where the message file must go makes its link
			// fail after the file was written: it must go again.
			name: "envelope commit fails",
			setup: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "msg", presetID+".msg", "x"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			body: strings.NewReader("body"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			env := envelope("bob@example.net")
			env.ID = presetID
			_, err := s.Enqueue(ctx, env, tc.body)
			if err == nil {
				t.Fatal("Enqueue succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Enqueue error = %v, want %v", err, tc.want)
			}
			if s.Len() != 0 {
				t.Fatalf("Len = %d after failed Enqueue", s.Len())
			}
			for _, name := range dirNames(t, filepath.Join(dir, "msg")) {
				if name != presetID+".msg" { // the obstacle of the last case
					t.Errorf("left in msg/: %s", name)
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, "tmp")); err == nil && fi.IsDir() {
				if names := dirNames(t, filepath.Join(dir, "tmp")); len(names) > 0 {
					t.Errorf("left in tmp/: %v", names)
				}
			}
			noLease(t, s)
		})
	}
}

func replaceWithFile(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSpoolConcurrentEnqueue: many sessions enqueue at once (run with
// -race); every message is stored once, survives a restart, and is leased
// once.
func TestSpoolConcurrentEnqueue(t *testing.T) {
	const workers, each = 16, 8
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	var (
		mu  sync.Mutex
		ids = make(map[string]string)
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				body := strings.Repeat(string(rune('a'+w)), 1000+i)
				id, err := s.Enqueue(context.Background(), envelope("bob@example.net"), strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[id] = body
				mu.Unlock()
			}
		})
	}
	// Leases running alongside the enqueues must not disturb them.
	leased := make(chan *queue.Message, workers*each)
	for range 4 {
		wg.Go(func() {
			for range workers * each / 8 {
				m, err := s.Lease(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				leased <- m
			}
		})
	}
	wg.Wait()
	close(leased)
	if len(ids) != workers*each || s.Len() != workers*each {
		t.Fatalf("%d distinct IDs, Len %d; want %d", len(ids), s.Len(), workers*each)
	}
	for m := range leased {
		if err := s.Reschedule(context.Background(), m, m.Envelope.Arrival); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	if s.Len() != workers*each {
		t.Fatalf("after restart Len = %d", s.Len())
	}
	for range workers * each {
		m := mustLease(t, s)
		if got := readBody(t, s, m); got != ids[m.Envelope.ID] {
			t.Fatalf("body of %s: %d bytes, want %d", m.Envelope.ID, len(got), len(ids[m.Envelope.ID]))
		}
		if err := s.Complete(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if names := dirNames(t, filepath.Join(dir, "msg")); len(names) != 0 {
		t.Fatalf("msg/ not empty after completing all: %d files", len(names))
	}
}
