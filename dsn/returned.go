package dsn

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
	"strings"
)

// Returned is what a report returns of the original message.
type Returned struct {
	// Return says what Content holds: the header section or the whole
	// message.
	Return  ReturnContent
	Content []byte // CRLF line endings
	// TooBig is set when the whole message was asked for (RET=FULL) but
	// was larger than the limit, so only the header section is returned.
	TooBig bool
	// LongLines is set when the whole message was asked for but has lines
	// longer than RFC 5322 allows, which a report cannot carry unchanged.
	LongLines bool
	// HeadersCut is set when the header section itself was longer than
	// the limit and is returned cut at a line end.
	HeadersCut bool
	// MessageID is the original Message-ID, without angle brackets.
	MessageID string
}

// ReadReturned reads at most limit+1 bytes of the original message: all of
// it when full is set and it fits within limit, otherwise its header section
// (cut at the last line end within limit). The message is streamed; no more
// than limit+1 bytes of it are held.
func ReadReturned(r io.Reader, full bool, limit int64) (Returned, error) {
	br := bufio.NewReader(io.LimitReader(r, limit+1))
	var o Returned
	var buf []byte
	if full {
		b, err := io.ReadAll(br)
		if err != nil {
			return o, err
		}
		if int64(len(b)) <= limit {
			if content, ok := normalizeLines(b, false); ok {
				o.Return, o.Content = ReturnFull, content
				o.MessageID = headerMessageID(headerSection(b))
				return o, nil
			}
			o.LongLines = true
		} else {
			o.TooBig = true
		}
		buf = b
	} else {
		// Read line by line up to the blank line that ends the header
		// section: the body is never read.
		var b bytes.Buffer
		midLine := false // the last chunk ended without a line end
		for {
			line, err := br.ReadSlice('\n')
			b.Write(line)
			if !midLine && isBlankLine(line) && err == nil {
				break
			}
			midLine = err == bufio.ErrBufferFull
			if midLine {
				continue
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				return o, err
			}
		}
		buf = b.Bytes()
	}
	hdr := headerSection(buf)
	if int64(len(buf)) > limit && len(hdr) == len(buf) {
		// No end of the header section within the limit: cut at the last
		// line end.
		if i := bytes.LastIndexByte(hdr[:limit], '\n'); i >= 0 {
			hdr = hdr[:i+1]
		} else {
			hdr = nil
		}
		o.HeadersCut = true
	}
	content, _ := normalizeLines(hdr, true) // folding always succeeds
	o.Return, o.Content = ReturnHeaders, content
	o.MessageID = headerMessageID(hdr)
	return o, nil
}

// headerSection returns the header lines at the start of msg, without the
// blank line that ends them (RFC 5322 §2.1), or all of msg when it has no
// blank line.
func headerSection(msg []byte) []byte {
	for i := 0; i < len(msg); {
		j := bytes.IndexByte(msg[i:], '\n')
		if j < 0 {
			return msg
		}
		if isBlankLine(msg[i : i+j+1]) {
			return msg[:i]
		}
		i += j + 1
	}
	return msg
}

func isBlankLine(l []byte) bool {
	return len(l) == 1 && l[0] == '\n' || len(l) == 2 && l[0] == '\r' && l[1] == '\n'
}

// headerMessageID returns the Message-ID field of a header section, or ""
// when there is none or the section does not parse.
func headerMessageID(hdr []byte) string {
	m, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader([]byte("\r\n"))))
	if err != nil {
		return ""
	}
	return CleanMessageID(m.Header.Get("Message-Id"))
}

// normalizeLines returns b with CRLF line endings (a bare LF or CR ends a
// line too). A line longer than maxLine cannot be carried unchanged: in a
// header section (fold set) it is folded with CRLF + space, which keeps it
// one field (RFC 5322 §2.2.3); otherwise normalizeLines reports false.
func normalizeLines(b []byte, fold bool) ([]byte, bool) {
	out := make([]byte, 0, len(b)+len(b)/32)
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		line := b
		if i >= 0 {
			line = b[:i]
			if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
				i++
			}
			b = b[i+1:]
		} else {
			b = nil
		}
		width := maxLine
		for len(line) > width {
			if !fold {
				return nil, false
			}
			n := CutAt(line, width) // ≥ 1: the loop progresses
			out = append(out, line[:n]...)
			out = append(out, "\r\n "...)
			line = line[n:]
			width = maxLine - 1 // the continuation starts with the space
		}
		out = append(out, line...)
		out = append(out, "\r\n"...)
	}
	return out, true
}

// CleanMessageID returns a Message-ID without angle brackets, or "" when id is
// not usable in a header field.
func CleanMessageID(id string) string {
	id = unbracket(id)
	if id == "" || len(id) > 900 || strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == '<' || r == '>' || r == 0x7f }) {
		return ""
	}
	return id
}
