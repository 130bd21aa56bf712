package outbound

import (
	"sync"
	"testing"
	"time"
)

// attempts collects what Options.Observe was called with.
type attempts struct {
	mu  sync.Mutex
	got []Attempt
}

func (a *attempts) observe(at Attempt) {
	a.mu.Lock()
	a.got = append(a.got, at)
	a.mu.Unlock()
}

func (a *attempts) take() []Attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	got := a.got
	a.got = nil
	return got
}

func resultsOf(as []Attempt) map[string]int {
	n := map[string]int{}
	for _, a := range as {
		n[a.Result]++
	}
	return n
}

// One attempt with a delivered, a failed and a deferred recipient calls
// Observe once for each, with the route, the attempt's duration and the
// message's age; the next attempt observes only the one still pending.
func TestObserveOncePerRecipientAndAttempt(t *testing.T) {
	const dave = "dave@example.net"
	srv := newScriptServer(t,
		withRcpt(carol, replyStep(550, "5.1.1", "user unknown")),
		withRcpt(dave, replyStep(451, "4.2.1", "mailbox busy"), stepOK))
	obs := &attempts{}
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.Observe = obs.observe
		o.DelayWarning = -1
	}))
	// Every reading of the worker's clock moves it on by a second, so that
	// an attempt takes time.
	h.w.o.Now = func() time.Time { h.clock.Advance(time.Second); return h.clock.Now() }
	h.enqueue(nil, bob, carol, dave)
	h.clock.Advance(time.Hour)

	h.attempt()
	got := obs.take()
	if len(got) != 3 {
		t.Fatalf("Observe called %d times, want 3: %+v", len(got), got)
	}
	if n := resultsOf(got); n[ResultDelivered] != 1 || n[ResultFailed] != 1 || n[ResultDeferred] != 1 {
		t.Errorf("results %v, want one each of delivered, failed, deferred", n)
	}
	for _, a := range got {
		if a.Route != RouteGateway {
			t.Errorf("route %q, want gateway", a.Route)
		}
		if a.Duration <= 0 || a.Duration > time.Minute {
			t.Errorf("duration %v, want the attempt's few (fake) seconds", a.Duration)
		}
		if a.Age < time.Hour || a.Age > time.Hour+time.Minute {
			t.Errorf("age %v, want the hour since arrival and the attempt's seconds", a.Age)
		}
	}

	h.clock.Advance(time.Hour)
	h.attempt()
	got = obs.take()
	if len(got) != 1 || got[0].Result != ResultDelivered || got[0].Age < 2*time.Hour {
		t.Fatalf("second attempt observed %+v, want dave delivered only, about 2h old", got)
	}
}

// A recipient that expires at the end of an attempt failed in it: it is
// observed once, as failed, not as deferred.
func TestObserveExpiredIsFailed(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(451, "4.2.1", "mailbox busy")))
	obs := &attempts{}
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
		o.RetrySchedule = []time.Duration{time.Hour}
		o.QueueLifetime = time.Hour
		o.DelayWarning = -1
		o.Observe = obs.observe
	}))
	h.enqueue(nil, bob)
	h.attempt()
	if got := obs.take(); len(got) != 1 || got[0].Result != ResultDeferred {
		t.Fatalf("first attempt observed %+v, want one deferred", got)
	}
	h.clock.Advance(time.Hour)
	h.attempt()
	if got := obs.take(); len(got) != 1 || got[0].Result != ResultFailed || got[0].Age != time.Hour {
		t.Fatalf("last attempt observed %+v, want one failed at 1h", got)
	}
	// Stats count the same outcomes: the expiry is a failure, not a deferral.
	if st := h.w.Stats(); st.Deferred != 1 || st.Failed != 1 || st.Delivered != 0 {
		t.Fatalf("Stats = %+v, want 1 deferred (first attempt) and 1 failed (expired)", st)
	}
}

// In MX mode the route is "mx", and a recipient whose domain does not
// exist fails without a connection.
func TestObserveMXRoute(t *testing.T) {
	obs := &attempts{}
	h := newHarness(t, func(o *Options) {
		o.Resolver = &fakeResolver{}
		o.Observe = obs.observe
	})
	h.enqueue(nil, "bob@nowhere.example")
	h.attempt()
	if got := obs.take(); len(got) != 1 || got[0].Route != RouteMX || got[0].Result != ResultFailed {
		t.Fatalf("observed %+v, want one failed by mx", got)
	}
}
