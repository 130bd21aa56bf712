package relay

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"sync"
)

// Bounds on the header section, which is held in memory while it is
// checked (the body is streamed and never held whole). A header section
// beyond them is refused, never split or truncated: what is checked is
// exactly what is stored and sent on.
const (
	// maxHeaderBytes bounds the whole header section (552 5.3.4).
	maxHeaderBytes = 1 << 20
	// maxHeaderFields bounds the number of fields (552 5.3.4). Real
	// messages have tens, a long trace a few hundred; RFC 5322 sets no
	// limit, so this is a resource bound, not a syntax rule.
	maxHeaderFields = 1000
	// maxHeaderLine bounds one physical header line, CRLF not counted
	// (554 5.6.0). RFC 5322 §2.1.1: a line MUST be no more than 998
	// characters; 4000 tolerates sloppy mail, the same limit as for a line
	// of DATA (Server.MaxLineLength), which go-smtp does not apply to BDAT.
	maxHeaderLine = 4000
)

// keptFields are the only fields whose places the session keeps: the
// originator fields it checks (RFC 5322 §3.6.2, §3.6.6) and those the
// submission fix-ups look at (RFC 6409 §8), with their values, and
// ScanHeader, which only edgerelay may write (fixups drops a client's),
// without its value. Every other field is only counted: a header of many
// tiny fields costs its raw bytes, no more.
var keptFields = []string{"From", "Sender", "Resent-From", "Resent-Sender", "Date", "Message-ID", ScanHeader}

var keptFieldBytes = func() [][]byte {
	out := make([][]byte, len(keptFields))
	for i, k := range keptFields {
		out[i] = []byte(k)
	}
	return out
}()

// header is a message's header section as received, plus the fields the
// session needs from it.
type header struct {
	raw    []byte  // exactly as received, including the blank line if present
	fields []field // the keptFields present, in order
	count  int     // all fields
}

// field is one kept header field.
type field struct {
	name  string // as in keptFields
	value string // unfolded (RFC 5322 §2.2.3: CRLF removed), trimmed; "" for ScanHeader
	// start and end delimit the field in raw, its last CRLF included.
	start, end int
}

// values returns the values of every field called name (one of
// keptFields), in order.
func (h *header) values(name string) []string {
	var out []string
	for _, f := range h.fields {
		if f.name == name {
			out = append(out, f.value)
		}
	}
	return out
}

// readHeader reads the header section (RFC 5322 §2.1) from br: everything up
// to and including the first empty line, or to the end when the message has
// no body. Lines end with CRLF here (crlfReader guarantees it).
//
// Each line is read whole, whatever the buffer size, so that the end of
// the header section is only ever a real empty line (issue 8 item 22: a
// long line read in pieces must not end it early). The bounds above are
// checked as bytes arrive.
func readHeader(br *bufio.Reader) (_ *header, err error) {
	h := headers.Get().(*header)
	defer func() {
		if err != nil {
			h.release()
		}
	}()
	cur := -1 // index in h.fields of the field being continued, or -1
	inField := false
	for {
		start := len(h.raw)
		var err error
		for {
			var piece []byte
			piece, err = br.ReadSlice('\n')
			h.raw = appendDoubling(h.raw, piece)
			if len(h.raw) > maxHeaderBytes {
				return nil, errHeaderTooBig
			}
			if len(h.raw)-start > maxHeaderLine+2 {
				return nil, errHeaderLineTooLong
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return nil, err
		}
		line := h.raw[start:]
		if len(line) == 0 { // the end of the data
			return h.unfold(), nil
		}
		if string(line) == "\r\n" {
			return h.unfold(), nil // the empty line that ends the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A continuation line (folding, RFC 5322 §2.2.3).
			if !inField {
				return nil, errBadHeader
			}
			if cur >= 0 {
				h.fields[cur].end = len(h.raw)
			}
		} else {
			name, ok := fieldName(line)
			if !ok {
				return nil, errBadHeader
			}
			h.count++
			if h.count > maxHeaderFields {
				return nil, errHeaderTooManyFields
			}
			inField, cur = true, -1
			for i, k := range keptFieldBytes {
				if bytes.EqualFold(name, k) {
					h.fields = append(h.fields, field{name: keptFields[i], start: start, end: len(h.raw)})
					cur = len(h.fields) - 1
					break
				}
			}
		}
		if err == io.EOF {
			return h.unfold(), nil
		}
	}
}

// unfold sets the kept fields' values from their bytes, once each field is
// complete (so a field folded over many lines costs linear time): the text
// after the colon with every CRLF removed (RFC 5322 §2.2.3), trimmed. A
// client's ScanHeader is only dropped, so its value is not copied.
func (h *header) unfold() *header {
	for i := range h.fields {
		f := &h.fields[i]
		if f.name == ScanHeader {
			continue
		}
		b := h.raw[f.start:f.end]
		b = b[bytes.IndexByte(b, ':')+1:]
		f.value = strings.TrimSpace(strings.ReplaceAll(string(b), "\r\n", ""))
	}
	return h
}

// headers holds headers for readHeader to reuse, their buffers with them
// (issue 10: the raw bytes, at least 4 KiB, were the largest allocation
// left per message once Data's reader was pooled). Data gives its header
// back with release when it returns; a header read elsewhere is left to
// the garbage collector.
var headers = sync.Pool{New: func() any { return new(header) }}

// release empties h and puts it in headers, unless its buffers grew past
// what is worth keeping. Nothing may use h, or anything taken from its raw
// bytes or fields, afterwards.
func (h *header) release() {
	if cap(h.raw) > 64<<10 || cap(h.fields) > 64 {
		return
	}
	clear(h.fields) // the values, so that they can be collected
	*h = header{raw: h.raw[:0], fields: h.fields[:0]}
	headers.Put(h)
}

// appendDoubling appends p to b, at least doubling the capacity when it
// grows, so that a large header costs about twice its size in
// allocations, not the five times of append's gentler growth.
func appendDoubling(b, p []byte) []byte {
	if len(b)+len(p) > cap(b) {
		nb := make([]byte, len(b), max(2*cap(b), len(b)+len(p), 4096))
		copy(nb, b)
		b = nb
	}
	return append(b, p...)
}

// fieldName returns the name of the field that starts on line (RFC 5322
// §2.2): printable US-ASCII without colon. White space before the colon is
// allowed as the obsolete syntax does (§4.5.3) and dropped, so that
// "From :" is still a From.
func fieldName(line []byte) ([]byte, bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, false
	}
	n := bytes.TrimRight(line[:colon], " \t")
	if len(n) == 0 {
		return nil, false
	}
	for _, c := range n {
		if c < 33 || c > 126 {
			return nil, false
		}
	}
	return n, true
}
