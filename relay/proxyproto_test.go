package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func v2Header(cmd, fam byte, addr []byte) []byte {
	b := append([]byte{}, proxyV2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(addr)))
	return append(b, addr...)
}

func TestReadProxyHeader(t *testing.T) {
	v4 := []byte{203, 0, 113, 7, 10, 0, 0, 1, 0x9c, 0x40, 0x02, 0x4b}
	v6 := append(append(netip.MustParseAddr("2001:db8::7").AsSlice(), netip.MustParseAddr("2001:db8::1").AsSlice()...), 0x9c, 0x40, 0x02, 0x4b)
	tests := []struct {
		name string
		in   []byte
		want string // "" = no address (LOCAL/UNKNOWN); "err" = error
	}{
		{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 40000 587\r\nEHLO x\r\n"), "203.0.113.7:40000"},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 587\r\n"), "[2001:db8::7]:40000"},
		{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), ""},
		{"v1 family mismatch", []byte("PROXY TCP4 2001:db8::7 10.0.0.1 40000 587\r\n"), "err"},
		{"v1 bad port", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 99999 587\r\n"), "err"},
		{"v1 no CRLF", []byte("PROXY TCP4 203.0.113.7 10.0.0.1 40000 587\n"), "err"},
		{"v1 too long", []byte("PROXY TCP4 " + strings.Repeat("1", 200) + "\r\n"), "err"},
		{"v2 tcp4", v2Header(1, 0x11, v4), "203.0.113.7:40000"},
		{"v2 tcp6", v2Header(1, 0x21, v6), "[2001:db8::7]:40000"},
		{"v2 local", v2Header(0, 0x00, nil), ""},
		{"v2 short", v2Header(1, 0x11, v4[:6]), "err"},
		{"v2 bad version", append(append([]byte{}, proxyV2Sig...), 0x11, 0x11, 0, 0), "err"},
		{"smtp instead", []byte("EHLO client.example\r\n"), "err"},
		{"truncated", []byte("PRO"), "err"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := readProxyHeader(bufio.NewReader(bytes.NewReader(tt.in)))
			switch {
			case tt.want == "err":
				if err == nil {
					t.Fatalf("no error, addr %v", a)
				}
			case err != nil:
				t.Fatal(err)
			case tt.want == "" && a != nil, tt.want != "" && (a == nil || a.String() != tt.want):
				t.Fatalf("got %v, want %q", a, tt.want)
			}
		})
	}
}

// FuzzReadProxyHeader: any bytes from a trusted peer are read within a
// time bound; an error is errProxyHeader; an address is only taken from a
// header that starts with a PROXY signature, and is a real TCP address.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 203.0.113.7 10.0.0.1 40000 587\r\n"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40000 587\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(v2Header(1, 0x11, []byte{1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2}))
	f.Add(v2Header(1, 0x21, make([]byte, 36)))
	f.Add(v2Header(0, 0, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		type result struct {
			a   net.Addr
			err error
		}
		done := make(chan result, 1)
		go func() {
			a, err := readProxyHeader(bufio.NewReaderSize(bytes.NewReader(in), 256))
			done <- result{a, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("readProxyHeader(%q) did not return within 2 s", in)
		}
		if r.err != nil {
			if !errors.Is(r.err, errProxyHeader) {
				t.Fatalf("error %v is not errProxyHeader", r.err)
			}
			return
		}
		if !bytes.HasPrefix(in, []byte("PROXY ")) && !bytes.HasPrefix(in, proxyV2Sig) {
			t.Fatalf("accepted %q, which has no PROXY signature", in)
		}
		if r.a != nil {
			ta, ok := r.a.(*net.TCPAddr)
			if !ok || ta.IP == nil || (ta.IP.To4() == nil && len(ta.IP) != net.IPv6len) {
				t.Fatalf("address %#v from %q", r.a, in)
			}
		}
	})
}

// TestProxyProtocolWire: behind a trusted proxy, the client address from
// the header is the one recorded; a trusted peer without a header is
// dropped.
func TestProxyProtocolWire(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ProxyProtocolFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	nc, err := net.Dial("tcp", e.addr587)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 587\r\n")
	c := wrapClient(t, nc)
	c.expect(220)
	c.ehlo()
	c.starttls()
	c.ehlo()
	c.must(235, "", "AUTH PLAIN %s", plain(alice, alicePW))
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	if code, _ := c.data(message(alice, "r@example.net", "")); code != 250 {
		t.Fatal(code)
	}
	for _, body := range e.queued() {
		if !strings.Contains(body, "Received: from client.test ([203.0.113.7])") {
			t.Fatalf("Received does not show the proxied client:\n%s", body)
		}
	}
	// No header from a trusted peer: dropped without a greeting.
	nc2, err := net.Dial("tcp", e.addr587)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	io.WriteString(nc2, "EHLO sneaky.example\r\n")
	if b, _ := io.ReadAll(nc2); len(b) != 0 {
		t.Fatalf("got %q from a headerless trusted peer", b)
	}
}
