package relay

import (
	"strconv"
	"strings"
	"testing"
)

// TestSizeBoundaryCountsFixups (issue 8 item 28): a message of exactly the
// size that EHLO advertises is accepted, and what is stored — with the
// Received, Date and Message-ID fields added — still fits in
// MaxMessageBytes, so a next hop advertising the same SIZE takes it. One
// byte more is refused with 552 5.3.4.
func TestSizeBoundaryCountsFixups(t *testing.T) {
	const limit = 64 << 10
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = limit })
	c := e.authed(alice, alicePW)
	caps := c.must(250, "", "EHLO client.test")
	size := 0
	for _, l := range strings.Split(caps, "\n") {
		if v, ok := strings.CutPrefix(l, "SIZE "); ok {
			size, _ = strconv.Atoi(v)
		}
	}
	if size <= 0 || size > limit {
		t.Fatalf("SIZE %d advertised, want 1..%d:\n%s", size, limit, caps)
	}
	// A message with no Date or Message-ID, so that all fix-ups are added,
	// and a long HELO name and recipient, so that Received is long.
	c.must(250, "", "EHLO %s", strings.Repeat("h", 250)+".example")
	rcpt := strings.Repeat("r", 60) + "@" + strings.Repeat("d", 180) + ".example"
	msgOf := func(n int) string {
		head := "From: <" + alice + ">\r\nSubject: boundary\r\n\r\n"
		body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", (n-len(head))/80)
		pad := n - len(head) - len(body)
		if pad > 0 {
			body += strings.Repeat("y", max(pad-2, 0)) + "\r\n"[:min(pad, 2)]
		}
		return head + body
	}
	exact := msgOf(size)
	if len(exact) != size {
		t.Fatalf("built %d bytes, want %d", len(exact), size)
	}
	c.must(250, "", "MAIL FROM:<%s> SIZE=%d", alice, size)
	c.must(250, "", "RCPT TO:<%s>", rcpt)
	code, msg := c.bdat(exact)
	if code != 250 {
		t.Fatalf("message of exactly SIZE=%d octets: %d %s", size, code, msg)
	}
	for id, m := range e.stored() {
		if m.env.Size > limit || len(m.body) > limit {
			t.Fatalf("%s: stored %d octets (envelope says %d) > RELAY_MAX_MESSAGE_BYTES %d: a next hop with SIZE %d refuses it after our 250",
				id, len(m.body), m.env.Size, limit, limit)
		}
	}
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", rcpt)
	if code, msg := c.bdat(msgOf(size + 1)); code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Fatalf("one octet over SIZE: %d %s, want 552 5.3.4", code, msg)
	}
}
