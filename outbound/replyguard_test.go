package outbound

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// floodServer is a next hop on 127.0.0.1 that answers the connection with
// an endless reply: first, then (after reading one command line when
// afterCmd is set) chunk repeated up to total bytes, then it waits. It
// counts what it could write before the client hung up.
type floodServer struct {
	Addr    string
	written atomic.Int64
	done    chan struct{}
}

func newFloodServer(t *testing.T, first, chunk string, afterCmd bool, total int64) *floodServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &floodServer{Addr: ln.Addr().String(), done: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); <-s.done })
	go func() {
		defer close(s.done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := c.Write([]byte(first)); err != nil {
			return
		}
		if afterCmd {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := bufio.NewReader(c).ReadString('\n'); err != nil {
				return
			}
		}
		buf := []byte(strings.Repeat(chunk, max(1, (32<<10)/len(chunk))))
		for s.written.Load() < total {
			n, err := c.Write(buf)
			s.written.Add(int64(n))
			if err != nil {
				return
			}
		}
		// Everything sent: wait for the client to give up.
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		c.Read(make([]byte, 1))
	}()
	return s
}

// TestEndlessReplyIsBounded: a next hop that answers with a reply that
// never ends, one endless line or endless continuation lines, is read only
// up to a bound: the connection is dropped at once and the recipient stays
// pending, instead of the worker holding all of it in memory until the
// command timeout (a line without end in the greeting read before
// STARTTLS, in MX mode; lines without end through the go-smtp client, which
// bounds a line but not their number). Issue 8 item 4: every loop over
// remote bytes progresses and memory stays bounded.
func TestEndlessReplyIsBounded(t *testing.T) {
	const total = 64 << 20
	for _, tc := range []struct {
		name, first, chunk string
		mx, afterCmd       bool
	}{
		{"MX greeting one line", "220-", "x", true, false},
		{"MX greeting many lines", "220-mx.test\r\n", "220-x\r\n", true, false},
		{"MX EHLO many lines", "220 mx.test\r\n", "250-x\r\n", true, true},
		{"MX EHLO one line", "220 mx.test\r\n", "250-", true, true},
		{"gateway greeting many lines", "220-gw.test\r\n", "220-x\r\n", false, false},
		{"gateway EHLO many lines", "220 gw.test\r\n", "250-AUTH PLAIN\r\n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFloodServer(t, tc.first, tc.chunk, tc.afterCmd, total)
			var h *harness
			if tc.mx {
				r := &fakeResolver{
					mx:  map[string][]*net.MX{"example.net": {{Host: "mx.example.net.", Pref: 10}}},
					ips: map[string][]string{"mx.example.net": {"192.0.2.1"}},
				}
				h = mxHarness(t, r, func(o *Options) { o.Timeouts.Command = 10 * time.Second })
				h.mu.Lock()
				h.dialMap["192.0.2.1:25"] = srv.Addr
				h.mu.Unlock()
			} else {
				h = newHarness(t, func(o *Options) {
					o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone
					o.Timeouts.Command = 10 * time.Second
				})
			}
			h.enqueue(nil, bob)
			start := time.Now()
			rc := rcpt(t, h.attemptSafe(), bob)
			took := time.Since(start)
			if rc.Status != queue.StatusPending || !strings.Contains(rc.Reply.String(), "reply longer than") {
				t.Errorf("status %s reply %v, want pending with \"reply longer than\"", rc.Status, rc.Reply)
			}
			if took > 5*time.Second {
				t.Errorf("the attempt took %v: the endless reply was read until the command timeout", took)
			}
			if n := srv.written.Load(); n >= total/4 {
				t.Errorf("the next hop wrote %d MiB of one reply before the worker hung up, want a bounded read", n>>20)
			}
		})
	}
}

// stepServer is a next hop on 127.0.0.1 whose replies a test writes as raw
// bytes, to play a hop that sends more replies than commands. reply gets the
// connection number and the command line (or "." for the final dot) and
// returns the bytes to write (CRLF included) and, when later is set, more
// bytes to write shortly after, as a separate segment.
type stepServer struct {
	Addr  string
	reply func(conn int, cmd string) (now, later string)
	conns atomic.Int32
	msgs  atomic.Int32
}

func newStepServer(t *testing.T, reply func(conn int, cmd string) (string, string)) *stepServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stepServer{Addr: ln.Addr().String(), reply: reply}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(s.conns.Add(1))
			go s.session(n, c)
		}
	}()
	return s
}

func (s *stepServer) session(n int, c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	say := func(now, later string) {
		c.Write([]byte(now))
		if later != "" {
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte(later))
		}
	}
	say("220 step.test ESMTP\r\n", "")
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.Fields(cmd + " x")[0])
		now, later := s.reply(n, cmd)
		switch {
		case now != "":
		case verb == "EHLO":
			now = "250-step.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"
		case verb == "DATA":
			now = "354 go ahead\r\n"
		case verb == "QUIT":
			say("221 2.0.0 bye\r\n", "")
			return
		default:
			now = "250 2.0.0 ok\r\n"
		}
		say(now, later)
		if verb == "DATA" && strings.HasPrefix(now, "354") {
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			s.msgs.Add(1)
			now, later := s.reply(n, ".")
			if now == "" {
				now = "250 2.0.0 queued\r\n"
			}
			say(now, later)
		}
	}
}

// TestStaleReplyIsNotTheFinalReply: a hop that sends a 250 right behind its
// 354 and then refuses the message at the final dot. Read one reply behind,
// the 250 was taken for the reply to the final dot: the refused message
// counted as relayed and was never retried or reported. The body is not
// sent into a session that is out of step; the recipient stays pending.
func TestStaleReplyIsNotTheFinalReply(t *testing.T) {
	srv := newStepServer(t, func(conn int, cmd string) (string, string) {
		switch {
		case strings.EqualFold(cmd, "DATA"):
			return "354 go ahead\r\n250 2.0.0 ok\r\n", ""
		case cmd == ".":
			return "554 5.7.1 message refused\r\n", ""
		}
		return "", ""
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, bob)
	if rc := rcpt(t, h.attemptSafe(), bob); rc.Status != queue.StatusPending {
		t.Fatalf("status %s reply %v, want pending: the 250 answered no final dot", rc.Status, rc.Reply)
	}
}

// TestPooledConnectionWithStaleReply: a gateway answers the final dot
// twice. The connection went back to the pool with the extra reply unread,
// and the next message read every reply one command behind: a recipient the
// gateway accepted failed for good with the 550 meant for the recipient
// before it. A connection with unread replies (buffered, or arriving while
// it is idle) is closed, never reused.
func TestPooledConnectionWithStaleReply(t *testing.T) {
	const dave = "dave@example.net"
	for _, later := range []bool{false, true} {
		name := "same segment"
		if later {
			name = "while idle"
		}
		t.Run(name, func(t *testing.T) {
			srv := newStepServer(t, func(conn int, cmd string) (string, string) {
				switch {
				case conn == 1 && cmd == "." && later:
					return "250 2.0.0 queued\r\n", "250 2.0.0 queued\r\n"
				case conn == 1 && cmd == ".":
					return "250 2.0.0 queued\r\n250 2.0.0 queued\r\n", ""
				case conn == 1 && later && strings.HasPrefix(cmd, "MAIL"):
					// Answer late, so that the stale reply is alone on
					// the wire when the client reads the reply to MAIL.
					time.Sleep(30 * time.Millisecond)
				case strings.Contains(cmd, carol):
					return "550 5.1.1 no such user\r\n", ""
				}
				return "", ""
			})
			h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
			h.enqueue(nil, bob)
			if rc := rcpt(t, h.attemptSafe(), bob); rc.Status != queue.StatusRelayed {
				t.Fatalf("first message: status %s reply %v", rc.Status, rc.Reply)
			}
			time.Sleep(100 * time.Millisecond) // the late extra reply arrives
			h.enqueue(nil, carol, dave)
			env := h.attemptSafe()
			if rc := rcpt(t, env, dave); rc.Status != queue.StatusRelayed {
				t.Errorf("%s (accepted by the gateway): status %s reply %v, want relayed", dave, rc.Status, rc.Reply)
			}
			if rc := rcpt(t, env, carol); rc.Status != queue.StatusFailed || rc.Reply.Code != 550 {
				t.Errorf("%s (refused by the gateway): status %s reply %v, want failed with 550", carol, rc.Status, rc.Reply)
			}
		})
	}
}
