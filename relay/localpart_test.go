package relay

import (
	"slices"
	"testing"
)

// TestQuotedLocalPartsAtRcpt (issue 8 item 7): a quoted local part that
// contains '@' is refused with 553 5.1.3, so "bob@x> NOTIFY=NEVER"@y can
// never be stored as a string that a later writer splits differently; a
// domain that is not a domain is refused too; other quoted local parts are
// kept, stored without their quoting (the worker quotes them again,
// outbound/wireaddr.go). Before the fix the first RCPT got 250 and
// "bob@x> NOTIFY=NEVER@y.example" was queued.
func TestQuotedLocalPartsAtRcpt(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRecipients = 20 })
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	for _, bad := range []string{
		`RCPT TO:<"bob@x> NOTIFY=NEVER"@y.example>`,
		`RCPT TO:<"a@b"@y.example>`,
		`RCPT TO:<a@b@y.example>`,
		`RCPT TO:<"x\@y"@y.example>`,
	} {
		c.must(553, "5.1.3", "%s", bad)
	}
	for _, bad := range []string{
		`RCPT TO:<bob@y"z.example>`,
		`RCPT TO:<bob@y.example.>`,
		`RCPT TO:<bob@y..example>`,
		`RCPT TO:<bob@[192.0.2.1>`,
		`RCPT TO:<bob@y,z.example>`,
		`RCPT TO:<bob@[x]>`,
		`RCPT TO:<bob@[tag:x]>`,
		`RCPT TO:<bob@[999.0.2.1]>`,
		`RCPT TO:<bob@[IPv6:192.0.2.1]>`,
		`RCPT TO:<bob@[2001:db8::1]>`,
	} {
		c.must(553, "5.1.3", "%s", bad)
	}
	good := map[string]string{
		`RCPT TO:<"john smith"@y.example>`:  `john smith@y.example`,
		`RCPT TO:<"a\"b\\c"@y.example>`:     `a"b\c@y.example`,
		`RCPT TO:<"a>b<c"@y.example>`:       `a>b<c@y.example`,
		`RCPT TO:<"bob.smith"@y.example>`:   `bob.smith@y.example`,
		`RCPT TO:<bob@[192.0.2.1]>`:         `bob@[192.0.2.1]`,
		`RCPT TO:<bob@[IPv6:2001:db8::1]>`:  `bob@[IPv6:2001:db8::1]`,
		`RCPT TO:<bob@mail_host.y.example>`: `bob@mail_host.y.example`,
	}
	var want []string
	for cmd, stored := range good {
		c.must(250, "", "%s", cmd)
		want = append(want, stored)
	}
	if code, msg := c.data(message(alice, "bob@example.net", "")); code != 250 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	// The sender is checked the same way, before sender alignment.
	c.must(553, "5.1.7", `MAIL FROM:<"alice@x"@example.org>`)
	c.must(553, "5.1.7", `MAIL FROM:<alice@exa"mple.org>`)
	var got []string
	for _, m := range e.stored() {
		for _, rc := range m.env.Recipients {
			got = append(got, rc.Addr)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stored recipients\n%q\nwant\n%q", got, want)
	}
}
