package spool_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolEnqueueSameIDRace: Enqueues of one preset ID (a report whose ID
// is derived from the message it reports on, enqueued by two deliveries of
// that message) racing each other all succeed with that ID, store the
// message once, and leave its body whole: the later ones are no-ops that
// never replace or remove what the first committed (issue 8 item 29).
func TestSpoolEnqueueSameIDRace(t *testing.T) {
	const id = "REPORT-06H32A1M1FM49HFF9D8D"
	body := strings.Repeat("report body line\r\n", 4096)
	for round := range 20 {
		dir := t.TempDir()
		s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				env := envelope("alice@example.com")
				env.ID = id
				got, err := s.Enqueue(context.Background(), env, strings.NewReader(body))
				if err != nil || got != id {
					t.Errorf("round %d: Enqueue = %q, %v; want %q, nil", round, got, err, id)
				}
			})
		}
		wg.Wait()
		if s.Len() != 1 {
			t.Fatalf("round %d: Len = %d, want 1", round, s.Len())
		}
		if got := dirNames(t, filepath.Join(dir, "msg")); !equal(got, []string{id + ".msg"}) {
			t.Fatalf("round %d: msg/ = %v", round, got)
		}
		if got := dirNames(t, filepath.Join(dir, "tmp")); len(got) != 0 {
			t.Fatalf("round %d: tmp/ = %v", round, got)
		}
		m := mustLease(t, s)
		if got := readBody(t, s, m); got != body {
			t.Fatalf("round %d: body of %d bytes, want %d", round, len(got), len(body))
		}
		// An Enqueue while the message is being delivered is a no-op too.
		env := envelope("alice@example.com")
		env.ID = id
		if got, err := s.Enqueue(context.Background(), env, strings.NewReader("other")); err != nil || got != id {
			t.Fatalf("round %d: Enqueue of a leased ID = %q, %v", round, got, err)
		}
		if got := readBody(t, s, m); got != body {
			t.Fatalf("round %d: the leased message's body changed", round)
		}
		s.Close()
	}
}

// TestSpoolEnqueueNeverReplacesFiles: the commit is a link, which never
// replaces a file: a message committed on disk under an ID (here written
// behind the open spool's back) is left untouched by an Enqueue of that ID,
// which fails; a leftover envelope file of a completed message with that ID
// does not apply to the new message (issue 8 item 29; issue 10: the
// one-file layout, where the leftover is an envelope file, not a body).
func TestSpoolEnqueueNeverReplacesFiles(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "msg", name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, "msg", name))
		return string(b)
	}

	write("OTHER.msg", "the other writer's body, x@example.net")
	env := envelope("bob@example.net")
	env.ID = "OTHER"
	if _, err := s.Enqueue(context.Background(), env, strings.NewReader("mine")); err == nil {
		t.Fatal("Enqueue over a committed message on disk succeeded")
	}
	if got := read("OTHER.msg"); got != "the other writer's body, x@example.net" {
		t.Fatalf("the committed message was changed: %q", got)
	}

	write("STALE.env", `{"id":"STALE","msg_instance":12345,"recipients":[{"addr":"x@example.net"}]}`)
	env = envelope("bob@example.net")
	env.ID = "STALE"
	mustEnqueue(t, s, env, "fresh")
	m := mustLease(t, s)
	if got := readBody(t, s, m); got != "fresh" || m.Envelope.Recipients[0].Addr != "bob@example.net" {
		t.Fatalf("body = %q, recipient %s; want the enqueued ones", got, m.Envelope.Recipients[0].Addr)
	}
	if got := dirNames(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Fatalf("tmp/ = %v", got)
	}
}
