package relay

import (
	"bytes"
	"io"
)

// crlfReader passes message data through unchanged and fails with errBareLF
// at the first bare CR or bare LF.
//
// go-smtp ends DATA only at <CRLF>.<CRLF>, but the next hop (a gateway, an
// MX) may also end it at <LF>.<LF>, <LF>.<CRLF>, <CR>.<CR>… — the "SMTP
// smuggling" family (CVE-2023-51764/51765/51766). A message that contains any
// bare CR or LF is refused whole, so exactly the one message the client
// meant is accepted, or none: never two. RFC 5321 §2.3.8 says CR and LF must
// only occur together as CRLF in mail data.
type crlfReader struct {
	r      io.Reader
	prevCR bool
	err    error
}

func (c *crlfReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	// Line by line (IndexByte), not byte by byte: the first bare CR or LF
	// is at the same index as a byte-wise scan finds it (the byte after a
	// CR that is not LF, or the LF without a CR), and that is where the
	// data is cut.
	if bad := c.check(p[:n]); bad >= 0 {
		c.err = errBareLF
		return bad, c.err
	}
	if err == io.EOF && c.prevCR {
		c.err = errBareLF
		return n, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// check scans p, which follows the data already checked, updates prevCR,
// and returns the index of the first byte that makes a bare CR or LF, or -1.
func (c *crlfReader) check(p []byte) int {
	i := 0
	if c.prevCR && len(p) > 0 {
		if p[0] != '\n' {
			return 0
		}
		c.prevCR = false
		i = 1
	}
	for i < len(p) {
		end := len(p)
		lf := bytes.IndexByte(p[i:], '\n')
		if lf >= 0 {
			end = i + lf
		}
		cr := bytes.IndexByte(p[i:end], '\r')
		switch {
		case lf >= 0 && cr < 0:
			return end // LF without CR
		case cr >= 0 && i+cr+1 < end:
			return i + cr + 1 // CR followed by something other than LF
		case lf >= 0:
			i = end + 1 // CRLF
		default:
			c.prevCR = cr >= 0 // p ends with a CR, or has none
			i = end
		}
	}
	return -1
}
