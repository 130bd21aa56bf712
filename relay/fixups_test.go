package relay

import (
	"regexp"
	"strings"
	"testing"
)

// TestEmptyDateAndMessageIDReplaced (issue 8 item 29a): a Date or
// Message-ID field that is present but empty is replaced, not joined by a
// second one (RFC 5322 §3.6 allows exactly one of each).
func TestEmptyDateAndMessageIDReplaced(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	for _, hdr := range []string{
		"Date:\r\nMessage-ID:\r\n",
		"Date:   \r\nMessage-ID: \r\n \r\n",
		"date:\r\nmessage-id:\t\r\n",
	} {
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(250, "", "RCPT TO:<r@example.net>")
		if code, msg := c.data("From: <" + alice + ">\r\n" + hdr + "Subject: x\r\n\r\nbody\r\n"); code != 250 {
			t.Fatalf("%q: %d %s", hdr, code, msg)
		}
	}
	dateRe := regexp.MustCompile(`(?im)^date:[ \t]*(.*)\r$`)
	idRe := regexp.MustCompile(`(?im)^message-id:[ \t]*(.*)\r$`)
	for id, m := range e.stored() {
		head, _, _ := strings.Cut(m.body, "\r\n\r\n")
		head = strings.ReplaceAll(head, "\r\n ", " ") // unfold
		head += "\r\n"
		dates, ids := dateRe.FindAllStringSubmatch(head, -1), idRe.FindAllStringSubmatch(head, -1)
		if len(dates) != 1 || strings.TrimSpace(dates[0][1]) == "" {
			t.Errorf("%s: Date fields %q, want exactly one, not empty:\n%s", id, dates, head)
		}
		if len(ids) != 1 || strings.TrimSpace(ids[0][1]) == "" {
			t.Errorf("%s: Message-ID fields %q, want exactly one, not empty:\n%s", id, ids, head)
		}
		if m.env.MessageID == "" || len(ids) == 1 && strings.TrimSpace(ids[0][1]) != m.env.MessageID {
			t.Errorf("%s: envelope Message-ID %q, header %q", id, m.env.MessageID, ids)
		}
	}
}

// TestUTF8HeloNameKeptOutOfASCIIMessage (issue 8 item 29b): a client's
// UTF-8 EHLO name must not put 8-bit text into the Received field of a
// message that goes to the next hop without SMTPUTF8. The name is written
// as an A-label (RFC 5890) when it is a valid IDN, or with its non-ASCII
// octets replaced.
func TestUTF8HeloNameKeptOutOfASCIIMessage(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	for _, helo := range []string{"bücher.example", "b\xffd.example"} {
		c.must(250, "", "EHLO %s", helo)
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(250, "", "RCPT TO:<r@example.net>")
		if code, msg := c.data(message(alice, "r@example.net", "")); code != 250 {
			t.Fatalf("EHLO %q: %d %s", helo, code, msg)
		}
	}
	seen := map[string]bool{}
	for id, m := range e.stored() {
		if !m.env.SMTPUTF8 && !isASCII(m.body) {
			t.Errorf("%s: 8-bit Received in a message queued without SMTPUTF8:\n%s", id, m.body[:strings.Index(m.body, "\r\n\tby")])
		}
		for _, s := range []string{"from xn--bcher-kva.example ", "from b_d.example "} {
			if strings.Contains(m.body, s) {
				seen[s] = true
			}
		}
	}
	if len(seen) != 2 {
		t.Errorf("Received names seen: %v, want the A-label and the escaped name", seen)
	}
}
