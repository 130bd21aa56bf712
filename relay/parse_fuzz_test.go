package relay

import (
	"bufio"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/auth"
)

// FuzzReadHeader: the header reader ends the header section only at a real
// empty line, sees every From field that the stored header carries (issue
// 8 item 22), keeps its bounds, and returns in time linear in its input
// (checked as a 2 s bound per case). The buffer is small so that long
// lines come back in pieces.
func FuzzReadHeader(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody\r\n"), uint8(0))
	f.Add([]byte("From: \"x, y\" <a@b>, c@d\r\n folded\r\n\r\n"), uint8(0))
	f.Add([]byte("no colon here\r\n\r\n"), uint8(0))
	f.Add([]byte("From: <me@x>\r\nX-Long: "+strings.Repeat("a", 40)+"\r\nFrom: <ceo@y>\r\n\r\n"), uint8(16))
	f.Add([]byte("From : <me@x>\r\nfrom:\r\n\t<ceo@y>\r\n\r\n"), uint8(16))
	f.Fuzz(func(t *testing.T, in []byte, bufSize uint8) {
		type result struct {
			h   *header
			err error
		}
		done := make(chan result, 1)
		go func() {
			// As in Data: crlfReader guarantees CRLF line ends.
			h, err := readHeader(bufio.NewReaderSize(&crlfReader{r: bytes.NewReader(in)}, 16+int(bufSize)))
			done <- result{h, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("readHeader did not return within 2 s on %d bytes", len(in))
		}
		if r.err != nil {
			return
		}
		h := r.h
		if !bytes.HasPrefix(in, h.raw) {
			t.Fatalf("raw header %q is not a prefix of the input", h.raw)
		}
		if len(h.raw) < len(in) && !bytes.HasSuffix(h.raw, []byte("\r\n\r\n")) && string(h.raw) != "\r\n" {
			t.Fatalf("header section ended without an empty line: %q", h.raw)
		}
		if len(h.raw) > maxHeaderBytes || h.count > maxHeaderFields {
			t.Fatalf("bounds not kept: %d bytes, %d fields", len(h.raw), h.count)
		}
		// Every line of raw that starts a From field is seen as one.
		froms := 0
		for _, line := range bytes.SplitAfter(h.raw, []byte("\r\n")) {
			if len(line) > maxHeaderLine+2 {
				t.Fatalf("a header line of %d octets was accepted", len(line))
			}
			if name, ok := fieldName(line); ok && line[0] != ' ' && line[0] != '\t' && strings.EqualFold(string(name), "From") {
				froms++
			}
		}
		if got := len(h.values("From")); got != froms {
			t.Fatalf("%d From fields in the header, %d seen: %q", froms, got, h.raw)
		}
		checkOriginators(h, &auth.Identity{User: "me@x", Addresses: []string{"me@x"}}, false)
	})
}

func FuzzParseOAuth(f *testing.F) {
	f.Add("n,a=user@example.org,\x01host=h\x01auth=Bearer tok\x01\x01", true)
	f.Add("user=u\x01auth=Bearer tok\x01\x01", false)
	f.Fuzz(func(t *testing.T, in string, bearer bool) {
		mech := mechXOAuth2
		if bearer {
			mech = mechOAuthBearer
		}
		_, tok, ok := parseOAuth(mech, []byte(in))
		if ok && tok == "" {
			t.Fatal("ok without a token")
		}
	})
}

// FuzzFixups: the submission fix-ups of any header section and any EHLO
// name leave exactly what RFC 5322 §3.6 wants — a non-empty Date and
// Message-ID, no empty one — and a Received field that is ASCII, made of
// CRLF-folded lines of at most 998 octets, whatever the client sent; no
// client X-Edgerelay-Scan field is left, and apart from those (and empty
// Date and Message-ID fields) the client's header section is kept byte for
// byte; each case within 2 s.
func FuzzFixups(f *testing.F) {
	f.Add([]byte("From: a@b\r\nDate:\r\nMessage-ID: \r\n \r\n\r\n"), "bücher.example", "r@example.net")
	f.Add([]byte("Date: x\r\nDate:\r\n\r\n"), "[192.0.2.1]", "")
	f.Add([]byte("message-id:<a@b>\r\nmessage-id:\r\n"), "b\xffd\r\n(x)", strings.Repeat("r", 300)+"@x")
	f.Add([]byte("From: a@b\r\nX-Edgerelay-Scan: clean\r\nx-EDGERELAY-scan :\r\n\tfolded\r\n more\r\nSubject: x\r\nX-Edgerelay-Scan:\r\n\r\nX-Edgerelay-Scan: body\r\n"), "h", "r@example.net")
	f.Add([]byte("Date: x\r\nX-Edgerelay-Scanned: y\r\nX-Edgerelay-Scan: z\r\n \r\n"), "h", "r@example.net")
	f.Fuzz(func(t *testing.T, in []byte, helo, rcpt string) {
		if hasControl(rcpt) || strings.ContainsAny(rcpt, "<> ") {
			rcpt = "r@example.net" // refused at RCPT (addrcheck.go, go-smtp's path parser)
		}
		done := make(chan struct{})
		var out, trace string
		var fx fixup
		var raw []byte
		var err error
		go func() {
			defer close(done)
			var h *header
			h, err = readHeader(bufio.NewReader(&crlfReader{r: bytes.NewReader(in)}))
			if err != nil {
				return
			}
			raw = bytes.Clone(h.raw)
			fx = fixups(h, "06H32DKP2MQNF2K2EKP4", "relay.test", time.Unix(1e9, 0))
			b, _ := io.ReadAll(io.MultiReader(strings.NewReader(fx.add), h.without(fx.drop)))
			out = string(b)
			trace = receivedField(traceInfo{helo: helo, remoteIP: "192.0.2.1", hostname: "relay.test",
				queueID: "06H32DKP2MQNF2K2EKP4", rcpts: []string{rcpt}, now: time.Unix(1e9, 0)})
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("fix-ups did not return within 2 s on %d bytes", len(in))
		}
		if err != nil {
			return
		}
		h2, err := readHeader(bufio.NewReader(strings.NewReader(out)))
		if err != nil {
			t.Fatalf("fixed-up header does not read back: %v\n%q", err, out)
		}
		for _, name := range []string{"Date", "Message-ID"} {
			vals := h2.values(name)
			if len(vals) == 0 || slices.Contains(vals, "") {
				t.Fatalf("%s fields after fix-ups: %q\n%q", name, vals, out)
			}
		}
		if fx.msgID != h2.values("Message-ID")[0] {
			t.Fatalf("Message-ID %q recorded, %q in the header", fx.msgID, h2.values("Message-ID")[0])
		}
		for _, f := range h2.fields {
			if f.name == ScanHeader {
				t.Fatalf("a client's %s field is left after the fix-ups:\n%q", ScanHeader, out)
			}
		}
		emptyDropped := false
		for _, f := range fx.drop {
			emptyDropped = emptyDropped || f.name != ScanHeader
		}
		if want := withoutScanFields(raw); !emptyDropped && out[len(fx.add):] != string(want) {
			t.Fatalf("header after the fix-ups is not the client's less its %s fields:\ngot  %q\nwant %q", ScanHeader, out[len(fx.add):], want)
		}
		// Only a non-ASCII recipient (which needs SMTPUTF8 anyway) may
		// put 8-bit text into Received; the EHLO name never does.
		if !isASCII(trace) && isASCII(rcpt) || !strings.HasSuffix(trace, "\r\n") {
			t.Fatalf("Received not ASCII or not ended by CRLF: %q", trace)
		}
		for i, line := range strings.Split(strings.TrimSuffix(trace, "\r\n"), "\r\n") {
			if len(line) > 998 || strings.ContainsAny(line, "\r\n") || i > 0 && line[0] != '\t' {
				t.Fatalf("Received line %d malformed: %q", i, line)
			}
		}
	})
}

// withoutScanFields is a model of what fixups leaves of a header section
// that has no empty Date or Message-ID: raw less every field named
// ScanHeader (in any case), each with its continuation lines.
func withoutScanFields(raw []byte) []byte {
	var out []byte
	drop := false
	for _, line := range bytes.SplitAfter(raw, []byte("\r\n")) {
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' {
			name, ok := fieldName(line)
			drop = ok && strings.EqualFold(string(name), ScanHeader)
		}
		if !drop {
			out = append(out, line...)
		}
	}
	return out
}
