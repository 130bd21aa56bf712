package outbound

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/queue"
)

// What the relay stores for what a client wrote: go-smtp's server hands the
// session the local part with its quoting removed (issue 8 item 7). The
// relay now refuses local parts with '@' (relay/localpart.go), but a queue
// written before that, or by another front end, can still hold them.
var quotedCases = []struct {
	name, client, stored, wire string
}{
	{"injection", `"bob@x> NOTIFY=NEVER"@y.example`, `bob@x> NOTIFY=NEVER@y.example`, `"bob@x> NOTIFY=NEVER"@y.example`},
	{"quoted-space", `"john smith"@y.example`, `john smith@y.example`, `"john smith"@y.example`},
	{"backslash-escapes", `"a\"b\\c"@y.example`, `a"b\c@y.example`, `"a\"b\\c"@y.example`},
	{"quoted-at", `"a@b"@y.example`, `a@b@y.example`, `"a@b"@y.example`},
	{"quoted-angle", `"a>b<c"@y.example`, `a>b<c@y.example`, `"a>b<c"@y.example`},
	{"double-dot", `"a..b"@y.example`, `a..b@y.example`, `"a..b"@y.example`},
	{"needless-quotes", `"bob.smith"@y.example`, `bob.smith@y.example`, `bob.smith@y.example`},
	{"utf8", `"jöhn dœ"@y.example`, `jöhn dœ@y.example`, `"jöhn dœ"@y.example`},
}

// TestQuotedLocalPartOnTheWire: every stored address reaches the next hop
// as one RCPT of the same mailbox, quoted per RFC 5321 §4.1.2, with no
// parameter the sender did not ask for. Before the fix the hop got
// "RCPT TO:<bob@x> NOTIFY=NEVER@y.example>": recipient bob@x with a NOTIFY
// parameter, at a domain other than the one the message was routed by.
func TestQuotedLocalPartOnTheWire(t *testing.T) {
	srv := newRawServer(t, []string{"8BITMIME", "SMTPUTF8"}, nil)
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	var stored, want []string
	for _, c := range quotedCases {
		stored = append(stored, c.stored)
		want = append(want, "RCPT TO:<"+c.wire+">")
	}
	h.enqueue(func(e *queue.Envelope) { e.From = `alice smith@example.org`; e.SMTPUTF8 = true }, stored...)
	env := h.attemptSafe()
	for _, c := range quotedCases {
		if r := rcpt(t, env, c.stored); r.Status != queue.StatusRelayed {
			t.Errorf("%s: status %s reply %v, want relayed", c.name, r.Status, r.Reply)
		}
	}
	var rcpts []string
	var mail string
	for _, line := range srv.Cmds() {
		_, cmd, _ := strings.Cut(line, ": ")
		switch {
		case strings.HasPrefix(cmd, "RCPT "):
			rcpts = append(rcpts, cmd)
		case strings.HasPrefix(cmd, "MAIL "):
			mail = cmd
		}
	}
	if !strings.HasPrefix(mail, `MAIL FROM:<"alice smith"@example.org>`) {
		t.Errorf("MAIL line %q, want the sender quoted", mail)
	}
	if len(rcpts) != len(want) {
		t.Fatalf("the hop got %d RCPT commands, want %d:\n%s", len(rcpts), len(want), strings.Join(rcpts, "\n"))
	}
	for i, line := range rcpts {
		if line != want[i] {
			t.Errorf("%s: the hop got %q, want %q", quotedCases[i].name, line, want[i])
			continue
		}
		path := strings.TrimPrefix(line, "RCPT TO:")
		local, domain, rest, err := parsePathStrict(path)
		if err != nil || rest != "" {
			t.Errorf("%s: %q does not parse as one RFC 5321 Path (%v, rest %q)", quotedCases[i].name, path, err, rest)
			continue
		}
		if got := local + "@" + domain; got != quotedCases[i].stored {
			t.Errorf("%s: the hop reads mailbox %q, stored %q", quotedCases[i].name, got, quotedCases[i].stored)
		}
	}
}

// TestQuotedLocalPartReadBackByGoSMTP: a go-smtp next hop (the server the
// relay itself runs) reads every rendered address back as the stored one.
func TestQuotedLocalPartReadBackByGoSMTP(t *testing.T) {
	gw := newScriptServer(t, withSMTPUTF8())
	h := newHarness(t, gatewayOpts(gw, GatewayTLSNone))
	var stored []string
	for _, c := range quotedCases {
		stored = append(stored, c.stored)
	}
	h.enqueue(func(e *queue.Envelope) { e.From = `a"b@example.org`; e.SMTPUTF8 = true }, stored...)
	h.attemptSafe()
	got := gw.Received()
	if len(got) != 1 {
		t.Fatalf("the hop got %d messages, want 1", len(got))
	}
	if got[0].From != `a"b@example.org` {
		t.Errorf("sender read back as %q", got[0].From)
	}
	if g, w := strings.Join(got[0].Rcpts, "|"), strings.Join(stored, "|"); g != w {
		t.Errorf("recipients read back as\n%s\nwant\n%s", g, w)
	}
}

// TestQuotedLocalPartRoutesByWireDomain: in MX mode the message goes to the
// MX of the domain after the last '@', which is the domain the hop sees.
// Before the fix the MX of y.example got "RCPT TO:<bob@x.example> ...".
func TestQuotedLocalPartRoutesByWireDomain(t *testing.T) {
	mxY := newRawServer(t, nil, nil)
	mxX := newRawServer(t, nil, nil)
	r := &fakeResolver{
		mx: map[string][]*net.MX{
			"y.example": {{Host: "mx.y.example", Pref: 10}},
			"x.example": {{Host: "mx.x.example", Pref: 10}},
		},
		ips: map[string][]string{"mx.y.example": {"192.0.2.20"}, "mx.x.example": {"192.0.2.10"}},
	}
	h := mxHarness(t, r, nil)
	h.mu.Lock()
	h.dialMap["192.0.2.20:25"] = mxY.Addr
	h.dialMap["192.0.2.10:25"] = mxX.Addr
	h.mu.Unlock()
	const stored = `bob@x.example> NOTIFY=NEVER@y.example`
	h.enqueue(nil, stored)
	if rc := rcpt(t, h.attemptSafe(), stored); rc.Status != queue.StatusRelayed || !strings.HasPrefix(rc.RemoteMTA, "mx.y.example") {
		t.Fatalf("status %s remote %q reply %v", rc.Status, rc.RemoteMTA, rc.Reply)
	}
	if mxX.Conns() != 0 {
		t.Errorf("the MX of x.example was contacted")
	}
	var rcpts []string
	for _, line := range mxY.Cmds() {
		if _, cmd, _ := strings.Cut(line, ": "); strings.HasPrefix(cmd, "RCPT ") {
			rcpts = append(rcpts, cmd)
		}
	}
	if len(rcpts) != 1 || rcpts[0] != `RCPT TO:<"bob@x.example> NOTIFY=NEVER"@y.example>` {
		t.Fatalf("the MX of y.example got %q, want one RCPT for the quoted mailbox at y.example", rcpts)
	}
}

// TestUnwritableAddressFailsPermanently: an address that RFC 5321 cannot
// represent is never written; its recipient fails with 553 5.1.3 (a sender
// with 553 5.1.7 for every recipient), and nothing is dialled for it.
func TestUnwritableAddressFailsPermanently(t *testing.T) {
	srv := newRawServer(t, nil, nil)
	h := newHarness(t, func(o *Options) { o.Gateway, o.GatewayTLS = srv.Addr, GatewayTLSNone })
	const bad1, bad2 = `bob@y.example>`, `bob@[192.0.2.1`
	h.enqueue(nil, bad1, bob, bad2)
	env := h.attemptSafe()
	for _, a := range []string{bad1, bad2} {
		if r := rcpt(t, env, a); r.Status != queue.StatusFailed || r.Reply.Code != 553 || r.Reply.Enhanced != "5.1.3" {
			t.Errorf("%q: status %s reply %v, want failed 553 5.1.3", a, r.Status, r.Reply)
		}
	}
	if r := rcpt(t, env, bob); r.Status != queue.StatusRelayed {
		t.Errorf("%s: status %s reply %v, want relayed", bob, r.Status, r.Reply)
	}
	for _, c := range srv.Cmds() {
		if strings.Contains(c, "RCPT") && !strings.Contains(c, "<"+bob+">") {
			t.Errorf("written to the hop: %q", c)
		}
	}

	h.enqueue(func(e *queue.Envelope) { e.From = "alice@example.org bob" }, bob)
	n := srv.Conns()
	if r := rcpt(t, h.attemptSafe(), bob); r.Status != queue.StatusFailed || r.Reply.Code != 553 || r.Reply.Enhanced != "5.1.7" {
		t.Errorf("bad sender: status %s reply %v, want failed 553 5.1.7", r.Status, r.Reply)
	}
	if srv.Conns() != n {
		t.Errorf("a connection was made for a message whose sender cannot be written")
	}
}

// TestWirePath is the renderer's table, with what cannot be represented.
func TestWirePath(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"bob@example.net", "bob@example.net"},
		{"b.o+b!#$%&'*/=?^_`{|}~-@example.net", "b.o+b!#$%&'*/=?^_`{|}~-@example.net"},
		{".bob@example.net", `".bob"@example.net`},
		{"bob.@example.net", `"bob."@example.net`},
		{`a"b@example.net`, `"a\"b"@example.net`},
		{`a\b@example.net`, `"a\\b"@example.net`},
		{"a b@[192.0.2.1]", `"a b"@[192.0.2.1]`},
		{"bob@[IPv6:2001:db8::1]", "bob@[IPv6:2001:db8::1]"},
		{"bøb@exämple.net", "bøb@exämple.net"},
		{"a@b@c.example", `"a@b"@c.example`},
		{"bob@ex_ample.net", "bob@ex_ample.net"},
	} {
		got, err := wirePath(c.in)
		if err != nil || got != c.want {
			t.Errorf("wirePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct {
		in  string
		err error
	}{
		{"bob", errPathNoDomain},
		{"@example.net", errPathEmptyLocal},
		{"a\x00b@example.net", errPathLocalControl},
		{"a\r\nRSET@example.net", errPathLocalControl},
		{"a\tb@example.net", errPathLocalControl},
		{"a\x7fb@example.net", errPathLocalControl},
		{"a\xffb@example.net", errPathUTF8},
		{"bob@", errPathDomain},
		{"bob@example.net>", errPathDomain},
		{"bob@example.net NOTIFY=NEVER", errPathDomain},
		{"bob@example..net", errPathDomain},
		{"bob@example.net.", errPathDomain},
		{"bob@-example.net", errPathDomain},
		{"bob@exa\x00mple.net", errPathDomain},
		{"bob@[192.0.2.1", errPathDomain},
		{"bob@[]", errPathDomain},
		{"bob@[a]b]", errPathDomain},
		{"bob@[a b]", errPathDomain},
	} {
		if got, err := wirePath(c.in); !errors.Is(err, c.err) {
			t.Errorf("wirePath(%q) = %q, %v; want %v", c.in, got, err, c.err)
		}
	}
}

// The strict RFC 5321 §4.1.2 Path grammar (with RFC 6531 UTF-8 and '_' in
// labels), written apart from the renderer to check it.
var (
	strictDotString = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\\x{80}-\\x{10FFFF}]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\\-\\x{80}-\\x{10FFFF}]+)*")
	strictDomain    = regexp.MustCompile(`^(\[[!-Z^-~]+\]|[A-Za-z0-9_\x{80}-\x{10FFFF}]([A-Za-z0-9_\-\x{80}-\x{10FFFF}]*[A-Za-z0-9_\x{80}-\x{10FFFF}])?(\.[A-Za-z0-9_\x{80}-\x{10FFFF}]([A-Za-z0-9_\-\x{80}-\x{10FFFF}]*[A-Za-z0-9_\x{80}-\x{10FFFF}])?)*)`)
)

// parsePathStrict parses "<" Mailbox ">" at the start of s and returns the
// local part with its quoting undone, the domain and what follows.
func parsePathStrict(s string) (local, domain, rest string, err error) {
	if !strings.HasPrefix(s, "<") {
		return "", "", s, fmt.Errorf("no '<'")
	}
	s = s[1:]
	if strings.HasPrefix(s, `"`) {
		var b strings.Builder
		i := 1
		for ; ; i++ {
			if i >= len(s) {
				return "", "", "", fmt.Errorf("unterminated Quoted-string")
			}
			c := s[i]
			if c == '"' {
				break
			}
			if c == '\\' {
				i++
				if i >= len(s) || s[i] < 32 || s[i] > 126 {
					return "", "", "", fmt.Errorf("bad quoted-pairSMTP")
				}
				b.WriteByte(s[i])
				continue
			}
			if c < 32 || c == 127 {
				return "", "", "", fmt.Errorf("control character in Quoted-string")
			}
			b.WriteByte(c)
		}
		local, s = b.String(), s[i+1:]
	} else {
		local = strictDotString.FindString(s)
		s = s[len(local):]
	}
	if local == "" || !utf8.ValidString(local) {
		return "", "", "", fmt.Errorf("empty or invalid local part")
	}
	if !strings.HasPrefix(s, "@") {
		return "", "", "", fmt.Errorf("no '@' after the local part")
	}
	s = s[1:]
	domain = strictDomain.FindString(s)
	s = s[len(domain):]
	if domain == "" || !strings.HasPrefix(s, ">") {
		return "", "", "", fmt.Errorf("bad domain or no '>'")
	}
	return local, domain, s[1:], nil
}
