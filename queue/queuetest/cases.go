package queuetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// testRoundTrip: what Enqueue stored is what Lease hands out, byte for byte,
// with an ID assigned, the size recorded and the claim counted.
func (s *suite) testRoundTrip(t *testing.T) {
	q, _ := s.Open(t)
	env := testEnvelope()
	id, digest := s.enqueue(t, q, env, s.BodySize)
	if !queue.ValidID(id) {
		t.Fatalf("Enqueue returned invalid ID %q", id)
	}
	if env.ID != id {
		t.Errorf("env.ID = %q after Enqueue, want the returned ID %q", env.ID, id)
	}
	if env.Size != s.BodySize {
		t.Errorf("env.Size = %d, want %d", env.Size, s.BodySize)
	}

	m := s.lease(t, q)
	if m.Envelope.Arrival.IsZero() {
		t.Error("leased envelope has no Arrival time")
	}
	want := testEnvelope()
	want.ID = id
	want.Size = s.BodySize
	want.Attempts = 1
	want.Arrival = m.Envelope.Arrival
	want.NextAttempt = m.Envelope.NextAttempt
	sameEnvelope(t, m.Envelope, want)
	s.checkBody(t, q, m, digest, s.BodySize)
	s.complete(t, q, m)
}

// testLeaseHides: a leased message is invisible to other Lease calls.
func (s *suite) testLeaseHides(t *testing.T) {
	q, _ := s.Open(t)
	id, _ := s.enqueue(t, q, testEnvelope(), 100)
	m := s.lease(t, q)
	if m.Envelope.ID != id {
		t.Fatalf("leased %s, want %s", m.Envelope.ID, id)
	}
	s.noneDue(t, q, "while the only message is leased")
	s.complete(t, q, m)
}

// testLeasedOnce: concurrent Lease calls get each message exactly once.
func (s *suite) testLeasedOnce(t *testing.T) {
	q, _ := s.Open(t)
	const n = 8
	want := make(map[string]bool)
	for range n {
		id, _ := s.enqueue(t, q, testEnvelope(), 64)
		want[id] = true
	}
	if len(want) != n {
		t.Fatalf("%d distinct IDs for %d messages", len(want), n)
	}
	var (
		mu   sync.Mutex
		got  = make(map[string]int)
		msgs []*queue.Message
		wg   sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			m, err := q.Lease(s.ctx(t))
			if err != nil {
				t.Errorf("Lease: %v", err)
				return
			}
			mu.Lock()
			got[m.Envelope.ID]++
			msgs = append(msgs, m)
			mu.Unlock()
		})
	}
	wg.Wait()
	for id, c := range got {
		if !want[id] || c != 1 {
			t.Errorf("message %s leased %d times (queued: %v)", id, c, want[id])
		}
	}
	if len(got) != n {
		t.Errorf("%d distinct messages leased, want %d", len(got), n)
	}
	s.noneDue(t, q, "after every message was leased")
	for _, m := range msgs {
		s.complete(t, q, m)
	}
}

// testRescheduleFuture: a message rescheduled for later is not due now.
func (s *suite) testRescheduleFuture(t *testing.T) {
	q, _ := s.Open(t)
	s.enqueue(t, q, testEnvelope(), 100)
	m := s.lease(t, q)
	if err := q.Reschedule(s.ctx(t), m, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}
	s.noneDue(t, q, "after Reschedule an hour ahead")
}

// testReschedulePartial: Reschedule keeps the per-recipient state that the
// holder of the lease recorded (one recipient delivered, one pending), in
// memory and across a restart, and every claim is counted.
func (s *suite) testReschedulePartial(t *testing.T) {
	q, reopen := s.Open(t)
	id, digest := s.enqueue(t, q, testEnvelope(), 4096)
	m := s.lease(t, q)
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	r0, r1 := &m.Envelope.Recipients[0], &m.Envelope.Recipients[1]
	r0.Status, r0.Attempts, r0.LastAttempt = queue.StatusDelivered, 1, at
	r0.RemoteMTA = "mx1.example.net [192.0.2.1]"
	r0.Reply = &queue.Reply{Code: 250, Enhanced: "2.0.0", Lines: []string{"OK queued as 42"}}
	r1.Attempts, r1.LastAttempt = 1, at
	r1.Reply = &queue.Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{"try again later"}}
	r1.DelayReported = true
	m.Envelope.DelayWarned = true
	want := m.Envelope.Clone()
	if err := q.Reschedule(s.ctx(t), m, now()); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}

	check := func(m *queue.Message, attempts int) {
		t.Helper()
		if m.Envelope.ID != id {
			t.Fatalf("leased %s, want %s", m.Envelope.ID, id)
		}
		if got := m.Envelope.Pending(); len(got) != 1 || got[0] != 1 {
			t.Fatalf("pending recipients = %v, want [1]", got)
		}
		w := want.Clone()
		w.Attempts = attempts
		w.NextAttempt = m.Envelope.NextAttempt
		sameEnvelope(t, m.Envelope, w)
		s.checkBody(t, q, m, digest, 4096)
	}
	m = s.lease(t, q)
	check(m, 2)
	if err := q.Reschedule(s.ctx(t), m, now()); err != nil {
		t.Fatalf("Reschedule: %v", err)
	}

	q = reopen()
	m = s.lease(t, q)
	check(m, 3)
	s.complete(t, q, m)
}

// testComplete: a completed message is gone, body included, also after a
// restart.
func (s *suite) testComplete(t *testing.T) {
	q, reopen := s.Open(t)
	s.enqueue(t, q, testEnvelope(), 1000)
	m := s.lease(t, q)
	s.complete(t, q, m)
	s.noneDue(t, q, "after Complete")
	if rc, err := q.Body(s.ctx(t), m); err == nil {
		_, rerr := rc.Read(make([]byte, 1))
		rc.Close()
		if rerr == nil {
			t.Error("the body of a completed message can still be read")
		}
	}
	if err := q.Reschedule(s.ctx(t), m, now()); err == nil {
		t.Error("Reschedule of a completed message succeeded")
	}
	q = reopen()
	s.noneDue(t, q, "after Complete and a restart")
}

// testCrash: a message leased by a process that dies before Reschedule or
// Complete is due again (at-least-once), with both claims counted and the
// body intact.
func (s *suite) testCrash(t *testing.T) {
	q, reopen := s.Open(t)
	env := testEnvelope()
	id, digest := s.enqueue(t, q, env, s.BodySize)
	m := s.lease(t, q)
	if m.Envelope.Attempts != 1 {
		t.Fatalf("first lease: Attempts = %d, want 1", m.Envelope.Attempts)
	}
	q = reopen()
	m = s.lease(t, q)
	if m.Envelope.ID != id || m.Envelope.Attempts != 2 {
		t.Fatalf("after restart leased %s, want %s with 2 attempts", describe(m), id)
	}
	s.checkBody(t, q, m, digest, s.BodySize)
	s.complete(t, q, m)
}

// testLeaseContext: Lease on an empty queue returns ctx.Err() once ctx is
// cancelled or its deadline passes.
func (s *suite) testLeaseContext(t *testing.T) {
	q, _ := s.Open(t)
	ctx, cancel := context.WithCancel(t.Context())
	res := make(chan error, 1)
	go func() {
		_, err := q.Lease(ctx)
		res <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Lease start waiting (either way the result must be Canceled)
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Lease after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(s.DueWait):
		t.Fatal("Lease did not return after its context was cancelled")
	}
	s.noneDue(t, q, "empty queue") // checks DeadlineExceeded
}

// testClose: Close makes a waiting Lease return ErrClosed.
func (s *suite) testClose(t *testing.T) {
	q, _ := s.Open(t)
	res := make(chan error, 1)
	go func() {
		_, err := q.Lease(t.Context())
		res <- err
	}()
	time.Sleep(20 * time.Millisecond) // let Lease start waiting (either way the result must be ErrClosed)
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-res:
		if !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("Lease after Close: %v, want queue.ErrClosed", err)
		}
	case <-time.After(s.DueWait):
		t.Fatal("Lease did not return after Close")
	}
	if _, err := q.Lease(t.Context()); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Lease on a closed queue: %v, want queue.ErrClosed", err)
	}
}

// testFailedBody: an Enqueue whose body reader fails half-way returns an
// error and leaves no message behind, now or after a restart.
func (s *suite) testFailedBody(t *testing.T) {
	q, reopen := s.Open(t)
	b := newBody(s.BodySize, 7)
	b.failAfter = s.BodySize / 2
	env := testEnvelope()
	if id, err := q.Enqueue(s.ctx(t), env, b); err == nil {
		t.Fatalf("Enqueue with a failing body returned ID %q and no error", id)
	}
	s.noneDue(t, q, "after a failed Enqueue")
	q = reopen()
	s.noneDue(t, q, "after a failed Enqueue and a restart")
}

// testInvalidEnvelope: Enqueue refuses, with an error wrapping
// queue.ErrInvalidEnvelope, an envelope without recipients or with a NUL
// or another control character in an address, ORCPT or ENVID, and stores
// nothing (issue 8 items 1 and 6).
func (s *suite) testInvalidEnvelope(t *testing.T) {
	q, reopen := s.Open(t)
	bad := map[string]func(e *queue.Envelope){
		"no recipients": func(e *queue.Envelope) { e.Recipients = nil },
		"NUL in rcpt":   func(e *queue.Envelope) { e.Recipients[1].Addr = "a@b.example\x00@evil.example" },
		"CRLF in from":  func(e *queue.Envelope) { e.From = "a@b.example\r\nRCPT TO:<x@evil.example>" },
		"DEL in ORCPT":  func(e *queue.Envelope) { e.Recipients[0].ORCPT = "rfc822;bob\x7f@example.net" },
		"NUL in ENVID":  func(e *queue.Envelope) { e.EnvID = "QQ\x00" },
	}
	for name, mod := range bad {
		env := testEnvelope()
		mod(env)
		id, err := q.Enqueue(s.ctx(t), env, newBody(100, 3))
		if !errors.Is(err, queue.ErrInvalidEnvelope) {
			t.Errorf("%s: Enqueue = %q, %v; want an error wrapping queue.ErrInvalidEnvelope", name, id, err)
		}
	}
	s.noneDue(t, q, "after refused Enqueues")
	q = reopen()
	s.noneDue(t, q, "after refused Enqueues and a restart")
}
