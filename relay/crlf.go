package relay

import "io"

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
	for i, b := range p[:n] {
		if c.prevCR != (b == '\n') {
			// CR followed by something other than LF, or LF without CR.
			c.err = errBareLF
			return i, c.err
		}
		c.prevCR = b == '\r'
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
