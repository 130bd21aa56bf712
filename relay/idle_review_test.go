package relay

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Review of the idle-wait changes (go-smtp patch 3, idle.go), as a hostile
// client would attack them.

// TestReviewIdleHalfClose: a client that shuts down its write side while
// the session waits for a command (plaintext before STARTTLS, after
// STARTTLS, and on 465) ends the wait and the session at once, not at the
// idle timeout (a minute here).
func TestReviewIdleHalfClose(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleTimeout = time.Minute })
	cases := map[string]func() (*client, net.Conn){
		"587 plaintext": func() (*client, net.Conn) {
			c := e.dial()
			c.ehlo()
			return c, c.conn
		},
		"587 STARTTLS": func() (*client, net.Conn) {
			c := e.dial()
			raw := c.conn
			c.ehlo()
			c.starttls()
			c.ehlo()
			c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
			return c, raw
		},
		"465": func() (*client, net.Conn) {
			c := e.dialTLS()
			c.ehlo()
			c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
			return c, c.conn.(*tls.Conn).NetConn()
		},
	}
	for name, mk := range cases {
		for _, how := range []string{"tcp", "tls"} {
			c, raw := mk()
			if how == "tls" {
				tc, ok := c.conn.(*tls.Conn)
				if !ok {
					continue
				}
				tc.CloseWrite() // close_notify, then the TCP half-close
			} else {
				time.Sleep(30 * time.Millisecond) // the server is waiting
				raw.(*net.TCPConn).CloseWrite()
			}
			start := time.Now()
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(c.conn)
			if err != nil && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("%s/%s: the session did not end after the half-close: %v (read %q)", name, how, err, b)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("%s/%s: the session ended after %v", name, how, d)
			}
		}
	}
}

// TestReviewStartTLSPipelinedDiscarded: RFC 3207 §4.2: commands pipelined
// after STARTTLS, in the same segment, are discarded; the first command
// answered over TLS is the one sent over TLS.
func TestReviewStartTLSPipelinedDiscarded(t *testing.T) {
	e := newEnv(t)
	for _, pipelined := range []string{
		"NOOP\r\n",
		"NOOP\r\nMAIL FROM:<" + alice + ">\r\n",
		"EHLO evil.test\r\nAUTH PLAIN " + plain(alice, alicePW) + "\r\n",
		"NOO", // part of a line
	} {
		c := e.dial()
		c.ehlo()
		if _, err := io.WriteString(c.conn, "STARTTLS\r\n"+pipelined); err != nil {
			t.Fatal(err)
		}
		c.expect(220)
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%q: handshake: %v", pipelined, err)
		}
		c = wrapClient(t, tc)
		msg := c.must(250, "", "EHLO client.test")
		if !strings.HasPrefix(msg, "Hello client.test") {
			t.Fatalf("%q: pipelined plaintext was executed after STARTTLS: first reply over TLS %q", pipelined, msg)
		}
		// Not authenticated by anything sent in plaintext.
		if code, msg := c.cmd("MAIL FROM:<%s>", alice); code == 250 {
			t.Fatalf("%q: MAIL accepted without AUTH over TLS: %d %s", pipelined, code, msg)
		}
	}
}

// TestReviewPipelinedTransactionsManyConns: many connections at once (the
// read buffers go back to the pool and come out again between every
// command), each pipelining whole transactions — MAIL, RCPT, DATA, the body
// with dot-stuffed lines at every offset around the 4 KiB buffer, and the
// final dot — in writes of odd sizes, after idle pauses: every 250 is one
// stored message with its own envelope and its exact bytes.
func TestReviewPipelinedTransactionsManyConns(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRecipients = 100 })
	const conns, perConn = 6, 12
	type sent struct{ rcpt, body string }
	var mu sync.Mutex
	ok := map[string]sent{} // queue ID → what the 250 was for
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for ci := 0; ci < conns; ci++ {
		var c *client
		if ci%2 == 0 {
			c = e.authed(alice, alicePW)
		} else {
			c = e.dialTLS()
			c.ehlo()
			c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
		}
		wg.Add(1)
		go func(ci int, c *client) {
			defer wg.Done()
			var stream strings.Builder
			var want []sent
			for i := 0; i < perConn; i++ {
				rcpt := fmt.Sprintf("r%d-%d@example.net", ci, i)
				pad := 4096 - 200 + (ci*perConn+i)*7%400
				body := "From: <" + alice + ">\r\nTo: <" + rcpt + ">\r\nSubject: t\r\n\r\n" +
					strings.Repeat("x", pad) + "\r\n" +
					".leading dot " + rcpt + "\r\n" +
					"\x00nul\r\n" + strings.Repeat("y", 998) + "\r\n" +
					"..\r\n" + "end " + rcpt + "\r\n"
				stuffed := strings.ReplaceAll("\r\n"+body, "\r\n.", "\r\n..")[2:]
				fmt.Fprintf(&stream, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n%s.\r\nNOOP\r\n", alice, rcpt, stuffed)
				want = append(want, sent{rcpt, body})
			}
			s := stream.String()
			go func() {
				for len(s) > 0 {
					n := min(len(s), 1+len(s)%3001)
					if _, err := io.WriteString(c.conn, s[:n]); err != nil {
						return
					}
					s = s[n:]
					time.Sleep(time.Millisecond)
				}
			}()
			for _, w := range want {
				for _, code := range []int{250, 250, 354} {
					if got, msg := c.read(); got != code {
						errs <- fmt.Errorf("conn %d %s: got %d %s, want %d", ci, w.rcpt, got, msg, code)
						return
					}
				}
				got, msg := c.read()
				if got != 250 {
					errs <- fmt.Errorf("conn %d %s: dot: %d %s", ci, w.rcpt, got, msg)
					return
				}
				mu.Lock()
				ok[queueID(msg)] = w
				mu.Unlock()
				if got, msg := c.read(); got != 250 {
					errs <- fmt.Errorf("conn %d %s: NOOP: %d %s", ci, w.rcpt, got, msg)
					return
				}
			}
		}(ci, c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.stored()
	if len(st) != len(ok) {
		t.Fatalf("%d messages stored for %d replies 250", len(st), len(ok))
	}
	for id, w := range ok {
		m, found := st[id]
		if !found {
			t.Fatalf("250 for %s (%s) but no such message", id, w.rcpt)
		}
		if m.env.From != alice || len(m.env.Recipients) != 1 || m.env.Recipients[0].Addr != w.rcpt {
			t.Fatalf("%s: envelope %+v, want %s → %s", id, m.env, alice, w.rcpt)
		}
		if !strings.HasSuffix(m.body, "\r\n\r\n"+w.body[strings.Index(w.body, "\r\n\r\n")+4:]) {
			t.Fatalf("%s: stored body does not end with the message sent (%d bytes stored)", id, len(m.body))
		}
	}
}

// splitConn sends every write as single-byte TCP segments, a moment apart.
type splitConn struct{ net.Conn }

func (c splitConn) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
		if i%7 == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	return len(p), nil
}

// TestReviewIdleWaitSplitRecords: commands written a byte per TLS record,
// every record split into single-byte TCP segments, and pipelined lines
// whose record boundaries fall anywhere: each is answered once, in order,
// on 587 after STARTTLS and on 465; then a message arrives whole.
func TestReviewIdleWaitSplitRecords(t *testing.T) {
	e := newEnv(t)
	for _, port := range []string{"587", "465"} {
		raw, err := net.Dial("tcp", map[string]string{"587": e.addr587, "465": e.addr465}[port])
		if err != nil {
			t.Fatal(err)
		}
		var conn net.Conn = splitConn{raw}
		if port == "587" {
			c := wrapClient(t, conn)
			c.expect(220)
			c.ehlo()
			c.must(220, "", "STARTTLS")
		}
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
		c := wrapClient(t, tc)
		if port == "465" {
			c.expect(220)
		}
		// A byte per record.
		for _, b := range []byte("EHLO client.test\r\n") {
			tc.Write([]byte{b})
		}
		if code, msg := c.read(); code != 250 || !strings.HasPrefix(msg, "Hello client.test") {
			t.Fatalf("%s: EHLO a byte per record: %d %s", port, code, msg)
		}
		c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
		// Pipelined lines in records of 1..5 bytes.
		s := "NOOP\r\nRSET\r\nMAIL FROM:<" + alice + ">\r\nRCPT TO:<x@example.net>\r\nDATA\r\n"
		for i, n := 0, 1; i < len(s); i, n = i+n, n%5+1 {
			tc.Write([]byte(s[i:min(i+n, len(s))]))
		}
		for i, want := range []int{250, 250, 250, 250, 354} {
			if code, msg := c.read(); code != want {
				t.Fatalf("%s: pipelined reply %d: %d %s, want %d", port, i, code, msg, want)
			}
		}
		body := message(alice, "x@example.net", "") + "..dot\r\n"
		io.WriteString(tc, body+".\r\n")
		code, msg := c.read()
		if code != 250 {
			t.Fatalf("%s: message: %d %s", port, code, msg)
		}
		m := e.queued()[queueID(msg)]
		if !strings.HasSuffix(m, "\r\n\r\nHello.\r\n.dot\r\n") {
			t.Fatalf("%s: stored %q", port, m)
		}
		c.must(221, "", "QUIT")
	}
}
