package spool_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolDiskFull: on a full file system Enqueue fails with
// ErrInsufficientStorage (the front end answers 452 4.3.1) and leaves no
// file behind; once space is free again the next Enqueue works, without a
// restart (issue 8 item 17). A real 3 MiB tmpfs, filled up.
func TestSpoolDiskFull(t *testing.T) {
	mnt := testutil.Tmpfs(t, "3m")
	dir := filepath.Join(mnt, "spool")
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
	first := mustEnqueue(t, s, envelope("bob@example.net"), "before the disk filled up")

	filler := filepath.Join(mnt, "filler")
	testutil.Fill(t, filler)
	body := strings.Repeat("x", 256<<10)
	for _, b := range []string{body, "tiny"} {
		_, err := s.Enqueue(context.Background(), envelope("carol@example.org"), strings.NewReader(b))
		if !errors.Is(err, queue.ErrInsufficientStorage) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Enqueue of %d bytes on a full disk: %v, want ErrInsufficientStorage wrapping ENOSPC", len(b), err)
		}
		if got := dirNames(t, filepath.Join(dir, "msg")); !equal(got, []string{first + ".msg"}) {
			t.Fatalf("msg/ after the failed Enqueue = %v, want only the first message", got)
		}
		if got := dirNames(t, filepath.Join(dir, "tmp")); len(got) != 0 {
			t.Fatalf("tmp/ after the failed Enqueue = %v, want empty", got)
		}
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	if st := s.Stats(); st.NoSpace != 2 {
		t.Errorf("Stats().NoSpace = %d, want 2", st.NoSpace)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	second := mustEnqueue(t, s, envelope("carol@example.org"), body)
	got := map[string]string{}
	for range 2 {
		m := mustLease(t, s)
		got[m.Envelope.ID] = readBody(t, s, m)
	}
	if got[first] != "before the disk filled up" || got[second] != body {
		t.Fatalf("after freeing space: bodies of %s and %s wrong (%d, %d bytes)", first, second, len(got[first]), len(got[second]))
	}
}
