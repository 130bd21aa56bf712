package outbound

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

// TestAttackPipelined421MidGroup: a host that refuses bob, then answers
// carol 421 and hangs up, with dave's RCPT and DATA unanswered: bob keeps
// his own 550, carol and dave stay pending, no body goes.
func TestAttackPipelined421MidGroup(t *testing.T) {
	addr := pipeServer(t, func(c net.Conn, replies []string) {
		c.Write([]byte("250 2.1.0 ok\r\n550 5.1.1 bob: no such user\r\n421 4.3.2 closing\r\n"))
		c.Close()
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = addr, GatewayTLSNone })
	dave := "dave@example.net"
	h.enqueue(nil, bob, carol, dave)
	env := h.attemptSafe()
	want := map[string]string{
		bob:   "failed 550 5.1.1 bob: no such user",
		carol: "pending 421 4.3.2 closing",
		dave:  "pending 421 4.3.2 closing",
	}
	for _, r := range env.Recipients {
		if got := string(r.Status) + " " + r.Reply.String(); got != want[r.Addr] {
			t.Errorf("%s: %s, want %s", r.Addr, got, want[r.Addr])
		}
	}
}

// TestAttackPipelinedHostDoesNotRead: a host that stops reading after
// EHLO, with a receive buffer as small as Linux allows, and a client whose
// own receive buffer is small too, against a transaction of several 16 KiB
// groups: the write cannot finish, and the attempt must still end by the
// timeouts (Timeouts.Command, Timeouts.DataBlock through timedConn), with
// every recipient pending.
func TestAttackPipelinedHostDoesNotRead(t *testing.T) {
	deaf := make(chan struct{})
	addr := reviewListen(t, func(_ int, c net.Conn) {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(1)
		}
		br := bufio.NewReader(c)
		fmt.Fprintf(c, "220 deaf.test ESMTP\r\n")
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		fmt.Fprintf(c, "250-deaf.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
		<-deaf // never reads again
	})
	t.Cleanup(func() { close(deaf) }) // runs before reviewListen's
	h := newHarness(t, func(o *Options) {
		o.Gateway, o.GatewayTLS = addr, GatewayTLSNone
		o.Timeouts.Command, o.Timeouts.DataBlock = 300*time.Millisecond, 300*time.Millisecond
		dial := o.Dial
		o.Dial = func(ctx context.Context, network, a string) (net.Conn, error) {
			c, err := dial(ctx, network, a)
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetReadBuffer(1)
				tc.SetWriteBuffer(1)
			}
			return c, err
		}
	})
	h.enqueue(nil, longRcpts(400)...)
	var env *queue.Envelope
	testutil.ReturnsWithin(t, 10*time.Second, "an attempt against a host that does not read", func() { env = h.attemptSafe() })
	for _, r := range env.Recipients {
		if r.Status != queue.StatusPending || !strings.HasPrefix(r.Reply.String(), "451 4.4.2") {
			t.Errorf("%s: %s %v, want pending 451 4.4.2", r.Addr[:4], r.Status, r.Reply)
			break
		}
	}
}

// TestAttackPipelinedVerboseHostSmallBuffer: RFC 2920's deadlock, as near
// as a host can bring it alone. The host answers each command as it reads
// it, with long multi-line replies (about 1.5 KiB each, a 16 KiB group of
// short RCPTs draws about 900 KiB), from a receive buffer as small as
// Linux allows, so it soon blocks writing replies the client does not
// read while it writes the group. The group must still fit in the
// client's send buffer and the host's receive buffer: the write ends, the
// replies are read, and every recipient is relayed.
func TestAttackPipelinedVerboseHostSmallBuffer(t *testing.T) {
	long := strings.Repeat("x", 500)
	verbose := func(code string) string {
		return code + "-" + long + "\r\n" + code + "-" + long + "\r\n" + code + " " + long + "\r\n"
	}
	addr := reviewListen(t, func(_ int, c net.Conn) {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(1)
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReaderSize(c, 16)
		fmt.Fprintf(c, "220 verbose.test ESMTP\r\n")
		for line, err := br.ReadString('\n'); err == nil; line, err = br.ReadString('\n') {
			switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
			case "EHLO":
				fmt.Fprintf(c, "250-verbose.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n")
			case "DATA":
				fmt.Fprintf(c, "354 go ahead\r\n")
				for l := ""; l != ".\r\n"; {
					if l, err = br.ReadString('\n'); err != nil {
						return
					}
				}
				fmt.Fprintf(c, "250 2.0.0 queued\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				if _, err := c.Write([]byte(verbose("250"))); err != nil {
					return
				}
			}
		}
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = addr, GatewayTLSNone })
	var rcpts []string
	for i := range 700 {
		rcpts = append(rcpts, fmt.Sprintf("r%d@x.example", i))
	}
	h.enqueue(nil, rcpts...)
	var env *queue.Envelope
	testutil.ReturnsWithin(t, 15*time.Second, "an attempt against a verbose host", func() { env = h.attemptSafe() })
	for _, r := range env.Recipients {
		if r.Status != queue.StatusRelayed {
			t.Errorf("%s: %s %v, want relayed", r.Addr, r.Status, r.Reply)
			break
		}
	}
}
