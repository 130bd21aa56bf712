package outbound

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// panicOnceResolver panics on its first MX lookup: a stand-in for any defect
// that one message reaches while it holds a per-domain slot.
type panicOnceResolver struct {
	*fakeResolver
	n atomic.Int32
}

func (r *panicOnceResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	if r.n.Add(1) == 1 {
		var m map[string]int
		m["boom"]++
	}
	return r.fakeResolver.LookupMX(ctx, name)
}

// TestPanicReleasesDomainSlot: a panic while a delivery holds the
// per-domain slot is recovered, and the slot is given back: otherwise
// PerDomainConcurrency panics for one domain wedge every later delivery to
// it (and, one by one, every worker goroutine) until the process restarts.
func TestPanicReleasesDomainSlot(t *testing.T) {
	mx := newScriptServer(t)
	r := &panicOnceResolver{fakeResolver: &fakeResolver{
		mx:  map[string][]*net.MX{"example.net": {{Host: "mx.example.net.", Pref: 10}}},
		ips: map[string][]string{"mx.example.net": {"192.0.2.1"}},
	}}
	h := newHarness(t, func(o *Options) { o.Resolver = r; o.PerDomainConcurrency = 1 })
	h.route("192.0.2.1", mx)
	h.enqueue(nil, bob)
	h.attemptSafe() // panics in the lookup, recovered
	if n := h.w.Stats().Panics; n != 1 {
		t.Fatalf("Stats().Panics = %d, want 1", n)
	}
	h.enqueue(nil, carol)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := h.q.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.w.process(ctx, m)
	if ctx.Err() != nil {
		t.Fatal("the next delivery to example.net waited for the slot the panicked one held until its context ended")
	}
	if rc := rcpt(t, m.Envelope, carol); rc.Status != queue.StatusRelayed {
		t.Fatalf("next message to the domain: status %s reply %v, want relayed", rc.Status, rc.Reply)
	}
}
