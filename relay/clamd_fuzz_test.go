package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// chunkReader hands out its data n bytes per Read (n ≥ 1).
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// FuzzClamdReply: whatever clamd (or a stranger on its port) answers, in
// whatever pieces, reading and parsing the reply ends within 2 s without
// a panic, and a verdict is given only for the exact replies clamd sends:
// "stream: OK", or "stream: NAME FOUND" with NAME made printable ASCII, at
// most maxSignature bytes, which is then what goes into the 554 reply. The
// same bytes are also answered to a whole Finish over a connection.
func FuzzClamdReply(f *testing.F) {
	for _, s := range []string{
		"stream: OK\x00",
		"stream: Win.Test.EICAR_HDB-1 FOUND\x00",
		"INSTREAM size limit exceeded. ERROR\x00",
		"stream: Can't allocate memory ERROR\x00",
		"stream: OK",
		"stream: x FOUND\x00trailing",
		"\x00",
		"PONG\x00",
		"1: stream: OK\x00",
		"stream: \xff FOUND\x00",
	} {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, piece uint8) {
		type result struct {
			v   Verdict
			err error
		}
		done := make(chan result, 2)
		go func() {
			r, err := readClamdReply(&chunkReader{b: in, n: 1 + int(piece)})
			if err != nil {
				done <- result{err: err}
				return
			}
			v, err := parseClamdReply(r)
			done <- result{v, err}
		}()
		go func() {
			client, server := net.Pipe()
			defer client.Close()
			go func() {
				defer server.Close()
				var end [4]byte
				if _, err := io.ReadFull(server, end[:]); err != nil {
					return
				}
				server.Write(in)
			}()
			c := &Clamd{timeout: time.Second, slots: make(chan struct{}, 1)}
			c.slots <- struct{}{}
			v, err := (&clamdStream{c: c, conn: client}).Finish()
			done <- result{v, err}
		}()
		var got [2]result
		for i := range got {
			select {
			case got[i] = <-done:
			case <-time.After(2 * time.Second):
				t.Fatalf("reply %q: no result after 2 s", in)
			}
		}
		for _, r := range got {
			if r.err != nil {
				if r.v != (Verdict{}) {
					t.Fatalf("%q: a verdict with an error", in)
				}
				continue
			}
			reply := in
			if i := bytes.IndexByte(in, 0); i >= 0 {
				reply = in[:i]
			}
			reply = bytes.TrimRight(reply, "\r\n")
			switch {
			case !r.v.Infected && string(reply) != "stream: OK":
				t.Fatalf("%q: clean verdict", in)
			case r.v.Infected && (!bytes.HasPrefix(reply, []byte("stream: ")) || !bytes.HasSuffix(reply, []byte(" FOUND")) ||
				r.v.Signature != strings.TrimSpace(clamdText(reply[len("stream: "):len(reply)-len(" FOUND")]))):
				t.Fatalf("%q: signature %q", in, r.v.Signature)
			case r.v.Infected && (r.v.Signature == "" || len(r.v.Signature) > maxSignature || clamdText([]byte(r.v.Signature)) != r.v.Signature):
				t.Fatalf("%q: signature %q unfit for a reply", in, r.v.Signature)
			}
		}
		if got[0].err == nil && got[1].err == nil && got[0].v != got[1].v {
			t.Fatalf("%q: %+v read whole, %+v over a connection", in, got[0].v, got[1].v)
		}
		if errors.Is(got[0].err, ErrClamdSizeLimit) != errors.Is(got[1].err, ErrClamdSizeLimit) && len(in) <= clamdMaxReply {
			t.Fatalf("%q: size limit seen one way only: %v / %v", in, got[0].err, got[1].err)
		}
	})
}
