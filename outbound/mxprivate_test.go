package outbound

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// TestRefusedAddress: the MX-mode address decision as a pure function
// (issue 8 item 18). Nothing here is dialed.
func TestRefusedAddress(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.1.2.3", "::1",
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "fc00::1", "fd12:3456::1",
		"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "fec0::1",
		"100.64.0.1", "100.127.255.254",
		"0.0.0.0", "0.1.2.3", "::",
		"224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1",
		"240.0.0.1", "255.255.255.255", "192.0.0.8", "198.18.0.1", "198.19.255.255",
		"::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "::ffff:0.0.0.0",
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1",
		"2002:7f00:1::1", "2002:a00:1::1", "2002:a9fe:a9fe::1",
		"::127.0.0.1", "::10.0.0.1", "100::1",
	}
	allowed := []string{
		"192.0.2.1", "198.51.100.7", "203.0.113.9", // documentation: not routed, used by the tests
		"8.8.8.8", "1.1.1.1", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
		"169.253.255.255", "11.0.0.1", "192.169.0.1", "223.255.255.255",
		"2001:4860:4860::8888", "2a00:1450:4001:82b::200e", "2001:db8::1",
		"::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "fbff:ffff::1", "fe7f::1",
	}
	for _, s := range refused {
		ip := netip.MustParseAddr(s)
		if why, bad := refusedAddress(ip); !bad || why == "" {
			t.Errorf("%s: allowed, want refused", s)
		}
	}
	for _, s := range allowed {
		ip := netip.MustParseAddr(s)
		if why, bad := refusedAddress(ip); bad {
			t.Errorf("%s: refused (%s), want allowed", s, why)
		}
	}
	if _, bad := refusedAddress(netip.Addr{}); !bad {
		t.Errorf("the zero address is allowed")
	}
}

// mxToLoopback is a resolver whose MX for example.net resolves to
// 127.0.0.1.
func mxToLoopback() *fakeResolver {
	return &fakeResolver{
		mx:  map[string][]*net.MX{"example.net": {{Host: "mx.example.net.", Pref: 10}}},
		ips: map[string][]string{"mx.example.net": {"127.0.0.1"}},
	}
}

// TestMXPrivateAddressRefused: by default an MX that resolves to a
// loopback address, and address literals in private, loopback or
// link-local ranges, fail for good with 5.4.4 and nothing is dialed: a
// listener on 127.0.0.1 sees no connection.
func TestMXPrivateAddressRefused(t *testing.T) {
	srv := newScriptServer(t)
	h := mxHarness(t, mxToLoopback(), nil)
	h.route("127.0.0.1", srv)
	h.enqueue(nil, bob, "postmaster@[127.0.0.1]", "x@[169.254.169.254]", "y@[IPv6:::ffff:10.0.0.1]")
	env := h.attemptSafe()
	for _, r := range env.Recipients {
		if r.Status != queue.StatusFailed || r.Reply == nil || r.Reply.Enhanced != "5.4.4" ||
			!strings.Contains(r.Reply.String(), "refusing to deliver to a private, loopback or link-local address") {
			t.Errorf("%s: status %s reply %v, want failed with 5.4.4 refusing the address", r.Addr, r.Status, r.Reply)
		}
	}
	if n := srv.Conns(); n != 0 {
		t.Errorf("the loopback listener saw %d connections, want none", n)
	}
	if d := h.Dialed(); len(d) != 0 {
		t.Errorf("dialed %v, want nothing", d)
	}
}

// TestMXPrivateAddressSkipped: a private address among public ones is
// skipped, not dialed, and the public host gets the message.
func TestMXPrivateAddressSkipped(t *testing.T) {
	mx2 := newScriptServer(t)
	r := &fakeResolver{
		mx: map[string][]*net.MX{"example.net": {
			{Host: "mx1.example.net.", Pref: 10}, {Host: "mx2.example.net.", Pref: 20},
		}},
		ips: map[string][]string{"mx1.example.net": {"10.1.2.3", "fe80::1"}, "mx2.example.net": {"192.0.2.2"}},
	}
	h := mxHarness(t, r, nil)
	h.route("192.0.2.2", mx2)
	h.enqueue(nil, bob)
	if rc := rcpt(t, h.attemptSafe(), bob); rc.Status != queue.StatusRelayed || !strings.HasPrefix(rc.RemoteMTA, "mx2.") {
		t.Fatalf("status %s remote %q reply %v", rc.Status, rc.RemoteMTA, rc.Reply)
	}
	if d := h.Dialed(); len(d) != 1 || d[0] != "192.0.2.2:25" {
		t.Fatalf("dialed %v, want mx2 only", d)
	}
}

// TestMXPrivateAddressAllowed: with MXAllowPrivate (for networks whose
// mail hosts are internal) the loopback MX gets the message.
func TestMXPrivateAddressAllowed(t *testing.T) {
	srv := newScriptServer(t)
	h := mxHarness(t, mxToLoopback(), func(o *Options) { o.MXAllowPrivate = true })
	h.route("127.0.0.1", srv)
	h.enqueue(nil, bob)
	if rc := rcpt(t, h.attemptSafe(), bob); rc.Status != queue.StatusRelayed || rc.RemoteMTA != "mx.example.net [127.0.0.1]" {
		t.Fatalf("status %s remote %q reply %v", rc.Status, rc.RemoteMTA, rc.Reply)
	}
	if len(srv.Received()) != 1 {
		t.Fatal("the loopback MX did not get the message")
	}
}
