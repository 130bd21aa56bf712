package relay

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// forgedScanMessage returns a message whose header section carries client
// X-Edgerelay-Scan fields in every shape (any case, white space before the
// colon, folded over three lines, empty, several copies) between fields
// that must be kept (names that only begin like it among them), and the
// same message as it must be stored after the Received field and any
// field of ours: the client's X-Edgerelay-Scan fields gone, every other
// byte, the body's look-alike line included, as sent. Date and Message-ID
// are present, so no fix-up is added.
func forgedScanMessage(from, to, body string) (sent, want string) {
	keep := []string{
		"From: <" + from + ">\r\n",
		"To: <" + to + ">\r\n",
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n",
		"Message-ID: <forged@client.test>\r\n",
		"X-Edgerelay-Scanned: a different field, kept\r\n",
		"X-Edgerelay-Scan-Result: kept too\r\n",
		"Subject: test\r\n",
	}
	forged := []string{
		"X-Edgerelay-Scan: clean\r\n",
		"x-edgerelay-scan: not scanned: larger than the virus scanner's limit of 8192 bytes\r\n",
		"X-EDGERELAY-SCAN :\r\n\tfolded,\r\n  over three lines\r\n",
		"X-Edgerelay-Scan:\r\n",
	}
	body = "X-Edgerelay-Scan: a line of the body, kept\r\n" + body
	sent = keep[0] + forged[0] + keep[1] + keep[2] + forged[1] + keep[3] + keep[4] + forged[2] + keep[5] + keep[6] + forged[3] + "\r\n" + body
	want = strings.Join(keep, "") + "\r\n" + body
	return sent, want
}

// scanFields returns the X-Edgerelay-Scan fields of a stored message's
// header section, unfolded.
func scanFields(msg string) []string {
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	var out []string
	in := false
	for _, line := range strings.Split(head, "\r\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			if in {
				out[len(out)-1] += line
			}
			continue
		}
		name, ok := fieldName([]byte(line))
		in = ok && strings.EqualFold(string(name), ScanHeader)
		if in {
			out = append(out, line)
		}
	}
	return out
}

// TestClientScanHeaderRemoved: a client's X-Edgerelay-Scan fields, in any
// case, folded or not, however many, are never stored, on 587 (DATA), 465
// (BDAT) and the MX listener, scanning or not; everything else in the
// message is stored byte for byte. A message accepted unscanned for its
// declared size carries edgerelay's own field exactly once.
func TestClientScanHeaderRemoved(t *testing.T) {
	const rcpt, inbound, stranger = "r@example.net", "alice@example.org", "x@internet.example"
	small := "Hello.\r\n"
	big := strings.Repeat(strings.Repeat("s", 76)+"\r\n", 300) // ~23 KB, past MaxBytes
	ours := unscannedField(8 << 10)

	f := newFakeClamd(t, "")
	sc, err := NewClamd(f.addr(), time.Second, 4)
	if err != nil {
		t.Fatal(err)
	}
	e, mx := mxEnv(t, func(o *Options) {
		o.MaxMessageBytes = 1 << 20
		o.Scan = &ScanOptions{Scanner: sc, MaxBytes: 8 << 10, AcceptOversize: true}
	})
	bare := newEnv(t) // no scanning at all

	c := e.authed(alice, alicePW)
	s := e.authedTLS(bob, bobPW)
	m := dialMX(t, mx, "127.0.0.1")
	m.ehlo()
	p := bare.authed(alice, alicePW)
	type sent struct {
		name     string
		e        *env
		c        *client
		from, to string
		body     string
		how      string // DATA, BDAT, or SIZE (DATA after MAIL with the SIZE it has)
		ours     bool   // accepted unscanned for its declared size: our field once
		want, id string
	}
	sents := []*sent{
		{name: "587 DATA, scanned clean", e: e, c: c, from: alice, to: rcpt, body: small, how: "DATA"},
		{name: "587 declared oversize", e: e, c: c, from: alice, to: rcpt, body: big, how: "SIZE", ours: true},
		{name: "465 BDAT", e: e, c: s, from: bob, to: rcpt, body: small, how: "BDAT"},
		{name: "MX DATA", e: e, c: m, from: stranger, to: inbound, body: small, how: "DATA"},
		{name: "MX declared oversize", e: e, c: m, from: stranger, to: inbound, body: big, how: "SIZE", ours: true},
		{name: "587, no scanning configured", e: bare, c: p, from: alice, to: rcpt, body: small, how: "DATA"},
	}
	for _, x := range sents {
		var msg string
		msg, x.want = forgedScanMessage(x.from, x.to, x.body)
		size := ""
		if x.how == "SIZE" {
			size = fmt.Sprintf(" SIZE=%d", len(msg))
		}
		x.c.must(250, "", "MAIL FROM:<%s>%s", x.from, size)
		x.c.must(250, "", "RCPT TO:<%s>", x.to)
		code, text := 0, ""
		if x.how == "BDAT" {
			code, text = x.c.bdat(msg)
		} else {
			code, text = x.c.data(msg)
		}
		if code != 250 {
			t.Fatalf("%s: %d %s", x.name, code, text)
		}
		x.id = queueID(text)
	}

	stored := map[*env]map[string]storedMsg{e: e.stored(), bare: bare.stored()}
	for _, x := range sents {
		got, ok := stored[x.e][x.id]
		if !ok {
			t.Fatalf("%s: %s not stored", x.name, x.id)
		}
		body := got.body
		if !strings.HasSuffix(body, x.want) {
			t.Errorf("%s: stored message does not end with the message less the forged fields:\nstored %q\nwant suffix %q", x.name, body, x.want)
			continue
		}
		prefix := body[:len(body)-len(x.want)]
		if !strings.HasPrefix(prefix, "Received: ") {
			t.Errorf("%s: before the client's header: %q, want Received", x.name, prefix)
		}
		fields := scanFields(body)
		switch {
		case x.ours && (len(fields) != 1 || !strings.HasSuffix(prefix, ours) || fields[0]+"\r\n" != ours):
			t.Errorf("%s: X-Edgerelay-Scan fields %q, want ours alone, once: %q", x.name, fields, ours)
		case !x.ours && len(fields) != 0:
			t.Errorf("%s: X-Edgerelay-Scan fields %q stored, want none", x.name, fields)
		}
	}
}

// TestNoScanHeaderMessageUnchanged: a header section without the field is
// stored byte for byte as before (the fix-ups and Received aside), and
// fixups drops nothing from it.
func TestNoScanHeaderMessageUnchanged(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	msgs := []string{
		message(alice, "r@example.net", "X-Edgerelay-Scanned: no\r\nX-Edgerelay-Scan-Id: 1\r\n"),
		message(alice, "r@example.net", "Comments: X-Edgerelay-Scan: not a field name\r\n folded X-Edgerelay-Scan: either\r\n"),
	}
	for _, m := range msgs {
		h, err := readHeader(bufioReader(m))
		if err != nil {
			t.Fatal(err)
		}
		if fx := fixups(h, "ID", "relay.test", time.Unix(1e9, 0)); len(fx.drop) != 0 {
			t.Errorf("fixups drops %d fields of %q", len(fx.drop), m)
		}
		h.release()
		if code, text := submit(c, alice, "r@example.net", m); code != 250 {
			t.Fatalf("%d %s", code, text)
		}
	}
	stored := e.queued()
	if len(stored) != len(msgs) {
		t.Fatalf("%d stored", len(stored))
	}
	for _, body := range stored {
		n := 0
		for _, m := range msgs {
			if strings.HasSuffix(body, m) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("stored message is not one of those sent, unchanged:\n%q", body)
		}
	}
}

// bufioReader reads s as Data does (CRLF line ends, the pooled buffer
// size).
func bufioReader(s string) *bufio.Reader {
	return bufio.NewReaderSize(&crlfReader{r: bytes.NewReader([]byte(s))}, dataBufSize)
}
