package outbound

import (
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

const localRcpt = "carol@example.org" // at the local domain in these tests

func inboundOpts(s *scriptServer) func(*Options) {
	return func(o *Options) {
		o.InboundGateway = s.Addr
		o.LocalDomains = map[string]bool{"example.org": true}
	}
}

// TestInboundRouting: a recipient at a local domain goes only to the
// inbound gateway (STARTTLS, offered there, used), the others to the
// outbound gateway, in one attempt; both are done.
func TestInboundRouting(t *testing.T) {
	in := newScriptServer(t, withTLS())
	out := newScriptServer(t, withTLS())
	h := newHarness(t, combine(gatewayOpts(out, GatewayTLSStartTLS), inboundOpts(in)))
	h.enqueue(nil, localRcpt, bob)
	env := h.attempt()
	for _, a := range []string{localRcpt, bob} {
		if r := rcpt(t, env, a); r.Status != queue.StatusRelayed && r.Status != queue.StatusDelivered {
			t.Errorf("%s: %s %v", a, r.Status, r.Reply)
		}
	}
	gi, go_ := in.Received(), out.Received()
	if len(gi) != 1 || gi[0].rcptList() != localRcpt || !gi[0].TLS {
		t.Fatalf("inbound gateway got %+v", gi)
	}
	if len(go_) != 1 || go_[0].rcptList() != bob {
		t.Fatalf("outbound gateway got %+v", go_)
	}
}

// TestInboundNeverMX: in MX mode too a local recipient goes to the inbound
// gateway, and its domain is never looked up; the inbound gateway down
// leaves it pending for a retry, never sent anywhere else.
func TestInboundNeverMX(t *testing.T) {
	in := newScriptServer(t)
	h := newHarness(t, combine(func(o *Options) { o.Resolver = &fakeResolver{} }, inboundOpts(in)))
	h.enqueue(nil, localRcpt)
	env := h.attempt()
	if r := rcpt(t, env, localRcpt); r.Status != queue.StatusRelayed && r.Status != queue.StatusDelivered {
		t.Fatalf("localRcpt: %s %v", r.Status, r.Reply)
	}
	if got := in.Received(); len(got) != 1 || got[0].TLS {
		t.Fatalf("inbound gateway got %+v (no STARTTLS offered: plaintext)", got)
	}
	for _, d := range h.Dialed() {
		if d != in.Addr {
			t.Errorf("dialed %s", d)
		}
	}

	h2 := newHarness(t, combine(func(o *Options) { o.Resolver = &fakeResolver{} }, func(o *Options) {
		o.InboundGateway = closedPort(t)
		o.LocalDomains = map[string]bool{"example.org": true}
	}))
	h2.enqueue(nil, localRcpt)
	env = h2.attempt()
	if r := rcpt(t, env, localRcpt); r.Status != queue.StatusPending {
		t.Fatalf("inbound gateway down: %s %v, want pending", r.Status, r.Reply)
	}
	for _, d := range h2.Dialed() {
		if d != h2.w.o.InboundGateway {
			t.Errorf("dialed %s", d)
		}
	}
}

// TestInboundObservedRoute: Observe labels a local recipient's attempt
// "inbound", the others by the worker's route.
func TestInboundObservedRoute(t *testing.T) {
	in := newScriptServer(t)
	out := newScriptServer(t, withTLS())
	var routes = map[string]int{}
	h := newHarness(t, combine(gatewayOpts(out, GatewayTLSStartTLS), inboundOpts(in), func(o *Options) {
		o.Observe = func(a Attempt) { routes[a.Route]++ }
	}))
	h.enqueue(nil, localRcpt, bob)
	h.attempt()
	if routes[RouteInbound] != 1 || routes[RouteGateway] != 1 || len(routes) != 2 {
		t.Fatalf("routes %v", routes)
	}
}
