package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDirectory is a RecipientVerifier: known addresses, or down.
type fakeDirectory struct {
	known map[string]bool
	down  atomic.Bool
	asked atomic.Int64
}

func (d *fakeDirectory) KnownAddress(_ context.Context, addr string) (bool, error) {
	d.asked.Add(1)
	if d.down.Load() {
		return false, errors.New("ldap: connection refused")
	}
	return d.known[addr], nil
}

// mxEnv is a server with the MX listener for example.org and
// corp.example (and submission as usual); it returns the MX address.
func mxEnv(t *testing.T, tune ...func(*Options)) (*env, string) {
	t.Helper()
	local, err := NewLocalDomains([]string{"example.org", "corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.MX = &MXOptions{LocalDomains: local}
		for _, f := range tune {
			f(o)
		}
	})
	a, err := e.srv.ListenMX("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return e, a.String()
}

// dialMX connects to the MX listener from the loopback address from.
func dialMX(t *testing.T, addr, from string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := wrapClient(t, c)
	cl.expect(220)
	return cl
}

// TestMXNoAuthOpportunisticTLS: the MX listener offers STARTTLS and no
// AUTH (refusing the command), takes mail for a local recipient from an
// unauthenticated sender with or without TLS, and records it as inbound
// (Received "with ESMTP"/"ESMTPS", no user); the submission listeners
// still want AUTH.
func TestMXNoAuthOpportunisticTLS(t *testing.T) {
	e, mx := mxEnv(t)
	c := dialMX(t, mx, "127.0.0.1")
	ehlo := c.ehlo()
	if !strings.Contains(ehlo, "STARTTLS") || strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO: %s", ehlo)
	}
	if code, msg := c.cmd("AUTH PLAIN %s", plain(alice, alicePW)); code < 500 || !strings.Contains(msg, ".") {
		t.Fatalf("AUTH on MX: %d %s", code, msg)
	}
	const sender = "someone@internet.example"
	if code, msg := submit(c, sender, "alice@example.org", message(sender, "alice@example.org", "")); code != 250 {
		t.Fatalf("plaintext: %d %s", code, msg)
	}
	c.starttls()
	if ehlo := c.ehlo(); strings.Contains(ehlo, "AUTH") {
		t.Fatalf("EHLO after STARTTLS: %s", ehlo)
	}
	if code, msg := submit(c, "", "Bob@Corp.Example", message(sender, "bob@corp.example", "")); code != 250 {
		t.Fatalf("TLS, null sender: %d %s", code, msg)
	}
	msgs := e.stored()
	if len(msgs) != 2 {
		t.Fatalf("%d stored", len(msgs))
	}
	var protos []string
	for _, m := range msgs {
		if m.env.User != "" {
			t.Errorf("inbound message with user %q", m.env.User)
		}
		for _, p := range []string{"with ESMTPS id", "with ESMTP id"} {
			if strings.Contains(m.body, p) {
				protos = append(protos, p)
				break
			}
		}
		if r := m.env.Recipients[0].Addr; r != "alice@example.org" && r != "Bob@corp.example" {
			t.Errorf("recipient stored as %q", r)
		}
	}
	if len(protos) != 2 || protos[0] == protos[1] {
		t.Errorf("Received protocols %v, want ESMTP and ESMTPS", protos)
	}
	// Submission is unchanged: no relaying without AUTH.
	s := e.dial()
	s.ehlo()
	s.must(530, "5.7.0", "MAIL FROM:<%s>", sender)
}

// TestMXRelayTricksRefused: every classic relay trick, from any sender
// (a local one, the null sender, an outside one) and from two client
// addresses, is refused at RCPT; nothing is queued.
func TestMXRelayTricksRefused(t *testing.T) {
	e, mx := mxEnv(t)
	tricks := []string{
		"<bob@other.example>",
		"<user%other.example@example.org>",
		`<"user@other.example"@example.org>`,
		"<@example.org:user@other.example>",
		"<@example.org,@corp.example:user@other.example>",
		"<other.example!user@example.org>",
		"<user@other.example@example.org>",
		"<user@[127.0.0.1]>",
		"<user@[IPv6:::1]>",
		"<user@example.org.>",
		"<USER@OTHER.EXAMPLE>",
		"<user@sub.example.org>",
		"<user@exаmple.org>",
		"<user@example.org.other.example>",
		"<postmaster@other.example>",
	}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		c := dialMX(t, mx, ip)
		c.ehlo()
		for _, from := range []string{"<ceo@example.org>", "<>", "<x@internet.example>"} {
			for _, rcpt := range tricks {
				c.must(250, "", "MAIL FROM:%s SMTPUTF8", from)
				code, msg := c.cmd("RCPT TO:%s", rcpt)
				if code < 500 || !strings.Contains(msg, "5.") {
					t.Errorf("from %s, %s via %s: %d %s", ip, rcpt, from, code, msg)
				}
				c.must(250, "", "RSET")
			}
		}
		// A trick beside a local recipient: only the local one is taken.
		c.must(250, "", "MAIL FROM:<x@internet.example>")
		c.must(250, "", "RCPT TO:<alice@example.org>")
		c.must(550, "5.7.1", "RCPT TO:<user%%other.example@example.org>")
		if code, msg := c.data(message("x@internet.example", "alice@example.org", "")); code != 250 {
			t.Fatalf("%d %s", code, msg)
		}
	}
	for _, m := range e.stored() {
		if len(m.env.Recipients) != 1 || m.env.Recipients[0].Addr != "alice@example.org" {
			t.Errorf("stored recipients %+v", m.env.Recipients)
		}
	}
}

// TestMXVerifyRecipients: with verification, an unknown local recipient is
// 550 5.1.1 at RCPT (no backscatter later), a known one is taken, and a
// directory outage is 451 4.4.3.
func TestMXVerifyRecipients(t *testing.T) {
	dir := &fakeDirectory{known: map[string]bool{"alice@example.org": true}}
	e, mx := mxEnv(t, func(o *Options) { o.MX.Verify = dir })
	c := dialMX(t, mx, "127.0.0.1")
	c.ehlo()
	c.must(250, "", "MAIL FROM:<x@internet.example>")
	c.must(550, "5.1.1", "RCPT TO:<nobody@example.org>")
	c.must(250, "", "RCPT TO:<alice@EXAMPLE.org>") // the domain canonical, as the directory is asked
	c.must(550, "5.7.1", "RCPT TO:<x@other.example>")
	if dir.asked.Load() != 2 {
		t.Errorf("directory asked %d times, want 2 (never for a non-local domain)", dir.asked.Load())
	}
	dir.down.Store(true)
	c.must(451, "4.4.3", "RCPT TO:<alice@example.org>")
	c.must(250, "", "RSET")
	if n := len(e.queued()); n != 0 {
		t.Fatalf("%d queued", n)
	}
}

// TestMXScanning: the MX listener scans, even with submissions skipped: an
// EICAR message is 554 5.7.1, nothing queued.
func TestMXScanning(t *testing.T) {
	f := newFakeClamd(t, "")
	sc, err := NewClamd(f.addr(), time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	e, mx := mxEnv(t, func(o *Options) { o.Scan = &ScanOptions{Scanner: sc, SkipSubmission: true} })
	c := dialMX(t, mx, "127.0.0.1")
	c.ehlo()
	c.starttls()
	c.ehlo()
	const from, to = "x@internet.example", "alice@example.org"
	if code, msg := submit(c, from, to, infectedMessage(from, to)); code != 554 || !strings.Contains(msg, "Eicar-Test-Signature") {
		t.Fatalf("EICAR on MX: %d %s", code, msg)
	}
	if code, msg := submit(c, from, to, message(from, to, "")); code != 250 {
		t.Fatalf("clean on MX: %d %s", code, msg)
	}
	if n := len(e.queued()); n != 1 {
		t.Fatalf("%d queued", n)
	}
	if f.scans.Load() != 2 {
		t.Errorf("%d scans", f.scans.Load())
	}
}

// TestMXLimits: past the messages per minute an IP gets 421 4.7.0 and the
// connection ends; past the connections per IP, 421 4.7.0 at connect,
// while another IP still gets in.
func TestMXLimits(t *testing.T) {
	_, mx := mxEnv(t, func(o *Options) {
		o.MX.MessagesPerMinute = 2
		o.MX.MaxConnectionsPerIP = 1
	})
	c := dialMX(t, mx, "127.0.0.1")
	c.ehlo()
	for range 2 {
		c.must(250, "", "MAIL FROM:<x@internet.example>")
		c.must(250, "", "RSET")
	}
	c.must(421, "4.7.0", "MAIL FROM:<x@internet.example>")
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.tp.ReadLine(); err == nil {
		t.Fatal("connection still open after 421")
	}

	hold := dialMX(t, mx, "127.0.0.3")
	hold.ehlo()
	nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).Dial("tcp", mx)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := textproto.NewReader(bufio.NewReader(nc)).ReadLine()
	if err != nil || !strings.HasPrefix(line, "421 4.7.0") {
		t.Fatalf("second connection from one IP: %q %v", line, err)
	}
	other := dialMX(t, mx, "127.0.0.4")
	other.ehlo()
}

// TestMXProxyProtocol: behind a trusted load balancer the MX listener reads
// the PROXY header as submission does: the client's address is the one it
// names (in Received, and for the per-IP limits).
func TestMXProxyProtocol(t *testing.T) {
	e, mx := mxEnv(t, func(o *Options) {
		o.ProxyProtocolFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		o.MX.MessagesPerMinute = 1
	})
	send := func(src string) *client {
		nc, err := net.Dial("tcp", mx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Fprintf(nc, "PROXY TCP4 %s 192.0.2.1 40000 25\r\n", src); err != nil {
			t.Fatal(err)
		}
		c := wrapClient(t, nc)
		c.expect(220)
		c.ehlo()
		return c
	}
	c := send("203.0.113.7")
	const from, to = "x@internet.example", "alice@example.org"
	if code, msg := submit(c, from, to, message(from, to, "")); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	c.must(421, "4.7.0", "MAIL FROM:<%s>", from) // that address's one message a minute
	d := send("203.0.113.8")
	d.must(250, "", "MAIL FROM:<%s>", from) // another address, as the header says
	for _, body := range e.queued() {
		if !strings.Contains(body, "[203.0.113.7]") {
			t.Errorf("Received lacks the proxied address:\n%s", body)
		}
	}
}
