package outbound

import (
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// TestPooledConnectionDeadAfterRSET: the gateway answers RSET and then hangs
// up. go-smtp's Reset clears its EHLO state, so on reuse the next
// Extension("SMTPUTF8") sends EHLO into the dead connection and reads the
// failure as "not offered": the SMTPUTF8 message failed for good with
// 553 5.6.7. A connection whose EHLO failed must be closed, never pooled,
// and the message go out on a fresh one (issue 8 item 23).
func TestPooledConnectionDeadAfterRSET(t *testing.T) {
	srv := newRawServer(t, []string{"SMTPUTF8", "8BITMIME"}, func(conn int, cmd string) (string, bool) {
		switch {
		case conn == 1 && strings.HasPrefix(cmd, "RCPT"):
			return "550 5.1.1 no such user", false
		case conn == 1 && cmd == "RSET":
			return "250 2.0.0 ok", true // and hang up
		}
		return "", false
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attemptSafe(), bob); r.Status != queue.StatusFailed {
		t.Fatalf("first message: status %s reply %v, want failed (550)", r.Status, r.Reply)
	}
	h.enqueue(func(e *queue.Envelope) { e.SMTPUTF8 = true }, carol)
	r := rcpt(t, h.attemptSafe(), carol)
	if r.Status != queue.StatusRelayed {
		t.Fatalf("SMTPUTF8 message after the dead pooled connection: status %s reply %v, want relayed on a fresh connection",
			r.Status, r.Reply)
	}
	if n := srv.Conns(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
	if m := srv.Msgs(); len(m) != 1 || m[0].Conn != 2 || !strings.Contains(m[0].Mail, "SMTPUTF8") {
		t.Errorf("messages %+v, want one, with SMTPUTF8, on connection 2", m)
	}
}

// TestPooledConnectionDeadAtRCPT: a pooled connection that turns out dead
// at the first RCPT (after MAIL went through) is replaced by a fresh one in
// the same attempt, as one that dies at MAIL is (issue 8 item 23).
func TestPooledConnectionDeadAtRCPT(t *testing.T) {
	rcpts := 0
	srv := newRawServer(t, []string{"8BITMIME"}, func(conn int, cmd string) (string, bool) {
		if conn == 1 && strings.HasPrefix(cmd, "RCPT") {
			rcpts++
			if rcpts == 2 {
				return "421 4.4.2 idle too long, closing", true
			}
		}
		return "", false
	})
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attemptSafe(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("first message: status %s reply %v", r.Status, r.Reply)
	}
	h.enqueue(nil, carol)
	if r := rcpt(t, h.attemptSafe(), carol); r.Status != queue.StatusRelayed {
		t.Fatalf("second message: status %s reply %v, want relayed on a fresh connection", r.Status, r.Reply)
	}
	if n := srv.Conns(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}
