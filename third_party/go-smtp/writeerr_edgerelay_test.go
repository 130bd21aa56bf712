package smtp

import (
	"bytes"
	"net"
	"os"
	"testing"
	"time"
)

// edgerelay patch 3 review: the reply writer is pooled per reply, but a
// failed write still ends all writing on the connection, as with the one
// bufio.Writer that textproto.NewConn gave v0.25.1 for the connection's
// life (its error was sticky): after a reply cut short (a write timeout
// with part of it sent), a later reply must not be written after the torn
// one, where the client would read the two as one line.

// tornConn takes half of its first write and fails it.
type tornConn struct {
	net.Conn
	out    bytes.Buffer
	writes int
}

func (c *tornConn) Write(p []byte) (int, error) {
	c.writes++
	if c.writes == 1 {
		n := len(p) / 2
		c.out.Write(p[:n])
		return n, os.ErrDeadlineExceeded
	}
	return c.out.Write(p)
}

func (c *tornConn) SetWriteDeadline(time.Time) error { return nil }

func TestWriteErrorIsSticky(t *testing.T) {
	s := NewServer(nil)
	s.WriteTimeout = time.Minute
	tc := &tornConn{}
	c := newConn(tc, s)
	c.writeResponse(250, EnhancedCode{2, 0, 0}, "first reply, cut short")
	torn := tc.out.String()
	c.writeResponse(554, EnhancedCode{5, 0, 0}, "second reply")
	c.writeResponse(250, EnhancedCode{2, 0, 0}, "multi", "line")
	if got := tc.out.String(); got != torn {
		t.Fatalf("replies written after a failed write: %q (the torn reply was %q)", got, torn)
	}
}
