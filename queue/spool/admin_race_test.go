package spool_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestAttackActionsRaceWorkers: the operator's Hold and Delete race four
// workers that lease, reschedule (due at once) and complete the same
// messages (journal and msg/). Once an action has returned and the lease
// in progress then (if any) has ended, no worker may get the message
// without it: a held message is never handed out without its hold, a
// deleted one (immediate) never again, and one marked for deletion only
// with the mark. Nothing is lost: every message is completed, deleted or
// still queued after a restart.
func TestAttackActionsRaceWorkers(t *testing.T) {
	a := newAdminSpool(t)
	const n = 40
	ids := make([]string, n)
	for i := range n {
		env := &queue.Envelope{From: "a@example.org", Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending}}}
		id, err := a.s.Enqueue(context.Background(), env, strings.NewReader(strings.Repeat("y", 100+(i%2)*(150<<10))))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var mu sync.Mutex
	acted := map[string]string{}  // id → "hold" or "delete", once the action returned
	must := map[string]string{}   // id → what every later lease must carry ("gone": none)
	inFlight := map[string]bool{} // a worker holds it
	done := map[string]bool{}     // completed by a worker
	marked := 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for k := 0; ; k++ {
				m, err := a.s.Lease(ctx)
				if err != nil {
					return
				}
				id, env := m.Envelope.ID, m.Envelope
				mu.Lock()
				switch must[id] {
				case "gone":
					t.Errorf("%s leased after its Delete returned done", id)
				case "hold":
					if !env.Hold {
						t.Errorf("%s leased without its hold", id)
					}
				case "delete":
					if env.Operator != queue.OperatorDelete {
						t.Errorf("%s leased without the delete mark (%q)", id, env.Operator)
					}
				}
				inFlight[id] = true
				mu.Unlock()
				complete := env.Operator != "" || (k+w)%5 == 0
				if complete {
					mu.Lock()
					done[id] = true
					mu.Unlock()
					if err := a.s.Complete(context.Background(), m); err != nil {
						t.Errorf("Complete %s: %v", id, err)
					}
				} else if err := a.s.Reschedule(context.Background(), m, time.Time{}); err != nil {
					t.Errorf("Reschedule %s: %v", id, err)
				}
				mu.Lock()
				delete(inFlight, id)
				if act := acted[id]; act != "" && must[id] == "" {
					must[id] = act // the lease in progress at the action has ended
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		for i, id := range ids {
			time.Sleep(time.Duration(i%4) * time.Millisecond)
			act, f := "hold", a.s.Hold
			if i%2 == 1 {
				act, f = "delete", a.s.Delete
			}
			imm, err := f(ctx, id)
			if err != nil {
				continue // completed meanwhile (not found), or the test's end
			}
			mu.Lock()
			acted[id] = act
			if !imm {
				marked++
			}
			switch {
			case imm && act == "delete":
				must[id] = "gone"
			case imm || !inFlight[id]:
				must[id] = act
			}
			mu.Unlock()
		}
	})
	wg.Wait()
	t.Logf("%d actions returned (%d marks on a leased message), %d completed by workers", len(acted), marked, len(done))
	left := a.s.Len()
	a.reopen()
	if a.s.Len() != left {
		t.Fatalf("%d messages before the restart, %d after", left, a.s.Len())
	}
	for _, id := range ids {
		mu.Lock()
		gone := must[id] == "gone" || done[id]
		act := acted[id]
		mu.Unlock()
		en, err := a.s.Show(context.Background(), id)
		switch {
		case gone && err == nil:
			t.Errorf("%s completed or deleted, still queued after the restart", id)
		case !gone && err != nil:
			t.Errorf("%s lost: %v", id, err)
		case !gone && act == "hold" && !en.Envelope.Hold:
			t.Errorf("%s: the hold did not survive the restart", id)
		}
	}
}
