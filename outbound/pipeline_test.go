package outbound

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

// writeLog records the bytes of each write the client makes.
type writeLog struct {
	net.Conn
	mu     *sync.Mutex
	writes *[]string
}

func (w writeLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	*w.writes = append(*w.writes, string(p))
	w.mu.Unlock()
	return w.Conn.Write(p)
}

// logWrites makes every connection the worker dials record its writes.
func logWrites(mu *sync.Mutex, writes *[]string) func(*Options) {
	return func(o *Options) {
		dial := o.Dial
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return writeLog{Conn: c, mu: mu, writes: writes}, nil
		}
	}
}

// outcome is what an attempt left: each recipient's status and reply, the
// messages the server took, and the connections it saw.
func outcome(env *queue.Envelope, srv *scriptServer) string {
	var b strings.Builder
	for _, r := range env.Recipients {
		fmt.Fprintf(&b, "%s: %s %s\n", r.Addr, r.Status, r.Reply)
	}
	for _, m := range srv.Received() {
		fmt.Fprintf(&b, "conn %d: from %s %+v to %s %+v body %d bytes\n", m.Conn, m.From, m.MailOpts, m.rcptList(), m.RcptOpts, len(m.Body))
	}
	fmt.Fprintf(&b, "connections: %d\n", srv.Conns())
	return b.String()
}

// TestPipelinedSameResultsAsSequential runs each case against a go-smtp
// server that offers PIPELINING and against one that does not: every
// recipient's status and reply, what the server received (envelope, DSN
// and SMTPUTF8 parameters, body) and the connections made are the same,
// and with PIPELINING the envelope went in one write.
func TestPipelinedSameResultsAsSequential(t *testing.T) {
	dave := "dave@example.net"
	dsnEnv := func(e *queue.Envelope) {
		e.RET, e.EnvID, e.SMTPUTF8 = "HDRS", "env-1", true
		for i := range e.Recipients {
			e.Recipients[i].Notify = []string{"FAILURE", "DELAY"}
			e.Recipients[i].ORCPT = "rfc822;orig-" + e.Recipients[i].Addr
		}
	}
	tests := []struct {
		name string
		opts []serverOpt
		edit func(*queue.Envelope)
	}{
		{name: "all accepted"},
		{name: "some refused, 452 batched", opts: []serverOpt{
			withRcpt(carol, replyStep(550, "5.1.1", "no such user")),
			withRcpt(dave, replyStep(452, "4.5.3", "too many recipients"), stepOK)}},
		{name: "RCPT 451 and 550", opts: []serverOpt{
			withRcpt(bob, replyStep(451, "4.2.1", "busy")), withRcpt(carol, replyStep(550, "5.1.1", "no"))}},
		{name: "RCPT 421", opts: []serverOpt{withRcpt(carol, replyStep(421, "4.3.2", "closing"))}},
		{name: "first RCPT 421", opts: []serverOpt{withRcpt(bob, replyStep(421, "4.3.2", "closing"))}},
		{name: "every RCPT refused", opts: []serverOpt{
			withRcpt(bob, replyStep(550, "5.1.1", "no")), withRcpt(carol, replyStep(550, "5.1.1", "no")),
			withRcpt(dave, replyStep(553, "5.1.3", "bad"))}},
		{name: "MAIL 550", opts: []serverOpt{withMail(replyStep(550, "5.7.1", "sender refused"))}},
		{name: "MAIL 451", opts: []serverOpt{withMail(replyStep(451, "4.3.0", "later"))}},
		{name: "MAIL 421", opts: []serverOpt{withMail(replyStep(421, "4.3.2", "bye"))}},
		{name: "closed at MAIL", opts: []serverOpt{withMail(stepDrop)}},
		{name: "closed at RCPT", opts: []serverOpt{withRcpt(carol, stepDrop)}},
		{name: "final dot 554", opts: []serverOpt{withData(replyStep(554, "5.6.0", "content refused"))}},
		{name: "closed in DATA", opts: []serverOpt{withData(stepDrop)}},
		{name: "DSN and SMTPUTF8", opts: []serverOpt{withDSN(), withSMTPUTF8()}, edit: dsnEnv},
		{name: "DSN, some refused", opts: []serverOpt{withDSN(), withSMTPUTF8(), withRcpt(bob, replyStep(550, "5.1.1", "no"))}, edit: dsnEnv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [2]string
			for k, pipe := range []bool{false, true} {
				opts := slices.Clone(tt.opts)
				if !pipe {
					opts = append(opts, withoutPipelining())
				}
				srv := newScriptServer(t, opts...)
				var mu sync.Mutex
				var writes []string
				h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), logWrites(&mu, &writes)))
				h.enqueue(tt.edit, bob, carol, dave)
				got[k] = outcome(h.attemptSafe(), srv)
				mu.Lock()
				envelopeWrites := 0
				for _, w := range writes {
					if strings.HasPrefix(w, "MAIL FROM:") {
						envelopeWrites++
						rcpts := strings.Count(w, "RCPT TO:")
						if pipe && (rcpts == 0 || envelopeWrites == 1 && rcpts != 3 || !strings.HasSuffix(w, "\r\nDATA\r\n")) {
							t.Errorf("pipelined, a transaction's envelope was not one write: %q", w)
						}
					}
					if !pipe && strings.Count(w, "\r\n") != 1 && !strings.HasSuffix(w, "\r\n.\r\n") {
						t.Errorf("without PIPELINING, a write of several commands: %q", w)
					}
				}
				mu.Unlock()
				if envelopeWrites == 0 {
					t.Errorf("pipelining %v: no MAIL written", pipe)
				}
			}
			if got[0] != got[1] {
				t.Errorf("results differ\nsequential:\n%s\npipelined:\n%s", got[0], got[1])
			}
			t.Logf("\n%s", got[1])
		})
	}
}

// TestPipelinedGroupInOneRead: the server reads MAIL, every RCPT and
// DATA in one read: they left in one write (RFC 2920).
func TestPipelinedGroupInOneRead(t *testing.T) {
	srv := newRawServer(t, []string{"8BITMIME"}, nil)
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, bob, carol, "dave@example.net")
	for _, r := range h.attemptSafe().Recipients {
		if r.Status != queue.StatusRelayed {
			t.Fatalf("%s: %s %v", r.Addr, r.Status, r.Reply)
		}
	}
	var group string
	for _, r := range srv.Reads() {
		if strings.Contains(r, "MAIL FROM:") {
			group = r
		}
	}
	want := "1: MAIL FROM:<alice@example.org> BODY=8BITMIME\r\nRCPT TO:<bob@example.net>\r\n" +
		"RCPT TO:<carol@example.net>\r\nRCPT TO:<dave@example.net>\r\nDATA\r\n"
	if group != want {
		t.Fatalf("the read with MAIL was %q, want the whole group %q (reads %q)", group, want, srv.Reads())
	}
}

// TestPipelinedDataAcceptedWithoutRecipients: RFC 2920 §3.1, "if the DATA
// command was accepted the client SMTP should send a single dot": a host
// that answers DATA 354 although it refused every RCPT gets a lone "."
// and no body; the session goes on (RSET, EHLO) and carries the next
// message.
func TestPipelinedDataAcceptedWithoutRecipients(t *testing.T) {
	// The first DATA is answered 354 by hand (the raw server would refuse
	// it, having accepted no RCPT); its lone dot then comes as a line.
	var mu sync.Mutex
	first := true
	srv := newRawServer(t, []string{"8BITMIME"}, func(conn int, cmd string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(cmd, "RCPT") && strings.Contains(cmd, "bob"):
			return "550 5.1.1 no such user", false
		case cmd == "DATA" && first:
			first = false
			return "354 go ahead", false
		case cmd == ".":
			return "554 5.5.1 no valid recipients", false
		}
		return "", false
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attemptSafe(), bob); r.Status != queue.StatusFailed || r.Reply.Code != 550 {
		t.Fatalf("bob: %s %v, want failed 550", r.Status, r.Reply)
	}
	h.enqueue(nil, carol)
	if r := rcpt(t, h.attemptSafe(), carol); r.Status != queue.StatusRelayed {
		t.Fatalf("carol: %s %v, want relayed", r.Status, r.Reply)
	}
	var verbs []string
	for _, c := range srv.Cmds() {
		verbs = append(verbs, strings.Fields(c)[1])
	}
	want := "EHLO MAIL RCPT DATA . RSET EHLO MAIL RCPT DATA"
	if got := strings.Join(verbs, " "); !strings.HasPrefix(got, want) {
		t.Fatalf("commands %q, want %q…", got, want)
	}
	if n, m := srv.Conns(), srv.Msgs(); n != 1 || len(m) != 1 || !strings.Contains(m[0].Body, "Hello, Bob.") {
		t.Fatalf("%d connections, messages %+v: want carol's message on the one connection", n, m)
	}
}

// TestPipelinedClosedAfterMAIL: the host answers MAIL and hangs up with
// the RCPT and DATA unanswered; every recipient stays pending, as without
// pipelining.
func TestPipelinedClosedAfterMAIL(t *testing.T) {
	for _, pipe := range []bool{true, false} {
		srv := newRawServer(t, []string{"8BITMIME"}, func(conn int, cmd string) (string, bool) {
			return "", strings.HasPrefix(cmd, "MAIL")
		})
		srv.noPipe.Store(!pipe)
		h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
		h.enqueue(nil, bob, carol)
		for _, r := range h.attemptSafe().Recipients {
			if r.Status != queue.StatusPending || r.Reply.String() != "451 4.4.2 connection dropped by host" {
				t.Errorf("pipelining %v: %s: %s %v, want pending, connection dropped", pipe, r.Addr, r.Status, r.Reply)
			}
		}
	}
}

// pipeServer is an SMTP server on 127.0.0.1 that offers PIPELINING and
// answers the commands of a group (MAIL to DATA) only once it has read
// DATA, through send: all at once, a byte per segment, a reply at a time,
// or anything else. A reply of "" to DATA means 354; the body is then
// read and answered 250.
func pipeServer(t *testing.T, send func(c net.Conn, replies []string)) string {
	t.Helper()
	return reviewListen(t, func(_ int, c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "220 pipe.test ESMTP\r\n")
		var group []string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "EHLO":
				fmt.Fprintf(c, "250-pipe.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
			case "MAIL":
				group = []string{"250 2.1.0 ok"}
			case "RCPT":
				group = append(group, "250 2.1.5 ok")
			case "DATA":
				send(c, append(group, "354 go ahead"))
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
				}
				fmt.Fprintf(c, "250 2.0.0 queued\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				fmt.Fprintf(c, "250 ok\r\n")
			}
		}
	})
}

// TestPipelinedReplyShapes: the group's replies arriving all at once, a
// byte per TCP segment, or one reply at a time slowly are all read in
// order, and the message is delivered.
func TestPipelinedReplyShapes(t *testing.T) {
	shapes := map[string]func(c net.Conn, replies []string){
		"all at once": func(c net.Conn, replies []string) {
			c.Write([]byte(strings.Join(replies, "\r\n") + "\r\n"))
		},
		"a byte per segment": func(c net.Conn, replies []string) {
			for _, b := range []byte(strings.Join(replies, "\r\n") + "\r\n") {
				c.Write([]byte{b})
				time.Sleep(100 * time.Microsecond)
			}
		},
		"a reply at a time, slowly": func(c net.Conn, replies []string) {
			for _, r := range replies {
				time.Sleep(30 * time.Millisecond)
				c.Write([]byte(r + "\r\n"))
			}
		},
	}
	for name, send := range shapes {
		t.Run(name, func(t *testing.T) {
			addr := pipeServer(t, send)
			h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = addr, GatewayTLSNone })
			h.enqueue(nil, bob, carol, "dave@example.net")
			for _, r := range h.attemptSafe().Recipients {
				if r.Status != queue.StatusRelayed || r.Reply.String() != "250 2.0.0 queued" {
					t.Errorf("%s: %s %v, want relayed", r.Addr, r.Status, r.Reply)
				}
			}
		})
	}
}

// TestPipelinedEndlessReplies: a reply that never ends, in lines or in one
// line, ends the attempt by the existing bounds (replyGuard's
// maxReplyBytes, the client's line limit), not the command timeout: every
// recipient pending, the connection closed.
func TestPipelinedEndlessReplies(t *testing.T) {
	endless := map[string]struct {
		start, unit string
		want        string
	}{
		"continuation lines": {"", "250-more\r\n", "reply longer than 32768 bytes"},
		"one line":           {"250 ", strings.Repeat("x", 1000), "too long a line"},
	}
	for name, tc := range endless {
		t.Run(name, func(t *testing.T) {
			addr := pipeServer(t, func(c net.Conn, replies []string) {
				c.Write([]byte("250 2.1.0 ok\r\n" + tc.start))
				for {
					if _, err := c.Write([]byte(tc.unit)); err != nil {
						return
					}
				}
			})
			h := newHarness(t, func(o *Options) {
				o.Gateway, o.GatewayTLS = addr, GatewayTLSNone
				o.Timeouts.Command = 30 * time.Second // the bound must come first
			})
			h.enqueue(nil, bob, carol)
			var env *queue.Envelope
			testutil.ReturnsWithin(t, 10*time.Second, "an attempt against an endless reply", func() { env = h.attemptSafe() })
			for _, r := range env.Recipients {
				if r.Status != queue.StatusPending || !strings.Contains(r.Reply.String(), tc.want) {
					t.Errorf("%s: %s %v, want pending, %q", r.Addr, r.Status, r.Reply, tc.want)
				}
			}
		})
	}
}

// TestPipelinedDoubledReply: a host that answers MAIL twice shifts every
// later reply of the group by one (RCPT bob would read the stale 250, RCPT
// carol bob's 550). A reply code that its command does not allow, or bytes
// waiting after DATA's 354, shows it: no verdict of the group is
// recorded, every recipient stays pending, no body goes.
func TestPipelinedDoubledReply(t *testing.T) {
	t.Run("shifted replies", func(t *testing.T) {
		srv := newRawServer(t, []string{"8BITMIME"}, func(conn int, cmd string) (string, bool) {
			switch {
			case strings.HasPrefix(cmd, "MAIL"):
				return "250 2.1.0 ok\r\n250 2.1.0 stale", false
			case strings.Contains(cmd, "bob"):
				return "550 5.1.1 no such user", false
			}
			return "", false
		})
		h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
		h.enqueue(nil, bob, carol)
		for _, r := range h.attemptSafe().Recipients {
			if r.Status != queue.StatusPending || r.Reply.String() != replyOutOfStep().String() {
				t.Errorf("%s: %s %v, want pending, out of step", r.Addr, r.Status, r.Reply)
			}
		}
		if m := srv.Msgs(); len(m) != 0 {
			t.Errorf("messages %+v, want none", m)
		}
	})
	t.Run("bytes after 354", func(t *testing.T) {
		// The stray reply comes in the same write as the 354.
		addr := pipeServer(t, func(c net.Conn, replies []string) {
			c.Write([]byte(strings.Join(replies, "\r\n") + "\r\n250 2.0.0 stray\r\n"))
		})
		h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = addr, GatewayTLSNone })
		h.enqueue(nil, bob, carol)
		for _, r := range h.attemptSafe().Recipients {
			if r.Status != queue.StatusPending || r.Reply.String() != replyOutOfStep().String() {
				t.Errorf("%s: %s %v, want pending, out of step", r.Addr, r.Status, r.Reply)
			}
		}
	})
}
