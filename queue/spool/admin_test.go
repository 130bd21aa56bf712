package spool_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// adminSpool is a spool with a fake clock for the operator's actions.
type adminSpool struct {
	t     *testing.T
	dir   string
	clock *testutil.Clock
	o     spool.Options
	s     *spool.Spool
}

func newAdminSpool(t *testing.T) *adminSpool {
	a := &adminSpool{t: t, dir: t.TempDir(), clock: testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))}
	a.o = spool.Options{Now: a.clock.Now, PollInterval: 2 * time.Millisecond}
	a.s = openSpool(t, a.dir, a.o)
	return a
}

func (a *adminSpool) reopen() {
	a.t.Helper()
	a.s.Close()
	a.s = openSpool(a.t, a.dir, a.o)
}

// enqueue queues a message whose body is n bytes: small ones go to the
// journal, ones over 128 KiB to msg/.
func (a *adminSpool) enqueue(id string, n int) string {
	a.t.Helper()
	env := &queue.Envelope{ID: id, From: "alice@example.org", Arrival: a.clock.Now(),
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}, {Addr: "carol@example.net", Status: queue.StatusPending}}}
	body := "Subject: " + id + "\r\n\r\n" + strings.Repeat("x", n) + "\r\n"
	if _, err := a.s.Enqueue(context.Background(), env, strings.NewReader(body)); err != nil {
		a.t.Fatal(err)
	}
	return body
}

func (a *adminSpool) lease(d time.Duration) *queue.Message {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := a.s.Lease(ctx)
	if err != nil {
		return nil
	}
	return m
}

func (a *adminSpool) mustLease(id string) *queue.Message {
	a.t.Helper()
	m := a.lease(2 * time.Second)
	if m == nil || m.Envelope.ID != id {
		a.t.Fatalf("Lease = %v, want %s", m, id)
	}
	return m
}

func (a *adminSpool) noneDue() {
	a.t.Helper()
	if m := a.lease(30 * time.Millisecond); m != nil {
		a.t.Fatalf("%s is due, want none", m.Envelope.ID)
	}
}

func (a *adminSpool) show(id string) *queue.Entry {
	a.t.Helper()
	e, err := a.s.Show(context.Background(), id)
	if err != nil {
		a.t.Fatalf("Show %s: %v", id, err)
	}
	return e
}

// deferOne leases id and reschedules it an hour ahead with a 451 on bob.
func (a *adminSpool) deferOne(id string) {
	a.t.Helper()
	m := a.mustLease(id)
	r := &m.Envelope.Recipients[0]
	r.Attempts, r.LastAttempt = 1, a.clock.Now()
	r.Reply = &queue.Reply{Code: 451, Enhanced: "4.4.1", Lines: []string{"connection refused"}}
	r.RemoteMTA = "gw.test [127.0.0.1]"
	if err := a.s.Reschedule(context.Background(), m, a.clock.Now().Add(time.Hour)); err != nil {
		a.t.Fatal(err)
	}
}

// TestAdminListShowBody: List and Show see a journal message, a message
// file, and a leased message, with per-recipient state, attempts, next
// attempt and last reply; OpenBody returns the bodies as submitted.
func TestAdminListShowBody(t *testing.T) {
	a := newAdminSpool(t)
	small := a.enqueue("A1", 100)     // journal
	large := a.enqueue("B2", 200<<10) // msg/
	a.clock.Advance(time.Second)
	a.enqueue("C3", 100)
	a.deferOne("A1") // moved to msg/ with its state
	m := a.mustLease("B2")

	list, err := a.s.List(context.Background())
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %d entries, %v", len(list), err)
	}
	if list[0].Envelope.ID != "A1" || list[2].Envelope.ID != "C3" {
		t.Fatalf("order: %s %s %s", list[0].Envelope.ID, list[1].Envelope.ID, list[2].Envelope.ID)
	}
	e := a.show("A1")
	r := e.Envelope.Recipients[0]
	if e.Leased || e.Envelope.Attempts != 1 || r.Reply.String() != "451 4.4.1 connection refused" || r.Status != queue.StatusPending ||
		!e.Envelope.NextAttempt.Equal(a.clock.Now().Add(time.Hour)) {
		t.Fatalf("A1 = %+v", e)
	}
	if e := a.show("B2"); !e.Leased || e.Envelope.Attempts != 1 || e.Envelope.Size != int64(len(large)) {
		t.Fatalf("B2 = %+v", e)
	}
	if e := a.show("C3"); e.Leased || e.Envelope.Attempts != 0 || e.Envelope.Size != int64(100+len("Subject: C3\r\n\r\n\r\n")) {
		t.Fatalf("C3 = %+v", e)
	}
	for id, want := range map[string]string{"A1": small, "B2": large} {
		rc, err := a.s.OpenBody(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != want {
			t.Fatalf("body of %s: %d bytes, want %d", id, len(b), len(want))
		}
	}
	for _, id := range []string{"NOPE", "../x", "", "a\x00b"} {
		if _, err := a.s.Show(context.Background(), id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Show(%q) = %v, want ErrNotFound", id, err)
		}
		if _, err := a.s.OpenBody(context.Background(), id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("OpenBody(%q) = %v", id, err)
		}
		if _, err := a.s.Hold(context.Background(), id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Hold(%q) = %v", id, err)
		}
		for name, act := range map[string]func(context.Context, string) (bool, error){
			"Release": a.s.Release, "Retry": a.s.Retry, "Bounce": a.s.Bounce, "Delete": a.s.Delete} {
			if imm, err := act(context.Background(), id); imm || !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("%s(%q) = %v, %v", name, id, imm, err)
			}
		}
	}
	if err := a.s.Complete(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.Show(context.Background(), "B2"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Show of a completed message: %v", err)
	}
}

// TestAdminHoldRelease: a held message, in the journal or in msg/, is
// never leased, stays held across a restart, and Release makes it due now
// with its state and attempts as they were.
func TestAdminHoldRelease(t *testing.T) {
	a := newAdminSpool(t)
	a.enqueue("J1", 100)
	a.enqueue("F1", 200<<10)
	for _, id := range []string{"J1", "F1"} {
		if imm, err := a.s.Hold(context.Background(), id); err != nil || !imm {
			t.Fatalf("Hold %s = %v, %v", id, imm, err)
		}
		if !a.show(id).Envelope.Hold {
			t.Fatalf("%s not shown held", id)
		}
	}
	a.noneDue()
	if n, _ := a.s.RetryAll(context.Background()); n != 0 {
		t.Fatalf("RetryAll counted %d held messages", n)
	}
	a.noneDue()
	a.reopen()
	a.noneDue()
	for _, id := range []string{"J1", "F1"} {
		if e := a.show(id); !e.Envelope.Hold || e.Envelope.Attempts != 0 {
			t.Fatalf("%s after restart: %+v", id, e.Envelope)
		}
	}
	if imm, err := a.s.Release(context.Background(), "F1"); err != nil || !imm {
		t.Fatalf("Release = %v, %v", imm, err)
	}
	m := a.mustLease("F1")
	if m.Envelope.Hold || m.Envelope.Attempts != 1 {
		t.Fatalf("released: %+v", m.Envelope)
	}
	a.noneDue()
	// Retry of a held message releases it.
	if _, err := a.s.Retry(context.Background(), "J1"); err != nil {
		t.Fatal(err)
	}
	if m := a.mustLease("J1"); m.Envelope.Hold {
		t.Fatal("retried held message still held")
	}
	// Release of a message not on hold changes nothing.
	if imm, err := a.s.Release(context.Background(), "F1"); err != nil || !imm {
		t.Fatalf("Release of a leased, unheld message = %v, %v", imm, err)
	}
}

// TestAdminRetry: Retry and RetryAll make deferred messages due now
// without counting an attempt.
func TestAdminRetry(t *testing.T) {
	a := newAdminSpool(t)
	a.enqueue("R1", 100)
	a.enqueue("R2", 100)
	a.deferOne("R1")
	a.deferOne("R2")
	a.noneDue()
	if imm, err := a.s.Retry(context.Background(), "R2"); err != nil || !imm {
		t.Fatalf("Retry = %v, %v", imm, err)
	}
	if e := a.show("R2"); e.Envelope.NextAttempt.After(a.clock.Now()) {
		t.Fatalf("R2 shown due at %v", e.Envelope.NextAttempt)
	}
	if m := a.mustLease("R2"); m.Envelope.Attempts != 2 {
		t.Fatalf("attempts %d, want 2 (one per lease)", m.Envelope.Attempts)
	}
	a.noneDue()
	if n, err := a.s.RetryAll(context.Background()); n != 1 || err != nil {
		t.Fatalf("RetryAll = %d, %v", n, err)
	}
	a.mustLease("R1")
	if _, err := a.s.Retry(context.Background(), "ZZ"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("Retry of an unknown ID: %v", err)
	}
}

// TestAdminDelete: Delete removes a journal message and a message file
// for good (not back after a restart).
func TestAdminDelete(t *testing.T) {
	a := newAdminSpool(t)
	a.enqueue("D3", 100)
	a.deferOne("D3") // a message file with an envelope file
	a.enqueue("D1", 100)
	a.enqueue("D2", 200<<10)
	for _, id := range []string{"D1", "D2", "D3"} {
		if imm, err := a.s.Delete(context.Background(), id); err != nil || !imm {
			t.Fatalf("Delete %s = %v, %v", id, imm, err)
		}
	}
	if a.s.Len() != 0 {
		t.Fatalf("%d messages left", a.s.Len())
	}
	a.reopen()
	if a.s.Len() != 0 {
		t.Fatalf("%d messages back after restart", a.s.Len())
	}
	if names := dirNames(t, a.dir+"/msg"); len(names) != 0 {
		t.Fatalf("msg/ holds %v", names)
	}
	if _, err := a.s.Delete(context.Background(), "D1"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
}

// TestAdminBounceMarks: Bounce marks the message for the worker and makes
// it due now, durably, releasing a hold.
func TestAdminBounceMarks(t *testing.T) {
	a := newAdminSpool(t)
	a.enqueue("B1", 100)
	a.deferOne("B1")
	a.s.Hold(context.Background(), "B1")
	if imm, err := a.s.Bounce(context.Background(), "B1"); err != nil || !imm {
		t.Fatalf("Bounce = %v, %v", imm, err)
	}
	a.reopen()
	m := a.mustLease("B1")
	if m.Envelope.Operator != queue.OperatorBounce || m.Envelope.Hold || m.Envelope.Recipients[0].Reply == nil {
		t.Fatalf("bounced: %+v", m.Envelope)
	}
}

// TestAdminWhileLeased: actions on a message a worker holds are not
// immediate; the worker's Reschedule writes them (durably), and a
// Complete makes them moot.
func TestAdminWhileLeased(t *testing.T) {
	a := newAdminSpool(t)
	a.enqueue("L1", 100)
	a.enqueue("L2", 100)
	m := a.mustLease("L1")
	if imm, err := a.s.Hold(context.Background(), "L1"); err != nil || imm {
		t.Fatalf("Hold while leased = %v, %v", imm, err)
	}
	if e := a.show("L1"); !e.Leased || !e.Envelope.Hold {
		t.Fatalf("shown %+v", e)
	}
	if err := a.s.Reschedule(context.Background(), m, a.clock.Now()); err != nil {
		t.Fatal(err)
	}
	a.mustLease("L2") // L1 is held, though due
	a.noneDue()
	a.reopen()
	if !a.show("L1").Envelope.Hold {
		t.Fatal("hold asked during the lease not durable")
	}
	a.s.Release(context.Background(), "L1")
	m = a.mustLease("L1")
	if imm, err := a.s.Delete(context.Background(), "L1"); err != nil || imm {
		t.Fatalf("Delete while leased = %v, %v", imm, err)
	}
	if err := a.s.Reschedule(context.Background(), m, a.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	m = a.mustLease("L1") // due now, not in an hour
	if m.Envelope.Operator != queue.OperatorDelete {
		t.Fatalf("operator %q", m.Envelope.Operator)
	}
	if imm, err := a.s.Retry(context.Background(), "L1"); err != nil || imm {
		t.Fatalf("Retry while leased = %v, %v", imm, err)
	}
	if err := a.s.Complete(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.Show(context.Background(), "L1"); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("L1 after Complete: %v", err)
	}
}

// TestAdminConcurrent: operator actions beside workers that lease,
// reschedule and complete (run with -race): no message is lost or
// leased twice at once, and every action returns a result.
func TestAdminConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, spool.Options{PollInterval: time.Millisecond})
	const n = 60
	for i := range n {
		env := &queue.Envelope{From: "a@example.org", Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending}}}
		body := strings.Repeat("y", 100+(i%3)*(100<<10)) // journal and msg/
		if _, err := s.Enqueue(context.Background(), env, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	inFlight := map[string]bool{}
	completed, deleted := 0, 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				m, err := s.Lease(ctx)
				if err != nil {
					return
				}
				id := m.Envelope.ID
				mu.Lock()
				if inFlight[id] {
					t.Errorf("%s leased twice at once", id)
				}
				inFlight[id] = true
				mu.Unlock()
				op := m.Envelope.Operator
				mu.Lock()
				delete(inFlight, id)
				mu.Unlock()
				if op != "" || (k+w)%4 == 0 {
					if err := s.Complete(context.Background(), m); err != nil {
						t.Errorf("Complete %s: %v", id, err)
					}
					mu.Lock()
					completed++
					mu.Unlock()
					continue
				}
				if err := s.Reschedule(context.Background(), m, time.Now()); err != nil {
					t.Errorf("Reschedule %s: %v", id, err)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for k := 0; ctx.Err() == nil; k++ {
				list, err := s.List(ctx)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("List: %v", err)
					}
					return
				}
				for j, e := range list {
					id := e.Envelope.ID
					var err error
					switch (j + k) % 7 {
					case 0:
						_, err = s.Hold(ctx, id)
					case 1:
						_, err = s.Release(ctx, id)
					case 2:
						_, err = s.Retry(ctx, id)
					case 3:
						_, err = s.Bounce(ctx, id)
					case 4:
						var imm bool
						if imm, err = s.Delete(ctx, id); imm && err == nil {
							mu.Lock()
							deleted++
							mu.Unlock()
						}
					case 5:
						_, err = s.Show(ctx, id)
					case 6:
						_, err = s.RetryAll(ctx)
					}
					if err != nil && !errors.Is(err, queue.ErrNotFound) && ctx.Err() == nil {
						t.Errorf("action on %s: %v", id, err)
					}
				}
			}
		})
	}
	wg.Wait()
	// Every message left is still whole after a restart.
	left := s.Len()
	s.Close()
	s2 := openSpool(t, dir, spool.Options{})
	if s2.Len() != left {
		t.Fatalf("%d messages before the restart, %d after", left, s2.Len())
	}
	list, err := s2.List(context.Background())
	if err != nil || len(list) != left {
		t.Fatalf("List after restart: %d, %v; want %d", len(list), err, left)
	}
	if completed+deleted+left != n {
		t.Fatalf("%d completed by workers + %d deleted + %d left != %d enqueued", completed, deleted, left, n)
	}
	t.Logf("%d completed by workers, %d deleted, %d left", completed, deleted, left)
}
