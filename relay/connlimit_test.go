package relay

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// TestLimitKey: IPv4 addresses count alone, IPv6 addresses by their /64
// (one host usually owns a whole /64, RFC 6177), IPv4-mapped IPv6 as IPv4 —
// the same grouping as the AUTH throttle.
func TestLimitKey(t *testing.T) {
	key := func(s string) string { return limitKey(&net.TCPAddr{IP: net.ParseIP(s), Port: 1234}) }
	same := [][2]string{
		{"2001:db8:1:2::a", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"::1", "::2"}, // ::1-style addresses share ::/64
	}
	for _, p := range same {
		if key(p[0]) != key(p[1]) {
			t.Errorf("%s and %s: keys %q and %q differ, want one key", p[0], p[1], key(p[0]), key(p[1]))
		}
	}
	differ := [][2]string{
		{"2001:db8:1:2::a", "2001:db8:1:3::a"},
		{"192.0.2.1", "192.0.2.2"},
		{"127.0.0.1", "127.0.0.2"},
	}
	for _, p := range differ {
		if key(p[0]) == key(p[1]) {
			t.Errorf("%s and %s: both %q, want different keys", p[0], p[1], key(p[0]))
		}
	}
	if k := limitKey(fakeAddr("pipe")); k != "pipe" {
		t.Errorf("non-IP address: %q", k)
	}
}

type fakeAddr string

func (a fakeAddr) Network() string { return "pipe" }
func (a fakeAddr) String() string  { return string(a) }

// TestConnectionLimitsSpanListeners: RELAY_MAX_CONNECTIONS and
// RELAY_MAX_CONNECTIONS_PER_IP are totals for the process, not per
// listener: with a limit of 2, one connection on 465 and one on 587 fill it.
func TestConnectionLimitsSpanListeners(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  envOpt
	}{
		{"total", func(o *Options) { o.MaxConnections = 2 }},
		{"per IP", func(o *Options) { o.MaxConnectionsPerIP = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opt)
			c1 := e.dial()
			c2 := e.dialTLS()
			c1.ehlo()
			c2.ehlo()
			nc, err := net.Dial("tcp", e.addr587)
			if err != nil {
				t.Fatal(err)
			}
			c3 := wrapClient(t, nc)
			if code, msg := c3.read(); code != 421 {
				t.Fatalf("third connection (limit 2 across 587 and 465): got %d %s, want 421 4.7.0", code, msg)
			}
			// A slot freed on one listener is usable on the other.
			c2.must(221, "", "QUIT")
			c2.conn.Close()
			waitConns(t, e, 1)
			c4, err := tls.Dial("tcp", e.addr465, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			wrapClient(t, c4).expect(220)
		})
	}
}

// TestPerIPLimitIsPerAddress: with IPv4, the per-IP limit counts each
// address alone: 127.0.0.1 at its limit does not stop 127.0.0.2.
func TestPerIPLimitIsPerAddress(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxConnectionsPerIP = 1 })
	e.dial().ehlo()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	nc, err := d.Dial("tcp", e.addr465)
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2 as a source address here: %v", err)
	}
	c := wrapClient(t, tls.Client(nc, &tls.Config{InsecureSkipVerify: true}))
	c.expect(220)
	nc2, err := net.Dial("tcp", e.addr465)
	if err != nil {
		t.Fatal(err)
	}
	nc2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, _ := nc2.Read(make([]byte, 1)); n != 0 {
		t.Fatal("a second connection from 127.0.0.1 (limit 1 per IP, across listeners) got data")
	}
	nc2.Close()
}

// waitConns waits until the server tracks n client connections (a closed
// connection is forgotten when its session goroutine notices).
func waitConns(t *testing.T, e *env, n int) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if len(e.srv.allConns()) == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("server still tracks %d connections, want %d", len(e.srv.allConns()), n)
}

// FuzzLimitKey: every address gets a key in time; an IPv6 address shares
// its key with every address of its /64 and with no address outside it;
// an IPv4-mapped address shares the IPv4 address's key.
func FuzzLimitKey(f *testing.F) {
	f.Add([]byte(net.ParseIP("2001:db8:1:2::a")), byte(0))
	f.Add([]byte(net.ParseIP("::ffff:192.0.2.1")), byte(9))
	f.Add([]byte(net.IPv6loopback), byte(15))
	f.Fuzz(func(t *testing.T, raw []byte, flip byte) {
		if len(raw) != net.IPv6len {
			return
		}
		done := make(chan [3]string, 1)
		go func() {
			other := append([]byte(nil), raw...)
			other[flip%16] ^= 0x01
			key := func(b []byte) string { return limitKey(&net.TCPAddr{IP: net.IP(b), Port: 1}) }
			done <- [3]string{key(raw), key(other), key(raw[12:])}
		}()
		var k [3]string
		select {
		case k = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("limitKey(%v) did not return within 2 s", net.IP(raw))
		}
		ip := net.IP(raw)
		if ip.To4() != nil {
			if k[0] != k[2] {
				t.Fatalf("IPv4-mapped %v: key %q, IPv4 key %q", ip, k[0], k[2])
			}
			if flip%16 >= 12 && k[0] == k[1] {
				t.Fatalf("IPv4 %v: another address shares its key %q", ip, k[0])
			}
			return
		}
		other := append([]byte(nil), raw...)
		other[flip%16] ^= 0x01
		if net.IP(other).To4() != nil {
			return // the flip made it IPv4-mapped
		}
		if sameNet := flip%16 >= 8; sameNet != (k[0] == k[1]) {
			t.Fatalf("%v and %v: keys %q and %q (same /64: %v)", ip, net.IP(other), k[0], k[1], sameNet)
		}
	})
}
