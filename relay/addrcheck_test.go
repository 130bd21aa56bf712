package relay

import (
	"strings"
	"testing"
)

// TestControlCharsInEnvelopeRefused (issue 8 item 6): NUL and the other
// control characters (C0, DEL) anywhere in a MAIL or RCPT address or in a
// parameter that edgerelay stores are refused with 501, and nothing with
// them is queued.
func TestControlCharsInEnvelopeRefused(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	for _, ctl := range []string{"\x00", "\x01", "\x1b", "\x7f", "\t"} {
		enh := "5.1.3"
		if ctl == "\t" {
			enh = "5." // go-smtp's path parser refuses white space first (5.5.2)
		}
		c.must(501, enh, "MAIL FROM:<alice%s@example.org>", ctl)
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(501, enh, "RCPT TO:<a@b.example%s@evil.example>", ctl)
		c.must(501, enh, "RCPT TO:<a%s@b.example>", ctl)
		// ORCPT is xtext: +00 is a NUL once decoded (RFC 3461 §4.2).
		c.must(501, "5.5.4", "RCPT TO:<r@example.net> ORCPT=rfc822;a+%02X@b.example", ctl[0])
		c.must(250, "", "RSET")
	}
	// SMTPUTF8 addresses: C1 controls and invalid UTF-8 too.
	c.must(250, "", "MAIL FROM:<%s> SMTPUTF8", alice)
	c.must(501, "5.1.3", "RCPT TO:<j\u0085rgen@example.net>")
	c.must(501, "5.1.3", "RCPT TO:<j\xffrgen@example.net>")
	c.must(250, "", "RCPT TO:<jürgen@example.net>")
	if code, msg := c.data(message(alice, "jürgen@example.net", "")); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	for _, m := range e.stored() {
		for _, rc := range m.env.Recipients {
			if strings.ContainsFunc(rc.Addr+rc.ORCPT, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("control character queued: %q %q", rc.Addr, rc.ORCPT)
			}
		}
	}
}
