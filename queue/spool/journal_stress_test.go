package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestJournalConcurrentFaultsStress: concurrent Enqueues, Leases,
// Reschedules and Completes over tiny segments (rotation all the time)
// while fdatasyncs of segments fail at random (cleaned up). After Close and
// a reopen: every acknowledged, not completed message is there with its
// body; no failed Enqueue and no completed message came back.
func TestJournalConcurrentFaultsStress(t *testing.T) {
	dir := t.TempDir()
	fsys := &failSyncFS{err: syscall.EIO}
	s, err := Open(dir, Options{fs: fsys, JournalSegmentBytes: 2048, PollInterval: time.Millisecond})
	must(t, err)
	var mu sync.Mutex
	acked, failed, completed := map[string]string{}, map[string]bool{}, map[string]bool{}
	endPending := map[string]bool{}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// fault injector
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond):
				fsys.failing.Store(1)
			}
		}
	}()
	var ewg sync.WaitGroup
	for g := range 4 {
		ewg.Add(1)
		go func() {
			defer ewg.Done()
			for i := range 60 {
				id := fmt.Sprintf("S%d-%03d", g, i)
				body := jbody(id, 1+rand.IntN(40))
				_, err := s.Enqueue(ctx, jenv(id), strings.NewReader(body))
				mu.Lock()
				if err == nil {
					acked[id] = body
				} else {
					failed[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	// workers
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lctx, lc := context.WithTimeout(ctx, 50*time.Millisecond)
				m, err := s.Lease(lctx)
				lc()
				if err != nil {
					select {
					case <-stop:
						return
					default:
						continue
					}
				}
				id := m.Envelope.ID
				if rand.IntN(3) == 0 {
					s.Reschedule(ctx, m, time.Now().Add(time.Hour))
					continue
				}
				err = s.Complete(ctx, m)
				mu.Lock()
				switch {
				case err == nil:
					completed[id] = true
				case errors.Is(err, errEndPending):
					// Delivered, removed once its END is written:
					// either outcome after a reopen.
					endPending[id] = true
				}
				mu.Unlock()
			}
		}()
	}
	ewg.Wait()
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	fsys.failing.Store(0)
	s.Close()

	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	for id, body := range acked {
		if completed[id] {
			if s.entries[id] != nil {
				t.Errorf("%s: Complete returned nil, back after reopen", id)
			}
			continue
		}
		if s.entries[id] == nil {
			if !endPending[id] {
				t.Errorf("%s: Enqueue returned nil, lost after reopen", id)
			}
			continue
		}
		var got string
		if jm := s.journalOf(id); jm != nil {
			got = bodyOf(t, s, id)
		} else {
			got, err = readBodyFile(s.msgPath(id))
			if err != nil {
				t.Errorf("%s: %v", id, err)
				continue
			}
		}
		if got != body {
			t.Errorf("%s: body differs after reopen", id)
		}
	}
	for id := range failed {
		if s.entries[id] != nil {
			t.Errorf("%s: Enqueue failed, queued after reopen", id)
		}
	}
	t.Logf("acked %d, failed %d, completed %d, segments %d", len(acked), len(failed), len(completed), len(segments(t, dir)))
}

// TestJournalCloseThenCompleteAndReschedule: Complete and Reschedule of
// journal messages after Close (a drain that ends deliveries) are durable
// and a completed message does not come back.
func TestJournalCloseThenCompleteAndReschedule(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	must(t, err)
	for _, id := range []string{"A", "B"} {
		if _, err := s.Enqueue(t.Context(), jenv(id), strings.NewReader(jbody(id, 3))); err != nil {
			t.Fatal(err)
		}
	}
	ma, err := s.Lease(t.Context())
	must(t, err)
	mb, err := s.Lease(t.Context())
	must(t, err)
	s.Close()
	if err := s.Complete(t.Context(), ma); err != nil {
		t.Fatalf("Complete after Close: %v", err)
	}
	if err := s.Reschedule(t.Context(), mb, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Reschedule after Close: %v", err)
	}
	s, err = Open(dir, Options{})
	must(t, err)
	defer s.Close()
	if s.entries[ma.Envelope.ID] != nil {
		t.Errorf("%s completed after Close, back after reopen", ma.Envelope.ID)
	}
	if s.entries[mb.Envelope.ID] == nil || s.journalOf(mb.Envelope.ID) != nil {
		t.Errorf("%s rescheduled after Close: not in msg/ after reopen", mb.Envelope.ID)
	}
}

// TestJournalBodyOfCollectedSegment: a Body reader opened before its
// message's segment is collected reads the whole body.
func TestJournalBodyOfCollectedSegment(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{JournalSegmentBytes: 1024})
	must(t, err)
	defer s.Close()
	body := jbody("A", 50)
	if _, err := s.Enqueue(t.Context(), jenv("A"), strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	m, err := s.Lease(t.Context())
	must(t, err)
	rc, err := s.Body(t.Context(), m)
	must(t, err)
	defer rc.Close()
	if _, err := s.Enqueue(t.Context(), jenv("B"), strings.NewReader(jbody("B", 50))); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, spoolJournalDir, segmentName(1))); !errors.Is(err, os.ErrNotExist) {
		t.Logf("segment 1 not collected (%v)", err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || string(got) != body {
		t.Fatalf("Body after its segment was collected: %d bytes, %v", len(got), err)
	}
}

// TestJournalSamePresetIDAcrossPaths: concurrent Enqueues of one preset ID,
// bodies just below and just above JournalMaxBytes: one message stored,
// in one place, and every Enqueue returns its ID.
func TestJournalSamePresetIDAcrossPaths(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		s, err := Open(dir, Options{JournalMaxBytes: 4096})
		must(t, err)
		id := "P"
		bo := msgBodyOffset(id)
		var wg sync.WaitGroup
		for i := range 6 {
			n := 4096 - bo - 200 + i*100 // some fit, some do not
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Enqueue(t.Context(), jenv(id), strings.NewReader(strings.Repeat("x", n))); err != nil {
					t.Errorf("Enqueue: %v", err)
				}
			}()
		}
		wg.Wait()
		inJ := s.journalOf(id) != nil
		_, ferr := os.Stat(s.msgPath(id))
		s.Close()
		if inJ && ferr == nil {
			t.Fatalf("round %d: %s both in the journal and in msg/", round, id)
		}
		s, err = Open(dir, Options{})
		must(t, err)
		if s.Len() != 1 {
			t.Fatalf("round %d: Len %d after reopen", round, s.Len())
		}
		s.Close()
	}
}
