package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

type EnhancedCode [3]int

// SMTPError specifies the error code, enhanced error code (if any) and
// message returned by the server.
type SMTPError struct {
	Code         int
	EnhancedCode EnhancedCode
	Message      string
}

// NoEnhancedCode is used to indicate that enhanced error code should not be
// included in response.
//
// Note that RFC 2034 requires an enhanced code to be included in all 2xx, 4xx
// and 5xx responses. This constant is exported for use by extensions, you
// should probably use EnhancedCodeNotSet instead.
var NoEnhancedCode = EnhancedCode{-1, -1, -1}

// EnhancedCodeNotSet is a nil value of EnhancedCode field in SMTPError, used
// to indicate that backend failed to provide enhanced status code. X.0.0 will
// be used (X is derived from error code).
var EnhancedCodeNotSet = EnhancedCode{0, 0, 0}

func (err *SMTPError) Error() string {
	s := fmt.Sprintf("SMTP error %03d", err.Code)
	if err.Message != "" {
		s += ": " + err.Message
	}
	return s
}

func (err *SMTPError) Temporary() bool {
	return err.Code/100 == 4
}

var ErrDataTooLarge = &SMTPError{
	Code:         552,
	EnhancedCode: EnhancedCode{5, 3, 4},
	Message:      "Maximum message size exceeded",
}

type dataReader struct {
	r     *bufio.Reader
	state int

	limited bool
	n       int64 // Maximum bytes remaining
}

func newDataReader(c *Conn) *dataReader {
	dr := &dataReader{
		r: c.text.R,
	}

	if c.server.MaxMessageBytes > 0 {
		dr.limited = true
		dr.n = int64(c.server.MaxMessageBytes)
	}

	return dr
}

// Run data through a simple state machine to elide leading dots and
// detect End-of-Data (<CR><LF>.<CR><LF>) line.
const (
	stateBeginLine = iota // beginning of line; initial state; must be zero
	stateDot              // read . at beginning of line
	stateDotCR            // read .\r at beginning of line
	stateCR               // read \r (possibly at end of line)
	stateData             // reading data in middle of line
	stateEOF              // reached .\r\n end marker line
)

// step moves the state machine past c and reports whether c is part of the
// data (a leading dot, the \r after it and the end marker's \n are not).
//
// The state machine is net/textproto's with only one modification to not
// rewrite CRLF -> LF. (Unlike textproto's, a line starting with ".\r" not
// followed by "\n" loses the "\r" as well as the dot: v0.25.1 does this,
// and so does this.)
func (r *dataReader) step(c byte) bool {
	switch r.state {
	case stateBeginLine:
		if c == '.' {
			r.state = stateDot
			return false
		}
		if c == '\r' {
			r.state = stateCR
			break
		}
		r.state = stateData
	case stateDot:
		if c == '\r' {
			r.state = stateDotCR
			return false
		}
		r.state = stateData
	case stateDotCR:
		if c == '\n' {
			r.state = stateEOF
			return false
		}
		r.state = stateData
	case stateCR:
		if c == '\n' {
			r.state = stateBeginLine
			break
		}
		r.state = stateData
	case stateData:
		if c == '\r' {
			r.state = stateCR
		}
	}
	return true
}

// Read fills b with message data until b is full or the end of the data.
//
// edgerelay patch 4: v0.25.1 ran each byte through the state machine with
// bufio.Reader.ReadByte. Now the bytes already buffered are processed in
// place, and a run of bytes in the middle of a line (up to the next \r) is
// copied at once; only the bytes around line ends go through step one at a
// time. The connection is read exactly when v0.25.1 read it (when nothing is
// buffered and b is not yet full, through ReadByte), so the data, the
// errors, the MaxMessageBytes accounting and what is left buffered after the
// end marker (pipelined commands) are the same for every input. Nothing
// keeps a reference to the buffer after Read (it goes back to the pool
// between commands). FuzzDataReaderBlocks compares it with v0.25.1's.
func (r *dataReader) Read(b []byte) (n int, err error) {
	if r.limited {
		if r.n <= 0 {
			return 0, ErrDataTooLarge
		}
		if int64(len(b)) > r.n {
			b = b[0:r.n]
		}
	}

	for n < len(b) && r.state != stateEOF {
		if r.r.Buffered() == 0 {
			// Nothing buffered: one byte through ReadByte, which
			// reads the connection as v0.25.1 did.
			var c byte
			c, err = r.r.ReadByte()
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				break
			}
			if r.step(c) {
				b[n] = c
				n++
			}
			continue
		}
		// Peek of what is buffered never reads the connection.
		buf, _ := r.r.Peek(r.r.Buffered())
		i := 0
		for i < len(buf) && n < len(b) && r.state != stateEOF {
			if r.state == stateData {
				run := buf[i:]
				if len(run) > len(b)-n {
					run = run[:len(b)-n]
				}
				if cr := bytes.IndexByte(run, '\r'); cr >= 0 {
					run = run[:cr+1]
					r.state = stateCR
				}
				n += copy(b[n:], run)
				i += len(run)
				continue
			}
			c := buf[i]
			i++
			if r.step(c) {
				b[n] = c
				n++
			}
		}
		r.r.Discard(i)
	}
	if err == nil && r.state == stateEOF {
		err = io.EOF
	}

	if r.limited {
		r.n -= int64(n)
	}
	return
}
