package relay

import (
	"bufio"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
)

// bdat sends one message as a single BDAT LAST chunk and returns the reply.
func (c *client) bdat(msg string) (int, string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg)); err != nil {
		c.t.Fatal(err)
	}
	return c.read()
}

// TestLongHeaderLineDoesNotEndHeader (issue 8 item 22): go-smtp lifts the
// line limit during BDAT; a header line longer than the reader's buffer
// must not be split so that its last piece, a bare CRLF, reads as the end
// of the header section and hides a second From from the check.
func TestLongHeaderLineDoesNotEndHeader(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
	c := e.authed(alice, alicePW)
	for _, n := range []int{65536, 65536 - len("X-Long: "), 3 * 65536} {
		long := "X-Long: " + strings.Repeat("a", n-len("X-Long: ")) + "\r\n"
		msg := "From: <" + alice + ">\r\n" + long + "From: <ceo@example.org>\r\nSubject: x\r\n\r\nbody\r\n"
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(250, "", "RCPT TO:<r@example.net>")
		code, text := c.bdat(msg)
		if code/100 == 2 {
			t.Fatalf("header line of %d octets, then a second From: %d %s", len(long), code, text)
		}
		if code != 554 || !strings.HasPrefix(text, "5.6.0") {
			t.Errorf("header line of %d octets: %d %s, want 554 5.6.0", len(long), code, text)
		}
	}
	if n := len(e.queued()); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
}

// TestHeaderFieldCountBounded (issue 8 item 26): a header section of many
// tiny fields is refused before it costs memory out of proportion.
func TestHeaderFieldCountBounded(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	msg := "From: <" + alice + ">\r\n" + strings.Repeat("X-A: b\r\n", 5000) + "\r\nbody\r\n"
	code, text := c.bdat(msg)
	if code != 552 || !strings.HasPrefix(text, "5.3.4") {
		t.Fatalf("5000 header fields: %d %s, want 552 5.3.4", code, text)
	}
	// A header of ordinary size with many Received fields still passes.
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	msg = strings.Repeat("Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\r\n", 200) + message(alice, "r@example.net", "")
	if code, text := c.bdat(msg); code != 250 {
		t.Fatalf("200 Received fields: %d %s", code, text)
	}
}

// TestHeaderMemory reports (does not assert) what reading a header section
// costs: bytes allocated, and heap still held while the session keeps the
// parsed header, for a 1 MiB section of tiny fields, the largest section
// that is accepted, and an ordinary one. Figures (issue 8 item 26): before
// the fix, 1 MiB of 8-byte fields allocated 15.0 MB and held 3.5 MB.
func TestHeaderMemory(t *testing.T) {
	to := "To: " + strings.Repeat("someone.with.a.long.name@example.net,\r\n ", (1<<20-20_000)/42) + "last@example.net\r\n"
	cases := []struct{ name, hdr string }{
		{"1 MiB of tiny fields", "From: <a@b.example>\r\n" + strings.Repeat("X-A: b\r\n", (1<<20-64)/8) + "\r\n"},
		{"largest accepted (999 fields, ~1 MiB)", "From: <a@b.example>\r\n" + strings.Repeat("X-A: b\r\n", 997) + to + "\r\n"},
		{"ordinary (20 fields)", "From: <a@b.example>\r\n" + strings.Repeat("X-Field: some ordinary value here\r\n", 19) + "\r\n"},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h, err := readHeader(bufio.NewReaderSize(strings.NewReader(c.hdr+"body\r\n"), 64<<10))
		runtime.ReadMemStats(&after)
		held := 0
		if h != nil {
			held = cap(h.raw)
			for _, f := range h.fields {
				held += len(f.value) + 64
			}
		}
		t.Logf("%s (%d bytes): err=%v; allocated %d bytes, held by the parsed header %d bytes", c.name, len(c.hdr), err,
			after.TotalAlloc-before.TotalAlloc, held)
	}
}
