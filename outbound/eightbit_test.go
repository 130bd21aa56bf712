package outbound

import (
	"context"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// enqueueBody queues body from alice to rcpts, with env adjusted by edit.
func (h *harness) enqueueBody(body string, edit func(*queue.Envelope), rcpts ...string) string {
	h.t.Helper()
	env := &queue.Envelope{From: "alice@example.org", User: "alice", Size: int64(len(body))}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.Recipient{Addr: r, Status: queue.StatusPending})
	}
	if edit != nil {
		edit(env)
	}
	id, err := h.q.Enqueue(context.Background(), env, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

const eightBitBody = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: caf\xc3\xa9\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nVoil\xc3\xa0.\r\n"

// TestEightBitBodyToHopWithout8BITMIME: RFC 6152 §3 forbids relaying 8-bit
// data to a server that does not offer 8BITMIME unless it is converted;
// edgerelay does not convert arbitrary MIME, so the recipients fail with
// 554 5.6.3 "conversion required but not supported" (RFC 3463 §3.7) and
// nothing is sent (issue 8 item 29c).
func TestEightBitBodyToHopWithout8BITMIME(t *testing.T) {
	srv := newRawServer(t, nil, nil) // offers no 8BITMIME
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueueBody(eightBitBody, func(e *queue.Envelope) { e.Body8Bit = true }, bob)
	r := rcpt(t, h.attemptSafe(), bob)
	if r.Status != queue.StatusFailed || r.Reply.Code != 554 || r.Reply.Enhanced != "5.6.3" {
		t.Fatalf("status %s reply %v, want failed with 554 5.6.3", r.Status, r.Reply)
	}
	if m := srv.Msgs(); len(m) != 0 {
		t.Fatalf("the hop got %d messages with an 8-bit body it did not ask for", len(m))
	}
	for _, c := range srv.Cmds() {
		if strings.Contains(c, "MAIL") {
			t.Errorf("a transaction was started: %q", c)
		}
	}
}

// TestEightBitDeclaredButSevenBitBody: a client may declare BODY=8BITMIME
// for a body that is ASCII; such a body goes to any hop unchanged.
func TestEightBitDeclaredButSevenBitBody(t *testing.T) {
	srv := newRawServer(t, nil, nil)
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueue(func(e *queue.Envelope) { e.Body8Bit = true }, bob)
	if r := rcpt(t, h.attemptSafe(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v, want relayed", r.Status, r.Reply)
	}
	if m := srv.Msgs(); len(m) != 1 || strings.Contains(m[0].Mail, "BODY=") {
		t.Fatalf("messages %+v, want one without a BODY parameter", m)
	}
}

// TestEightBitBodyToHopWith8BITMIME: a hop that offers 8BITMIME gets the
// body unchanged, declared with BODY=8BITMIME (RFC 6152 §2).
func TestEightBitBodyToHopWith8BITMIME(t *testing.T) {
	srv := newRawServer(t, []string{"8BITMIME"}, nil)
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	h.enqueueBody(eightBitBody, func(e *queue.Envelope) { e.Body8Bit = true }, bob)
	if r := rcpt(t, h.attemptSafe(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v, want relayed", r.Status, r.Reply)
	}
	if m := srv.Msgs(); len(m) != 1 || !strings.Contains(m[0].Mail, "BODY=8BITMIME") || m[0].Body != eightBitBody {
		t.Fatalf("messages %+v, want the body unchanged with BODY=8BITMIME", m)
	}
}
