package outbound

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"
)

// maxReplyBytes bounds one reply as read from a next hop, all its lines
// together. RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets but sets
// no limit on the number of lines; go-smtp's client bounds a line (2,000
// bytes) and nothing else, and net/textproto joins the lines into one
// string, so a hop that never ends its reply held memory (and CPU: the join
// is quadratic) for the whole command timeout. Real replies, EHLO lists
// included, stay far below this.
const maxReplyBytes = 32 << 10

var (
	// errReplyTooLong: the hop's reply exceeded maxReplyBytes.
	errReplyTooLong = fmt.Errorf("host sent a reply longer than %d bytes", maxReplyBytes)
	// errOutOfStep: the hop sent bytes that answer no command (more
	// replies than commands). Every later reply would be read as the answer
	// to the wrong command (a stale 250 as the reply to the final dot), so
	// the connection is given up.
	errOutOfStep = errors.New("host sent a reply to no command; the session is out of step")
)

// replyGuard sits between a reader of SMTP replies (the go-smtp client, or
// the exchange before STARTTLS) and the connection. It hands out at most one
// line per Read, so the reader's buffer never holds bytes beyond the reply
// it is reading: whatever the hop sent beyond it stays here, where a Write
// (the next command, or the message body after 354) finds it and fails with
// errOutOfStep instead of letting the stale bytes answer it. It fails a
// reply longer than maxReplyBytes with errReplyTooLong. Errors are sticky.
// At every Write the replies to everything written before were read whole
// (a pipelined group, RFC 2920, is written after the replies to the
// commands before it, and the body after DATA's 354, the group's last), so
// nothing may be pending.
type replyGuard struct {
	net.Conn
	buf  []byte
	r, w int // buf[r:w] is read from the connection but not handed out
	// head is the start of the current line (its 4th byte says whether
	// the reply goes on, RFC 5321 §4.2.1), n its length so far.
	head  [4]byte
	headN int
	// code is the first line's code while a multi-line reply goes on
	// (more is set): as net/textproto reads it, only a line with that
	// code and a space ends the reply, and every other line (another
	// code, a short or malformed line) is more of its text, so it counts
	// towards the same maxReplyBytes (lastLine).
	code   [3]byte
	codeOK bool // code is valid: a line can end the reply
	more   bool
	reply  int // bytes of the current reply handed out
	err    error
}

func newReplyGuard(c net.Conn) *replyGuard {
	return &replyGuard{Conn: c, buf: make([]byte, 4096)}
}

func (g *replyGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if g.r == g.w {
		n, err := g.Conn.Read(g.buf)
		g.r, g.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	chunk := g.buf[g.r:g.w]
	if i := bytes.IndexByte(chunk, '\n'); i >= 0 {
		chunk = chunk[:i+1]
	}
	if len(chunk) > len(p) {
		chunk = chunk[:len(p)]
	}
	for _, c := range chunk {
		g.reply++
		if g.reply > maxReplyBytes {
			g.err = errReplyTooLong
			return 0, g.err
		}
		if g.headN < len(g.head) {
			g.head[g.headN] = c
			g.headN++
		}
		if c == '\n' {
			if g.lastLine() {
				g.reply, g.more = 0, false
			}
			g.headN = 0
		}
	}
	n := copy(p, chunk)
	g.r += n
	return n, nil
}

// lastLine reports whether the line that head starts, just read whole,
// ends its reply as net/textproto's ReadResponse reads it: a first line
// unless its 4th byte is '-'; a later line only when it has the first
// line's code, a valid one, and a space (after a first line with an
// invalid code, such as "abc-" or "099-", no line ends the reply).
func (g *replyGuard) lastLine() bool {
	full := g.headN == len(g.head)
	if g.more {
		return g.codeOK && full && g.head[3] == ' ' && [3]byte(g.head[:3]) == g.code
	}
	if full && g.head[3] == '-' {
		g.code, g.more = [3]byte(g.head[:3]), true
		g.codeOK = validCode(g.code)
		return false
	}
	return true
}

// validCode reports whether c is a code net/textproto takes: three digits,
// at least 100.
func validCode(c [3]byte) bool {
	return c[0] >= '1' && c[0] <= '9' && c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9'
}

func (g *replyGuard) Write(p []byte) (int, error) {
	if g.err == nil && g.r < g.w {
		g.err = errOutOfStep
	}
	if g.err != nil {
		return 0, g.err
	}
	return g.Conn.Write(p)
}

// pending reports whether the hop sent bytes that were not read yet (or the
// guard failed): the session is not between replies, and must not carry
// another command.
func (g *replyGuard) pending() bool {
	return g.err != nil || g.r < g.w
}

// idleProbe is how long quiet waits for bytes from a pooled connection
// whose socket it cannot ask directly (see arrived).
const idleProbe = 5 * time.Millisecond

// quiet reports whether the connection, idle between transactions, has
// nothing to say: no byte buffered here, in the TLS layer or in the socket
// of raw (the TCP connection under it). A connection that sent something
// while idle (a stale reply, a 421 before closing) or that was closed is
// not quiet, and must not be reused.
//
// It does not wait: the socket is asked with a non-blocking MSG_PEEK, and
// what TLS already decrypted is read with a deadline in the past
// (crypto/tls hands out buffered data before it touches the socket). Only
// where the socket cannot be asked does it wait idleProbe for bytes. Bytes
// still in flight when it looks are not seen by any wait; the guard fails
// the session when they arrive (errOutOfStep).
func (g *replyGuard) quiet(raw net.Conn) bool {
	if g.pending() {
		return false
	}
	sent, known := arrived(raw)
	if sent {
		return false
	}
	deadline := time.Now().Add(idleProbe)
	if known {
		deadline = time.Unix(1, 0) // in the past: only what is buffered above the socket
	}
	_ = g.Conn.SetReadDeadline(deadline)
	n, err := g.Conn.Read(g.buf)
	_ = g.Conn.SetReadDeadline(time.Time{})
	if n > 0 {
		g.r, g.w = 0, n
		return false
	}
	return isTimeout(err)
}
