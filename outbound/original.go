package outbound

import (
	"bufio"
	"bytes"
	"io"
	"net/mail"
)

// original is what a report returns of the original message.
type original struct {
	ret     ReturnContent
	content []byte // CRLF line endings
	// tooBig is set when the whole message was asked for (RET=FULL) but
	// was larger than the limit, so only the header section is returned.
	tooBig bool
	// headersCut is set when the header section itself was longer than
	// the limit and is returned cut at a line end.
	headersCut bool
	// messageID is the original Message-ID, without angle brackets.
	messageID string
}

// readOriginal reads at most limit+1 bytes of the original message: all of
// it when full is set and it fits within limit, otherwise its header section
// (cut at the last line end within limit). The message is streamed; no more
// than limit+1 bytes of it are held.
func readOriginal(r io.Reader, full bool, limit int64) (original, error) {
	br := bufio.NewReader(io.LimitReader(r, limit+1))
	var o original
	var buf []byte
	if full {
		b, err := io.ReadAll(br)
		if err != nil {
			return o, err
		}
		if int64(len(b)) <= limit {
			o.ret, o.content = ReturnFull, crlf(string(b))
			o.messageID = headerMessageID(headerSection(b))
			return o, nil
		}
		o.tooBig = true
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
		o.headersCut = true
	}
	o.ret, o.content = ReturnHeaders, crlf(string(hdr))
	o.messageID = headerMessageID(hdr)
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
	return messageID(m.Header.Get("Message-Id"))
}
