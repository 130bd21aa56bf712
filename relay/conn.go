package relay

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// trackedConn is the TCP connection under everything else (go-smtp, TLS).
// It decides every read's deadline, and lets the server find and close
// connections on shutdown.
//
// Deadlines (RFC 5321 §4.5.3.2: a server timeout is for a whole command,
// not for each packet of it):
//   - a command line or SASL response must be complete within the command
//     timeout (the idle timeout): go-smtp asks for it (SetReadDeadline)
//     before every line;
//   - in a message body (DATA or BDAT), the bytes must keep coming at the
//     pace of at least one longest-allowed line (maxCommandLine octets)
//     per command timeout, so no data line can take longer than that. The
//     plaintext lines are not visible here (TLS is above, go-smtp's own
//     after STARTTLS), so the pace is counted in bytes received;
//   - until AUTH succeeds, everything (EHLO, STARTTLS, AUTH) shares one
//     pre-authentication budget;
//   - nothing outlives the session's maximum duration.
//
// A read past one of these fails with a timeout, and so does every read
// after it: go-smtp then answers "421 4.4.2" to the next command (a line
// cut short by the timeout is still answered first: bufio.Reader.ReadLine
// hands out a partial line and drops the error), the session answers
// "451 4.4.2" in a body, and the connection is closed.
type trackedConn struct {
	net.Conn
	l        *listener
	idle     time.Duration
	deadline time.Time // the session's end (zero: none)

	reading   atomic.Bool  // blocked in Read, waiting for the client
	readSince atomic.Int64 // unix nanos when the current Read began
	inTxn     atomic.Bool  // between MAIL and the reply to DATA
	// closeAfterWrite closes the connection once the next reply is written
	// (after a 421).
	closeAfterWrite atomic.Bool

	phase       atomic.Int32 // phaseCommand, phaseData or phaseBDAT
	phaseGen    atomic.Int64 // which Data call set phaseBDAT
	cmdDeadline atomic.Int64 // unix nanos: the current command line's end (0: none)
	// In a body: the deadline for the next maxCommandLine bytes, and how
	// many have come since it was set.
	bodyDeadline atomic.Int64
	bodyBytes    atomic.Int64
	preauthEnd   atomic.Int64 // unix nanos: the pre-authentication budget's end (0: none)
	// failReads makes every read fail once one timed out: go-smtp must not
	// go on reading (the rest of a body would be read as commands).
	failReads atomic.Bool
	// probing makes Read fail at once with errProbe, touching nothing:
	// idleRead asks TLS for what it already decrypted (idle.go).
	probing atomic.Bool

	// limitKey is what the per-IP limit counted this connection as.
	limitKey string

	// bdat follows go-smtp's BDAT goroutines for every session of the
	// connection (txn.go).
	bdat bdatWatch

	mu  sync.Mutex
	top net.Conn // what go-smtp reads and writes: itself, or the TLS conn on it

	closeOnce sync.Once
}

// Read phases.
const (
	phaseCommand = iota
	phaseData
	phaseBDAT
)

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.failReads.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	if c.probing.Load() {
		return 0, errProbe
	}
	now := time.Now()
	phase := c.phase.Load()
	c.Conn.SetReadDeadline(c.readDeadline(now, phase))
	c.readSince.Store(now.UnixNano())
	c.reading.Store(true)
	n, err := c.Conn.Read(p)
	c.reading.Store(false)
	if phase != phaseCommand && c.bodyBytes.Add(int64(n)) >= maxCommandLine {
		c.restartBody()
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.failReads.Store(true)
		if phase != phaseCommand {
			// The session answers 451 4.4.2; then the connection ends.
			c.closeAfterWrite.Store(true)
		}
	}
	return n, err
}

// readDeadline is when a read in phase, starting now, must have ended.
func (c *trackedConn) readDeadline(now time.Time, phase int32) time.Time {
	d := now.Add(c.idle)
	earlier := func(nanos int64) {
		if nanos != 0 && nanos < d.UnixNano() {
			d = time.Unix(0, nanos)
		}
	}
	if phase == phaseCommand {
		earlier(c.cmdDeadline.Load())
	} else {
		earlier(c.bodyDeadline.Load())
	}
	earlier(c.preauthEnd.Load())
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	return d
}

// SetReadDeadline is how go-smtp starts reading a command line or a SASL
// response: it asks for now + its ReadTimeout, which is the command
// timeout. The read that follows is a command read, unless a BDAT
// transfer is in progress (its chunks follow their command at once).
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	var nanos int64
	if !t.IsZero() {
		nanos = t.UnixNano()
	}
	c.cmdDeadline.Store(nanos)
	if c.phase.Load() == phaseData {
		c.phase.Store(phaseCommand)
	}
	return nil
}

// SetDeadline keeps the write half of what the caller asks.
func (c *trackedConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

// startData switches to body reads for DATA; the next command line
// (SetReadDeadline) ends them.
func (c *trackedConn) startData() {
	c.restartBody()
	c.phase.Store(phaseData)
}

// restartBody gives the body the command timeout for its next
// maxCommandLine bytes.
func (c *trackedConn) restartBody() {
	c.bodyBytes.Store(0)
	c.bodyDeadline.Store(time.Now().Add(c.idle).UnixNano())
}

// startBDAT switches to body reads until endBDAT with the returned token:
// the BDAT commands between chunks are read at the body's pace too.
func (c *trackedConn) startBDAT() int64 {
	gen := c.phaseGen.Add(1)
	c.restartBody()
	c.phase.Store(phaseBDAT)
	return gen
}

// endBDAT ends BDAT reads, unless a newer transaction has begun since.
func (c *trackedConn) endBDAT(gen int64) {
	if c.phaseGen.Load() == gen {
		c.phase.CompareAndSwap(phaseBDAT, phaseCommand)
	}
}

// authenticated lifts the pre-authentication budget.
func (c *trackedConn) authenticated() { c.preauthEnd.Store(0) }

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.l.forget(c)
	})
	return err
}

func (c *trackedConn) setTop(top net.Conn) {
	c.mu.Lock()
	c.top = top
	c.mu.Unlock()
}

// idleFor reports whether the connection has been waiting for the client,
// outside a mail transaction, for at least d: every reply has been written,
// so a 421 can be sent without interleaving with one of go-smtp's.
func (c *trackedConn) idleFor(d time.Duration) bool {
	return c.reading.Load() && !c.inTxn.Load() &&
		time.Since(time.Unix(0, c.readSince.Load())) >= d
}

// topConn is what go-smtp reads and writes now (it changes at STARTTLS).
func (c *trackedConn) topConn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.top
}

// say421 writes a final 421 reply (best effort, bounded) and closes.
func (c *trackedConn) say421(text string) {
	top := c.topConn()
	if top != nil {
		ok := true
		if tc, isTLS := top.(*tls.Conn); isTLS {
			ok = tc.ConnectionState().HandshakeComplete
		}
		if ok {
			top.SetWriteDeadline(time.Now().Add(2 * time.Second))
			top.Write([]byte(text + "\r\n"))
		}
	}
	c.Close()
}

// underlying finds the trackedConn beneath what go-smtp holds.
func underlying(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
