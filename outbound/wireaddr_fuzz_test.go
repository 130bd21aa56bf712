package outbound

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/emersion/go-smtp"
)

// FuzzWirePath: for any stored address (issue 8 item 7), wirePath either
// refuses it or writes a path that
//   - contains no CR, LF or NUL, and no '>' or space outside quotes, so it
//     is one path and no parameter;
//   - parses back, with a strict RFC 5321 §4.1.2 Path parser and with
//     go-smtp's server parser (a real go-smtp server on 127.0.0.1, the one
//     the relay runs and many next hops run), to the same local part and
//     domain that routing split off (splitAddr);
//
// it refuses only what RFC 5321 cannot represent (no domain, an empty local
// part, a control character or invalid UTF-8, a domain the strict grammar
// refuses); and every case returns within 2 s.
func FuzzWirePath(f *testing.F) {
	for _, c := range quotedCases {
		f.Add(c.stored)
	}
	for _, s := range []string{
		"", "bob@example.net", "a@b@c.example", `a\"b@example.net`, "\"@example.net", "\\@[x]",
		"a\x00b@example.net", "a\r\nRSET@example.net", "bob@exa>mple.net", "bob@[192.0.2.1]", "bob@[a b]",
		"x> NOTIFY=NEVER ORCPT=rfc822;e@vil@y.example", "é\xff@example.net", ".@example.net", "a. b@ex-.net",
	} {
		f.Add(s)
	}
	rb := newReadBack(f)
	f.Fuzz(func(t *testing.T, addr string) {
		if len(addr) > 4096 {
			return
		}
		var wire string
		var err error
		testutil.ReturnsWithin(t, 2*time.Second, "wirePath", func() { wire, err = wirePath(addr) })
		local, domain, hasAt := splitAddr(addr)
		if err != nil {
			representable := addr == "" || hasAt && local != "" && utf8.ValidString(addr) &&
				!strings.ContainsFunc(local, func(r rune) bool { return r < 0x20 || r == 0x7f }) &&
				strictDomain.FindString(domain) == domain && domain != "" && (domain[0] != '[' || dialableLiteral(domain))
			if representable {
				t.Fatalf("wirePath(%q) refused a representable address: %v", addr, err)
			}
			return
		}
		if addr == "" {
			if wire != "" {
				t.Fatalf("null path rendered as %q", wire)
			}
			return
		}
		if strings.ContainsAny(wire, "\r\n\x00") {
			t.Fatalf("wirePath(%q) = %q contains CR, LF or NUL", addr, wire)
		}
		if bad := outsideQuotes(wire, "> \t<"); bad >= 0 {
			t.Fatalf("wirePath(%q) = %q has %q outside quotes at %d", addr, wire, wire[bad], bad)
		}
		l, d, rest, perr := parsePathStrict("<" + wire + "> NEXT")
		if perr != nil || rest != " NEXT" {
			t.Fatalf("wirePath(%q) = %q: strict parse: %v, rest %q", addr, wire, perr, rest)
		}
		if l != local || d != domain {
			t.Fatalf("wirePath(%q) = %q reads back as local %q domain %q, routing split %q / %q", addr, wire, l, d, local, domain)
		}
		if len(wire) < 900 {
			if got := rb.rcpt(t, wire); got != addr {
				t.Fatalf("wirePath(%q) = %q: go-smtp reads back %q", addr, wire, got)
			}
		}
	})
}

// outsideQuotes returns the index of the first byte of s that is one of
// chars and is not inside a Quoted-string, or -1.
func outsideQuotes(s, chars string) int {
	in := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case in && c == '\\':
			i++
		case c == '"':
			in = !in
		case !in && strings.IndexByte(chars, c) >= 0:
			return i
		}
	}
	return -1
}

// readBack is a go-smtp server on 127.0.0.1 and one client connection to
// it, in a transaction, through which a path is read back as go-smtp's
// server hands it to a session.
type readBack struct {
	c   net.Conn
	br  *bufio.Reader
	got chan string
}

type readBackSession struct{ got chan string }

func (s readBackSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s readBackSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.got <- to
	return nil
}
func (s readBackSession) Data(io.Reader) error { return errors.New("no data") }
func (s readBackSession) Reset()               {}
func (s readBackSession) Logout() error        { return nil }

func newReadBack(tb testing.TB) *readBack {
	got := make(chan string, 1)
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return readBackSession{got}, nil }))
	srv.Domain = "readback.test"
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = nopLogger{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); srv.Close() })
	rb := &readBack{c: c, br: bufio.NewReader(c), got: got}
	for _, cmd := range []string{"", "EHLO t", "MAIL FROM:<a@b.example> SMTPUTF8"} {
		if cmd != "" {
			if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
				tb.Fatal(err)
			}
		}
		if r := rb.reply(tb); !strings.HasPrefix(r, "2") {
			tb.Fatalf("%q: %q", cmd, r)
		}
	}
	return rb
}

// reply reads one reply and returns its last line.
func (rb *readBack) reply(tb testing.TB) string {
	rb.c.SetReadDeadline(time.Now().Add(2 * time.Second)) //nolint:errcheck // loopback
	for {
		l, err := rb.br.ReadString('\n')
		if err != nil {
			tb.Fatalf("read-back server: %v", err)
		}
		if len(l) < 4 || l[3] != '-' {
			return strings.TrimRight(l, "\r\n")
		}
	}
}

// rcpt sends RCPT TO:<wire> and returns the address go-smtp handed over.
func (rb *readBack) rcpt(tb testing.TB, wire string) string {
	if _, err := io.WriteString(rb.c, "RCPT TO:<"+wire+">\r\n"); err != nil {
		tb.Fatal(err)
	}
	if r := rb.reply(tb); !strings.HasPrefix(r, "250") {
		tb.Fatalf("go-smtp refused RCPT TO:<%s>: %q", wire, r)
	}
	select {
	case to := <-rb.got:
		return to
	default:
		tb.Fatalf("go-smtp answered 250 without handing over a recipient")
		return ""
	}
}

// dialableLiteral: "[IPv4]" or "[IPv6:addr]", the address literals a path
// can carry to a next hop (RFC 5321 §4.1.3); a General-address-literal is
// refused, its dcontent may hold '>'.
func dialableLiteral(d string) bool {
	in := strings.TrimSuffix(strings.TrimPrefix(d, "["), "]")
	if len(in) > 5 && strings.EqualFold(in[:5], "ipv6:") {
		ip := net.ParseIP(in[5:])
		return ip != nil && ip.To4() == nil
	}
	ip := net.ParseIP(in)
	return ip != nil && ip.To4() != nil && !strings.Contains(in, ":")
}
