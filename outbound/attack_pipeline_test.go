package outbound

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Attacks on the RFC 2920 pipelined envelope (pipeline.go, go-smtp patch
// 5) by a host whose replies do not match the commands it was sent.

// TestAttackPipelinedMailReplyOutOfStep: the group's replies are out of
// step at MAIL. A host that does not answer MAIL (bob's 550 is read as
// MAIL's, carol's 250 as bob's, DATA's 354 as carol's), or one whose
// stale 550 arrives first (every reply one behind, DATA read 250): a
// reply code its command does not allow shows it, and no recipient may
// fail for good on a reply that was another command's. Without
// pipelining the first case is a timeout at MAIL (pending), the second
// cannot be told.
func TestAttackPipelinedMailReplyOutOfStep(t *testing.T) {
	cases := map[string]func(replies []string) string{
		"MAIL not answered": func(replies []string) string {
			// replies: MAIL, bob, carol, DATA; bob is refused.
			return "550 5.1.1 bob: no such user\r\n250 2.1.5 ok\r\n354 go ahead\r\n"
		},
		"stale 550 before MAIL's reply": func(replies []string) string {
			return "550 5.7.1 stale reply\r\n" + strings.Join(replies, "\r\n") + "\r\n"
		},
	}
	for name, reply := range cases {
		t.Run(name, func(t *testing.T) {
			addr := pipeServer(t, func(c net.Conn, replies []string) {
				c.Write([]byte(reply(replies)))
			})
			h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = addr, GatewayTLSNone })
			h.enqueue(nil, bob, carol)
			for _, r := range h.attemptSafe().Recipients {
				if r.Status != queue.StatusPending {
					t.Errorf("%s: %s %v, want pending (the replies are out of step)", r.Addr, r.Status, r.Reply)
				}
			}
		})
	}
}

// bufferingServer is an RFC 2920 §3.2 server that buffers its replies and
// sends them in one write when it has no more input to read. It offers
// PIPELINING; MAIL is answered by mail (several replies allowed), RCPT by
// rcpt(addr), DATA 354 (the body is read and answered 250) when a RCPT
// was accepted, else 554. It records the recipients it accepted.
type bufferingServer struct {
	Addr string
	mu   sync.Mutex
	msgs int
}

func newBufferingServer(t *testing.T, mail string, rcpt func(cmd string) string) *bufferingServer {
	t.Helper()
	s := &bufferingServer{}
	s.Addr = reviewListen(t, func(_ int, c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReaderSize(c, 64<<10)
		var out strings.Builder
		say := func(l string) { out.WriteString(l + "\r\n") }
		flush := func() bool {
			if out.Len() == 0 || br.Buffered() > 0 {
				return true
			}
			_, err := c.Write([]byte(out.String()))
			out.Reset()
			return err == nil
		}
		say("220 buffer.test ESMTP")
		flush()
		accepted := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			cmd := strings.TrimRight(line, "\r\n")
			switch verb := strings.ToUpper(strings.Fields(cmd + " x")[0]); verb {
			case "EHLO":
				say("250-buffer.test\r\n250-8BITMIME\r\n250 PIPELINING")
			case "MAIL":
				accepted = 0
				say(mail)
			case "RCPT":
				r := rcpt(cmd)
				if strings.HasPrefix(r, "25") {
					accepted++
				}
				say(r)
			case "DATA":
				if accepted == 0 {
					say("554 5.5.1 no valid recipients")
					break
				}
				say("354 go ahead")
				if _, err := c.Write([]byte(out.String())); err != nil {
					return
				}
				out.Reset()
				// The body, up to the line with the final dot.
				for l := ""; l != ".\r\n"; {
					if l, err = br.ReadString('\n'); err != nil {
						return
					}
				}
				s.mu.Lock()
				s.msgs++
				s.mu.Unlock()
				say("250 2.0.0 queued")
			case "QUIT":
				say("221 bye")
				flush()
				return
			default:
				say("250 2.0.0 ok")
			}
			if !flush() {
				return
			}
		}
	})
	return s
}

func (s *bufferingServer) Msgs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs
}

// longRcpts returns n recipients with long domains (about 215 bytes per
// RCPT line), so that a transaction's commands need several 16 KiB groups.
func longRcpts(n int) []string {
	dom := strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + ".example"
	var r []string
	for i := range n {
		r = append(r, fmt.Sprintf("u%d@%s", i, dom))
	}
	return r
}

// TestAttackPipelinedDoubledReplyAcrossGroups: a transaction of more than
// 16 KiB of commands goes in several groups, each written after the
// replies to the one before were read. A host that answers MAIL twice
// shifts the first group's replies by one (u6 reads u5's 550); the reply
// left over is waiting when the second group is written, and replyGuard
// fails that write (errOutOfStep). That shows the first group's replies
// were out of step: no recipient may keep a verdict from them (without
// pipelining the guard fails the first RCPT's write: all pending).
func TestAttackPipelinedDoubledReplyAcrossGroups(t *testing.T) {
	rcpts := longRcpts(150)
	srv := newBufferingServer(t, "250 2.1.0 ok\r\n250 2.1.0 ok again", func(cmd string) string {
		if strings.Contains(cmd, "<u5@") {
			return "550 5.1.1 u5: no such user"
		}
		return "250 2.1.5 ok"
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, rcpts...)
	env := h.attemptSafe()
	for _, r := range env.Recipients {
		if r.Status != queue.StatusPending {
			t.Errorf("%s: %s %v, want pending (the replies are out of step)", r.Addr[:4], r.Status, r.Reply)
		}
	}
	if n := srv.Msgs(); n != 0 {
		t.Errorf("%d messages, want none", n)
	}
}

// TestAttackPipelinedManyGroupsInStep: the same transaction against a host
// that answers in step: every refused recipient gets its own reply, every
// other one is relayed, in one message (the groups' replies map to their
// commands across group boundaries).
func TestAttackPipelinedManyGroupsInStep(t *testing.T) {
	rcpts := longRcpts(230)
	refused := map[int]bool{0: true, 5: true, 75: true, 76: true, 77: true, 150: true, 151: true, 229: true}
	srv := newBufferingServer(t, "250 2.1.0 ok", func(cmd string) string {
		var i int
		fmt.Sscanf(cmd[strings.Index(cmd, "<u")+2:], "%d@", &i)
		if refused[i] {
			return fmt.Sprintf("550 5.1.1 u%d: no such user", i)
		}
		return fmt.Sprintf("250 2.1.5 u%d ok", i)
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, rcpts...)
	env := h.attemptSafe()
	for i, r := range env.Recipients {
		switch {
		case refused[i]:
			want := fmt.Sprintf("550 5.1.1 u%d: no such user", i)
			if r.Status != queue.StatusFailed || r.Reply.String() != want {
				t.Errorf("u%d: %s %v, want failed %q", i, r.Status, r.Reply, want)
			}
		case r.Status != queue.StatusRelayed:
			t.Errorf("u%d: %s %v, want relayed", i, r.Status, r.Reply)
		}
	}
	if n := srv.Msgs(); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// TestAttackPipelinedBytesBeforeLoneDot: every RCPT refused, DATA
// accepted (354) and a reply to no command right behind it: the lone dot's
// write finds it waiting (errOutOfStep). The host answered more commands
// than it was sent, so the refusals may be other commands' replies: every
// recipient stays pending, and the connection is not reused.
func TestAttackPipelinedBytesBeforeLoneDot(t *testing.T) {
	addr := pipeServer(t, func(c net.Conn, replies []string) {
		c.Write([]byte("250 2.1.0 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n354 go ahead\r\n250 2.0.0 stray\r\n"))
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = addr, GatewayTLSNone })
	h.enqueue(nil, bob, carol)
	for _, r := range h.attemptSafe().Recipients {
		if r.Status != queue.StatusPending || r.Reply.String() != replyOutOfStep().String() {
			t.Errorf("%s: %s %v, want pending, out of step", r.Addr, r.Status, r.Reply)
		}
	}
	if sc := h.w.gatewayHop().pool.get(); sc != nil {
		sc.close()
		t.Error("the connection was pooled, want it closed")
	}
}
