package relay

import (
	"bufio"
	"bytes"
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
