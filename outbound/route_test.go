package outbound

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// mxHarness is a harness in MX mode: resolver answers from r, and dials to
// fake addresses reach the servers mapped in h.dialMap.
func mxHarness(t *testing.T, r *fakeResolver, configure func(*Options)) *harness {
	return newHarness(t, combine(func(o *Options) { o.Resolver = r }, configure))
}

// route maps a fake address on port 25 to a server.
func (h *harness) route(ip string, s *scriptServer) {
	h.mu.Lock()
	h.dialMap[net.JoinHostPort(ip, "25")] = s.Addr
	h.mu.Unlock()
}

func TestMXOrderAndFallbackToNextHost(t *testing.T) {
	mx2 := newScriptServer(t)
	r := &fakeResolver{
		mx: map[string][]*net.MX{"example.net": {
			{Host: "mx2.example.net.", Pref: 20},
			{Host: "mx1.example.net.", Pref: 10},
		}},
		ips: map[string][]string{"mx1.example.net": {"192.0.2.1"}, "mx2.example.net": {"192.0.2.2"}},
	}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.2", mx2) // mx1 is unreachable
	h.enqueue(nil, bob)
	env := h.attempt()
	rc := rcpt(t, env, bob)
	if rc.Status != queue.StatusRelayed || rc.RemoteMTA != "mx2.example.net [192.0.2.2]" {
		t.Fatalf("status %s remote %q reply %v", rc.Status, rc.RemoteMTA, rc.Reply)
	}
	if d := h.Dialed(); !slices.Equal(d, []string{"192.0.2.1:25", "192.0.2.2:25"}) {
		t.Fatalf("dialed %v, want mx1 then mx2", d)
	}
}

func TestMXNextHostAfter421Greeting(t *testing.T) {
	mx1 := newScriptServer(t, withGreet(replyStep(421, "4.3.2", "busy")))
	mx2 := newScriptServer(t)
	r := &fakeResolver{
		mx:  map[string][]*net.MX{"example.net": {{Host: "mx1.example.net", Pref: 10}, {Host: "mx2.example.net", Pref: 20}}},
		ips: map[string][]string{"mx1.example.net": {"192.0.2.1"}, "mx2.example.net": {"192.0.2.2"}},
	}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.1", mx1)
	h.route("192.0.2.2", mx2)
	h.enqueue(nil, bob)
	if rc := rcpt(t, h.attempt(), bob); rc.Status != queue.StatusRelayed || !strings.HasPrefix(rc.RemoteMTA, "mx2.") {
		t.Fatalf("status %s remote %q", rc.Status, rc.RemoteMTA)
	}
	if len(mx2.Received()) != 1 {
		t.Fatal("mx2 did not get the message")
	}
}

func TestMXAllHostsFailKeepsLastReply(t *testing.T) {
	mx1 := newScriptServer(t, withGreet(replyStep(554, "5.3.2", "no SMTP service here")))
	r := &fakeResolver{
		mx:  map[string][]*net.MX{"example.net": {{Host: "mx1.example.net", Pref: 10}}},
		ips: map[string][]string{"mx1.example.net": {"192.0.2.1"}},
	}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.1", mx1)
	h.enqueue(nil, bob)
	rc := rcpt(t, h.attempt(), bob)
	if rc.Status != queue.StatusPending || rc.Reply.String() != "554 5.3.2 no SMTP service here" || rc.RemoteMTA != "mx1.example.net [192.0.2.1]" {
		t.Fatalf("status %s reply %q remote %q, want pending with the host's reply", rc.Status, rc.Reply, rc.RemoteMTA)
	}
}

func TestMXFallbackToAddressRecords(t *testing.T) {
	srv := newScriptServer(t)
	r := &fakeResolver{ips: map[string][]string{"example.net": {"192.0.2.9"}}}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.9", srv)
	h.enqueue(nil, bob)
	rc := rcpt(t, h.attempt(), bob)
	if rc.Status != queue.StatusRelayed || rc.RemoteMTA != "example.net [192.0.2.9]" {
		t.Fatalf("status %s remote %q reply %v", rc.Status, rc.RemoteMTA, rc.Reply)
	}
}

func TestMXDNSVerdicts(t *testing.T) {
	tests := []struct {
		name       string
		r          *fakeResolver
		wantStatus queue.RcptStatus
		wantEnh    string
	}{
		{"null MX", &fakeResolver{mx: map[string][]*net.MX{"example.net": {{Host: ".", Pref: 0}}}}, queue.StatusFailed, "5.1.10"},
		{"NXDOMAIN", &fakeResolver{}, queue.StatusFailed, "5.1.2"},
		{"MX lookup SERVFAIL", &fakeResolver{errs: map[string]error{"example.net": &net.DNSError{Err: "server misbehaving", Name: "example.net", IsTemporary: true}}},
			queue.StatusPending, "4.4.3"},
		{"MX host lookup fails", &fakeResolver{
			mx:   map[string][]*net.MX{"example.net": {{Host: "mx1.example.net", Pref: 10}}},
			errs: map[string]error{"mx1.example.net": errors.New("i/o timeout")}}, queue.StatusPending, "4.4.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mxHarness(t, tt.r, nil)
			h.enqueue(nil, bob)
			rc := rcpt(t, h.attempt(), bob)
			if rc.Status != tt.wantStatus || rc.Reply == nil || rc.Reply.Enhanced != tt.wantEnh {
				t.Fatalf("status %s reply %v, want %s with %s", rc.Status, rc.Reply, tt.wantStatus, tt.wantEnh)
			}
			if len(h.Dialed()) != 0 {
				t.Fatalf("dialed %v", h.Dialed())
			}
			if tt.wantStatus == queue.StatusFailed {
				if c := h.rep.Calls(); len(c) != 1 || c[0].Kind != dsn.Failed {
					t.Fatalf("reports %+v", c)
				}
			}
		})
	}
}

func TestMXGroupsByDomain(t *testing.T) {
	a, b := newScriptServer(t), newScriptServer(t)
	r := &fakeResolver{
		mx: map[string][]*net.MX{
			"a.test": {{Host: "mx.a.test", Pref: 10}},
			"b.test": {{Host: "mx.b.test", Pref: 10}},
		},
		ips: map[string][]string{"mx.a.test": {"192.0.2.10"}, "mx.b.test": {"192.0.2.20"}},
	}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.10", a)
	h.route("192.0.2.20", b)
	h.enqueue(nil, "x@a.test", "y@b.test", "z@A.TEST")
	env := h.attempt()
	for _, rc := range env.Recipients {
		if rc.Status != queue.StatusRelayed {
			t.Errorf("%s: %s %v", rc.Addr, rc.Status, rc.Reply)
		}
	}
	ga, gb := a.Received(), b.Received()
	if len(ga) != 1 || ga[0].rcptList() != "x@a.test,z@A.TEST" {
		t.Errorf("a.test got %+v, want one transaction for x and z", ga)
	}
	if len(gb) != 1 || gb[0].rcptList() != "y@b.test" {
		t.Errorf("b.test got %+v, want one transaction for y", gb)
	}
}

func TestMXOpportunisticTLS(t *testing.T) {
	srv := newScriptServer(t, withTLS()) // self-signed: not verified in MX mode
	r := &fakeResolver{ips: map[string][]string{"example.net": {"192.0.2.9"}}}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.9", srv)
	h.enqueue(nil, bob)
	if rc := rcpt(t, h.attempt(), bob); rc.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v", rc.Status, rc.Reply)
	}
	if m := srv.Received(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("received %+v, want one message over TLS", m)
	}
}

func TestMXHostsShufflesEqualPreference(t *testing.T) {
	r := &fakeResolver{mx: map[string][]*net.MX{"example.net": {
		{Host: "c.example.net", Pref: 20},
		{Host: "a1.example.net", Pref: 10},
		{Host: "a2.example.net", Pref: 10},
		{Host: "a3.example.net", Pref: 10},
	}}}
	seen := map[string]bool{}
	for _, v := range []float64{0, 0.3, 0.6, 0.99} {
		h := mxHarness(t, r, func(o *Options) { o.Rand = func() float64 { return v } })
		hosts, err := h.w.mxHosts(t.Context(), "example.net")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, x := range hosts {
			names = append(names, x.name)
		}
		if len(names) != 4 || names[3] != "c.example.net" || !strings.HasPrefix(names[0], "a") {
			t.Fatalf("order %v: preference not respected", names)
		}
		seen[strings.Join(names, " ")] = true
	}
	if len(seen) < 2 {
		t.Fatalf("equal-preference hosts always in the same order: %v", seen)
	}
}

func TestMXAddressLiteral(t *testing.T) {
	srv := newScriptServer(t)
	h := mxHarness(t, &fakeResolver{}, nil)
	h.route("192.0.2.7", srv)
	h.enqueue(nil, "postmaster@[192.0.2.7]")
	if rc := h.attempt().Recipients[0]; rc.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v", rc.Status, rc.Reply)
	}
}

func TestGroupByDomain(t *testing.T) {
	env := &queue.Envelope{Recipients: []queue.Recipient{
		{Addr: "a@x.test"}, {Addr: "b@y.test"}, {Addr: "c@X.test"}, {Addr: "d@z.test"},
	}}
	domains, groups := groupByDomain(env, []int{0, 1, 2})
	if !slices.Equal(domains, []string{"x.test", "y.test"}) || !slices.Equal(groups["x.test"], []int{0, 2}) || !slices.Equal(groups["y.test"], []int{1}) {
		t.Fatalf("domains %v groups %v", domains, groups)
	}
}

func TestMXTLSHandshakeFailureFallsBackToPlaintext(t *testing.T) {
	// The host offers STARTTLS but its handshake fails (it wants a client
	// certificate): as Postfix's "may" level does, the worker connects
	// again without TLS.
	srv := newScriptServer(t, withTLS(), func(s *scriptServer) { s.srv.TLSConfig.ClientAuth = tls.RequireAnyClientCert })
	r := &fakeResolver{ips: map[string][]string{"example.net": {"192.0.2.9"}}}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.9", srv)
	h.enqueue(nil, bob)
	if rc := rcpt(t, h.attempt(), bob); rc.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v", rc.Status, rc.Reply)
	}
	if m := srv.Received(); len(m) != 1 || m[0].TLS {
		t.Fatalf("received %+v, want one message in plaintext", m)
	}
	if n := srv.Conns(); n != 2 {
		t.Fatalf("connections = %d, want 2 (TLS, then plaintext)", n)
	}
}

// TestMXInternationalizedDomain: an IDN recipient domain (SMTPUTF8 mail) is
// looked up by its A-label (RFC 5891 §5) and delivered.
func TestMXInternationalizedDomain(t *testing.T) {
	srv := newScriptServer(t, withSMTPUTF8())
	r := &fakeResolver{
		mx:  map[string][]*net.MX{"xn--bcher-kva.example": {{Host: "mx.xn--bcher-kva.example", Pref: 10}}},
		ips: map[string][]string{"mx.xn--bcher-kva.example": {"192.0.2.20"}},
	}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.20", srv)
	const to = "jörg@bücher.example"
	h.enqueue(func(e *queue.Envelope) { e.SMTPUTF8 = true }, to)
	rc := rcpt(t, h.attempt(), to)
	if rc.Status != queue.StatusRelayed && rc.Status != queue.StatusDelivered {
		t.Fatalf("status %s reply %v (resolver asked %v)", rc.Status, rc.Reply, r.calls)
	}
}
