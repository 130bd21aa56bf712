package outbound

import (
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// routeHarness: RELAY_GATEWAY is main.test:25, RELAY_ROUTES sends
// a.example to a.test:25 and xn--bcher-kva.example (bücher.example) to
// b.test:25; each is a script server.
func routeHarness(t *testing.T, configure func(*Options)) (h *harness, mainGW, a, b *scriptServer) {
	mainGW, a, b = newScriptServer(t), newScriptServer(t, withRcpt(carol, replyStep(451, "4.2.0", "later"), stepOK)), newScriptServer(t)
	h = newHarness(t, combine(func(o *Options) {
		o.Gateways = []GatewayConfig{plainGateway("main.test:25")}
		o.Routes = map[string][]GatewayConfig{
			"a.example":             {plainGateway("a.test:25")},
			"xn--bcher-kva.example": {plainGateway("b.test:25")},
		}
	}, configure))
	h.dialMap["main.test:25"], h.dialMap["a.test:25"], h.dialMap["b.test:25"] = mainGW.Addr, a.Addr, b.Addr
	return h, mainGW, a, b
}

func from(addr string) func(*queue.Envelope) { return func(e *queue.Envelope) { e.From = addr } }

// TestRoutesBySenderDomain: each sender domain goes to its own gateway,
// matched without regard to case and by A-label; other senders and
// reports (null reverse-path) go to RELAY_GATEWAY.
func TestRoutesBySenderDomain(t *testing.T) {
	h, mainGW, a, b := routeHarness(t, nil)
	for _, c := range []struct {
		from, route string
		srv         *scriptServer
	}{
		{"x@A.Example", "a.example", a},
		{"y@bücher.example", "xn--bcher-kva.example", b},
		{"z@xn--BCHER-kva.example", "xn--bcher-kva.example", b},
		{"w@other.example", "", mainGW},
		{"", "", mainGW},
	} {
		before := len(c.srv.Received())
		h.enqueue(from(c.from), bob)
		env := h.attempt()
		if r := rcpt(t, env, bob); r.Status != queue.StatusRelayed {
			t.Fatalf("from %q: %s %v", c.from, r.Status, r.Reply)
		}
		if env.Route != c.route || len(c.srv.Received()) != before+1 {
			t.Errorf("from %q: route %q (want %q), gateway got %d (want %d)", c.from, env.Route, c.route, len(c.srv.Received()), before+1)
		}
	}
	if len(mainGW.Received())+len(a.Received())+len(b.Received()) != 5 {
		t.Errorf("messages: main %d a %d b %d", len(mainGW.Received()), len(a.Received()), len(b.Received()))
	}
}

// TestRouteRecordedOnRetry: the first attempt records the route in the
// envelope, which the queue keeps; a retry goes by the recorded route, not
// by the sender, while it is configured.
func TestRouteRecordedOnRetry(t *testing.T) {
	h, mainGW, a, b := routeHarness(t, nil)
	h.enqueue(from("x@a.example"), carol)
	env := h.attempt()
	if r := rcpt(t, env, carol); r.Status != queue.StatusPending || env.Route != "a.example" {
		t.Fatalf("first attempt: %s route %q", r.Status, env.Route)
	}
	h.clock.Advance(h.w.o.RetrySchedule[0] * 2)
	env = h.attempt() // leased again: what the queue kept
	if r := rcpt(t, env, carol); r.Status != queue.StatusRelayed || env.Route != "a.example" {
		t.Fatalf("retry: %s route %q", r.Status, env.Route)
	}
	if len(a.Received()) != 1 || len(mainGW.Received())+len(b.Received()) != 0 {
		t.Fatalf("a got %d, others %d", len(a.Received()), len(mainGW.Received())+len(b.Received()))
	}

	// A recorded route wins over the sender's domain.
	h.enqueue(func(e *queue.Envelope) { e.From, e.Route = "x@a.example", "xn--bcher-kva.example" }, bob)
	if env := h.attempt(); env.Route != "xn--bcher-kva.example" || len(b.Received()) != 1 {
		t.Fatalf("recorded route: route %q, b got %d", env.Route, len(b.Received()))
	}
}

// TestRouteRemoved: a retry whose recorded route the operator removed is
// logged and routed by sender again.
func TestRouteRemoved(t *testing.T) {
	h, mainGW, _, _ := routeHarness(t, nil)
	h.enqueue(func(e *queue.Envelope) { e.From, e.Route = "x@gone.example", "gone.example" }, bob)
	env := h.attempt()
	if env.Route != "" || len(mainGW.Received()) != 1 {
		t.Fatalf("route %q, main got %d", env.Route, len(mainGW.Received()))
	}
	if !strings.Contains(h.log.String(), "no longer configured") || !strings.Contains(h.log.String(), "route=gone.example") {
		t.Errorf("no log line for the removed route:\n%s", h.log)
	}
}

// TestRoutesWithoutMainGateway: RELAY_ROUTES without RELAY_GATEWAY sends
// unlisted senders to their recipients' MX.
func TestRoutesWithoutMainGateway(t *testing.T) {
	h, _, a, _ := routeHarness(t, func(o *Options) {
		o.Gateways = nil
		o.Resolver = &fakeResolver{mx: nil}
	})
	h.enqueue(from("x@a.example"), bob)
	h.attempt()
	h.enqueue(from("w@other.example"), bob)
	env := h.attempt()
	if len(a.Received()) != 1 {
		t.Fatalf("a got %d, want 1", len(a.Received()))
	}
	// example.net has no MX and no address in the fake resolver: MX
	// routing was used and failed the recipient for good.
	if r := rcpt(t, env, bob); r.Status != queue.StatusFailed || !strings.Contains(r.Reply.String(), "not found") {
		t.Fatalf("unlisted sender: %s %v, want MX routing's verdict", r.Status, r.Reply)
	}
}

// TestRouteNotForLocalRecipients: a recipient at a local domain goes to the
// inbound gateway even when the sender's domain has a route.
func TestRouteNotForLocalRecipients(t *testing.T) {
	in := newScriptServer(t)
	h, _, a, _ := routeHarness(t, func(o *Options) {
		o.InboundGateway = in.Addr
		o.LocalDomains = map[string]bool{"example.org": true}
	})
	h.enqueue(from("x@a.example"), "local@example.org", bob)
	env := h.attempt()
	for _, r := range env.Recipients {
		if r.Status != queue.StatusRelayed {
			t.Fatalf("%s: %s %v", r.Addr, r.Status, r.Reply)
		}
	}
	if got := in.Received(); len(got) != 1 || got[0].rcptList() != "local@example.org" {
		t.Fatalf("inbound got %+v", got)
	}
	if got := a.Received(); len(got) != 1 || got[0].rcptList() != bob {
		t.Fatalf("route gateway got %+v", got)
	}
}

func TestCanonicalDomain(t *testing.T) {
	for in, want := range map[string]string{
		"Example.ORG": "example.org", "bücher.example": "xn--bcher-kva.example", "XN--BCHER-KVA.example": "xn--bcher-kva.example",
		"": "", "example.org.": "", "[127.0.0.1]": "", "a..b": "", "-a.example": "", "a b.example": "", "a\x00.example": "", "\xe400": "", "b\xffcher.example": "",
	} {
		got, ok := CanonicalDomain(in)
		if got != want || ok != (want != "") {
			t.Errorf("CanonicalDomain(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}
