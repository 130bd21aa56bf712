package relay

import (
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// An idle session (authenticated, between transactions: most of its life)
// should cost little memory. go-smtp holds no buffers while it waits for a
// command (third_party/go-smtp/EDGERELAY.md, patch 3); idleRead, its
// IdleRead, also makes that wait shallow: a read through crypto/tls and
// the poller parks the connection's goroutine with a deep stack (8 KiB,
// which the runtime cannot shrink while it is in use), while a wait for
// the socket to become readable parks it in a few frames (2-4 KiB after
// the collector shrinks it). The read that follows is the same read as
// without the wait: same deadline, same errors.

// idleRead reads up to len(b) bytes of c (go-smtp's connection: the
// trackedConn, or TLS on it) for a command line, when nothing is buffered
// in go-smtp. With nothing buffered in TLS either, it first waits for the
// socket to become readable (or the read's deadline to pass, or the
// connection to close).
func idleRead(c net.Conn, b []byte) (int, error) {
	tc := underlying(c)
	if tc == nil {
		return c.Read(b)
	}
	if tlsConn, ok := c.(*tls.Conn); ok {
		// crypto/tls hands out what it already decrypted without reading
		// the connection; with nothing there it asks trackedConn, which
		// fails at once with errProbe (a temporary error TLS does not
		// keep).
		tc.probing.Store(true)
		n, err := tlsConn.Read(b)
		tc.probing.Store(false)
		if n > 0 || !errors.Is(err, errProbe) {
			return n, err
		}
	}
	tc.waitReadable()
	return c.Read(b)
}

// errProbe is what trackedConn.Read returns while probing.
var errProbe error = probeError{}

type probeError struct{}

func (probeError) Error() string   { return "relay: probe of buffered input" }
func (probeError) Timeout() bool   { return true }
func (probeError) Temporary() bool { return true }

// waitReadable waits until the socket has bytes (or the end of the stream,
// or an error), the deadline of the read that would be made now passes, or
// the connection is closed. It is only a wait: the read after it decides.
// While it waits the connection counts as reading, for Shutdown's idleFor.
func (c *trackedConn) waitReadable() {
	if c.failReads.Load() {
		return
	}
	now := time.Now()
	c.Conn.SetReadDeadline(c.readDeadline(now, c.phase.Load()))
	c.readSince.Store(now.UnixNano())
	c.reading.Store(true)
	waitSocket(c.Conn)
	c.reading.Store(false)
}
