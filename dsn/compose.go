package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"time"
	"unicode/utf8"
)

// Report is a delivery status notification (RFC 3464) as a model: the report's
// own header fields, the human-readable explanation, the machine-readable
// per-message and per-recipient fields, and the returned original content.
// Compose writes it as a multipart/report (RFC 6522); Parse reads one
// back into the same model.
type Report struct {
	// From is the address the report comes from (MAILER-DAEMON@host). It is
	// shown with the display name "Mail Delivery System".
	From string
	// To is the original envelope sender; empty leaves the To field out
	// (a report about a message whose sender was <> goes nowhere).
	To      string
	Subject string
	Date    time.Time
	// MessageID is the report's own Message-ID, without angle brackets.
	MessageID string
	// InReplyTo is the original message's Message-ID, without angle
	// brackets, used for In-Reply-To and References; empty when unknown.
	InReplyTo string

	// Text is the human-readable explanation (the first part). Lines end
	// in "\n" or "\r\n"; Compose writes CRLF.
	Text string

	// Per-message fields (RFC 3464 §2.2).
	ReportingMTA string    // Reporting-MTA: dns; <ReportingMTA>
	EnvelopeID   string    // Original-Envelope-Id, when the sender gave ENVID
	ArrivalDate  time.Time // Arrival-Date; zero leaves it out

	Recipients []Recipient

	// SMTPUTF8 selects the internationalized media types of RFC 6533:
	// message/global-delivery-status, message/global-headers, message/global.
	SMTPUTF8 bool

	// Return says what Original holds: nothing, the header section, or the
	// whole message.
	Return ReturnContent
	// Original is the returned content with CRLF line endings: the header
	// section (ReturnHeaders, without the blank line that ends it) or the
	// whole message (ReturnFull).
	Original []byte

	// Boundary is the multipart boundary; Compose picks a random one when
	// it is empty (or when the content happens to contain it).
	Boundary string
}

// Recipient holds the per-recipient fields of a DSN (RFC 3464 §2.3).
type Recipient struct {
	// OriginalRecipient is the ORCPT value as "type;address"
	// ("rfc822;user@example.org"); empty when the sender gave none.
	OriginalRecipient string
	// FinalRecipient is the address delivery was attempted to (type rfc822,
	// or utf-8 for a non-ASCII address per RFC 6533 §3).
	FinalRecipient string
	Action         Action
	// Status is the RFC 3463 enhanced status code, "5.1.1".
	Status string
	// RemoteMTA is the host name of the server that gave DiagnosticCode
	// (type dns); empty leaves the field out.
	RemoteMTA string
	// DiagnosticCode is the remote SMTP reply on one line,
	// "550 5.1.1 user unknown" (type smtp); empty leaves the field out.
	DiagnosticCode  string
	LastAttemptDate time.Time
	// WillRetryUntil is written for delayed reports only.
	WillRetryUntil time.Time
}

// ReturnContent says which part of the original message a DSN returns
// (RFC 3461 §4.3, RET).
type ReturnContent int

// What a DSN returns of the original message.
const (
	ReturnNone    ReturnContent = iota // no third part
	ReturnHeaders                      // text/rfc822-headers (message/global-headers)
	ReturnFull                         // message/rfc822 (message/global)
)

// Media types of the parts (RFC 6522, RFC 3464 §6.1, RFC 6533 §6).
const (
	ctDeliveryStatus       = "message/delivery-status"
	ctGlobalDeliveryStatus = "message/global-delivery-status"
	ctHeaders              = "text/rfc822-headers"
	ctGlobalHeaders        = "message/global-headers"
	ctMessage              = "message/rfc822"
	ctGlobalMessage        = "message/global"
)

// DateFormat is the date-time format of RFC 5322 §3.3.
const DateFormat = "Mon, 02 Jan 2006 15:04:05 -0700"

// maxLine is the longest line Compose writes, CRLF excluded (RFC 5322 §2.1.1
// allows 998; folding aims at 78).
const maxLine = 998

// Compose writes the report as a complete message with CRLF line endings.
func (d *Report) Compose(w io.Writer) error {
	if d.ReportingMTA == "" {
		return errors.New("dsn: no Reporting-MTA")
	}
	if len(d.Recipients) == 0 {
		return errors.New("dsn: no recipients")
	}
	boundary := d.Boundary
	for boundary == "" || bytes.Contains(d.Original, []byte(boundary)) || strings.Contains(d.Text, boundary) {
		boundary = newBoundary()
	}
	bw := bufio.NewWriter(w)
	h := headerWriter{w: bw}

	// The text may come from a parsed report or a remote reply: valid UTF-8
	// whatever it held, as its charset says (found by FuzzParseDSN).
	text := crlf(ValidUTF8(d.Text))
	status := d.statusFields()
	eightBit := !IsASCII(text) || !IsASCII(status) || !IsASCII(d.Original) || !IsASCII([]byte(d.To))

	// The report's own header is ASCII unless the report is an SMTPUTF8 one
	// (RFC 6532 §3.2): addresses are made so by ASCIIOnly (a worker's
	// report to a non-ASCII address is always SMTPUTF8; this guards reports
	// recomposed from parsed ones), the Subject by an encoded word (RFC
	// 2047). Found by FuzzParseDSN.
	addr := func(s string) string {
		if s = Clean(s); !d.SMTPUTF8 {
			s = ASCIIOnly(s)
		}
		return s
	}
	subject := Clean(d.Subject)
	if !IsASCII([]byte(subject)) {
		subject = mime.QEncoding.Encode("utf-8", subject)
	}
	h.field("From", "Mail Delivery System <"+addr(d.From)+">")
	if d.To != "" {
		h.field("To", "<"+addr(d.To)+">")
	}
	h.field("Subject", subject)
	h.field("Date", d.Date.Format(DateFormat))
	if d.MessageID != "" {
		h.field("Message-ID", "<"+addr(d.MessageID)+">")
	}
	if d.InReplyTo != "" {
		h.field("In-Reply-To", "<"+addr(d.InReplyTo)+">")
		h.field("References", "<"+addr(d.InReplyTo)+">")
	}
	// RFC 3834 §5: a report generated by the mail system.
	h.field("Auto-Submitted", "auto-replied")
	h.field("MIME-Version", "1.0")
	h.field("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	h.field("Content-Transfer-Encoding", cte(eightBit))
	bw.WriteString("\r\nThis is a MIME-encapsulated message (RFC 6522 multipart/report).\r\n")

	// Part 1: the human-readable explanation (RFC 6522 §3).
	part := func(ctype string, eight bool, body []byte) {
		bw.WriteString("\r\n--" + boundary + "\r\n")
		bw.WriteString("Content-Type: " + ctype + "\r\n")
		bw.WriteString("Content-Transfer-Encoding: " + cte(eight) + "\r\n\r\n")
		bw.Write(body)
		if len(body) > 0 && !bytes.HasSuffix(body, []byte("\r\n")) {
			bw.WriteString("\r\n")
		}
	}
	charset := "us-ascii"
	if !IsASCII(text) {
		charset = "utf-8"
	}
	part("text/plain; charset="+charset, !IsASCII(text), text)

	// Part 2: the machine-readable status (RFC 3464 §2; RFC 6533 §6.2).
	ct := ctDeliveryStatus
	if d.SMTPUTF8 {
		ct = ctGlobalDeliveryStatus
	}
	part(ct, !IsASCII(status), status)

	// Part 3: the original headers or message (RFC 6522 §3, RFC 3462 §4).
	switch d.Return {
	case ReturnHeaders:
		ct := ctHeaders
		if d.SMTPUTF8 {
			ct = ctGlobalHeaders
		}
		part(ct, !IsASCII(d.Original), d.Original)
	case ReturnFull:
		ct := ctMessage
		if d.SMTPUTF8 {
			ct = ctGlobalMessage
		}
		part(ct, !IsASCII(d.Original), d.Original)
	}
	bw.WriteString("\r\n--" + boundary + "--\r\n")
	return bw.Flush()
}

// statusFields renders the message/delivery-status body: the per-message
// group, then one group per recipient, groups separated by a blank line
// (RFC 3464 §2.1).
func (d *Report) statusFields() []byte {
	var b bytes.Buffer
	h := headerWriter{w: &b}
	// Every value is ASCII in a message/delivery-status (RFC 3464 §2.1.1),
	// UTF-8 in a message/global-delivery-status (RFC 6533 §6): what a
	// parsed report or a remote MTA held is made so (found by FuzzParseDSN).
	text := func(s string) string {
		if s = Clean(s); !d.SMTPUTF8 {
			s = ASCIIOnly(s)
		}
		return s
	}
	h.field("Reporting-MTA", "dns; "+text(d.ReportingMTA))
	if d.EnvelopeID != "" {
		// RFC 3464 §2.2.1: the ENVID, decoded from xtext; printable ASCII.
		h.field("Original-Envelope-Id", ASCIIOnly(Clean(d.EnvelopeID)))
	}
	if !d.ArrivalDate.IsZero() {
		h.field("Arrival-Date", d.ArrivalDate.Format(DateFormat))
	}
	for _, r := range d.Recipients {
		b.WriteString("\r\n")
		if r.OriginalRecipient != "" {
			h.field("Original-Recipient", d.typedAddress(r.OriginalRecipient))
		}
		h.field("Final-Recipient", d.typedAddress("rfc822;"+r.FinalRecipient))
		h.field("Action", ASCIIOnly(Clean(string(r.Action))))
		h.field("Status", ASCIIOnly(Clean(r.Status)))
		if r.RemoteMTA != "" {
			h.field("Remote-MTA", "dns; "+text(r.RemoteMTA))
		}
		if r.DiagnosticCode != "" {
			h.field("Diagnostic-Code", "smtp; "+text(r.DiagnosticCode))
		}
		if !r.LastAttemptDate.IsZero() {
			h.field("Last-Attempt-Date", r.LastAttemptDate.Format(DateFormat))
		}
		if !r.WillRetryUntil.IsZero() && r.Action == Delayed {
			h.field("Will-Retry-Until", r.WillRetryUntil.Format(DateFormat))
		}
	}
	return b.Bytes()
}

// typedAddress renders "type;address" as a field value "type; address".
// An address with non-ASCII characters is of type utf-8 (RFC 6533 §3): raw
// UTF-8 in a message/global-delivery-status, utf-8-addr-xtext (\x{HEX}) in a
// plain message/delivery-status.
func (d *Report) typedAddress(v string) string {
	typ, addr, ok := strings.Cut(Clean(v), ";")
	if !ok {
		typ, addr = "rfc822", typ
	}
	typ, addr = ASCIIOnly(strings.TrimSpace(typ)), strings.TrimSpace(addr)
	if IsASCII([]byte(addr)) {
		return typ + "; " + addr
	}
	if strings.EqualFold(typ, "rfc822") {
		typ = "utf-8"
	}
	if d.SMTPUTF8 {
		return typ + "; " + addr
	}
	return typ + "; " + utf8AddrXtext(addr)
}

// utf8AddrXtext encodes non-ASCII characters as \x{HEX} and the characters
// that xtext reserves as +XX (RFC 6533 §3, utf-8-addr-xtext).
func utf8AddrXtext(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= utf8.RuneSelf:
			fmt.Fprintf(&b, `\x{%X}`, r)
		case r < '!' || r > '~' || r == '+' || r == '=' || r == '\\':
			fmt.Fprintf(&b, "+%02X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// headerWriter writes header fields, folding long values at white space
// (RFC 5322 §2.2.3) so that lines stay under 78 characters where the value
// allows it, and never exceed maxLine.
type headerWriter struct {
	w io.Writer
}

func (h headerWriter) field(name, value string) {
	io.WriteString(h.w, fold(name+": "+value))
	io.WriteString(h.w, "\r\n")
}

// fold inserts CRLF before white space so that lines are at most 78
// characters where possible. A run without white space longer than maxLine
// is broken with an inserted space: it cannot be folded otherwise.
func fold(s string) string {
	const soft = 78
	if len(s) <= soft {
		return s
	}
	var b strings.Builder
	line := 0 // length of the current output line
	for s != "" {
		// Next token: leading white space plus a word.
		i := 0
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		j := i
		for j < len(s) && s[j] != ' ' && s[j] != '\t' {
			j++
		}
		tok := s[:j]
		s = s[j:]
		if line > 0 && i > 0 && line+len(tok) > soft {
			b.WriteString("\r\n")
			line = 0
		}
		for line+len(tok) > maxLine {
			// Progress: with line ≤ 1 the cut is at least 1 byte; a cut of 0
			// (the character does not fit on a line already begun) only
			// breaks the line, after which line is 1.
			n := 0
			if room := maxLine - line; room >= 1 {
				n = CutAt(tok, room)
				if !utf8.RuneStart(tok[n]) && line > 1 {
					n = 0
				}
			}
			b.WriteString(tok[:n])
			b.WriteString("\r\n ")
			line = 1
			tok = tok[n:]
		}
		b.WriteString(tok)
		line += len(tok)
	}
	return b.String()
}

// Clean removes control characters (CR and LF included) that would break
// the header structure; tabs become spaces. Bytes that are not UTF-8
// become U+FFFD: every field Compose writes is valid UTF-8 (RFC 6532 §3.2
// for the global types; ASCII fields are made so by ASCIIOnly).
func Clean(s string) string {
	s = ValidUTF8(s)
	if !strings.ContainsFunc(s, isCtl) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		if isCtl(r) {
			return -1
		}
		return r
	}, s)
}

func isCtl(r rune) bool { return r < ' ' || r == 0x7f }

// ASCIIOnly replaces non-ASCII and invalid bytes with '?', for fields that
// must be ASCII in a message/delivery-status.
func ASCIIOnly(s string) string {
	if IsASCII([]byte(s)) {
		return s
	}
	b := []byte(s)
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r < utf8.RuneSelf {
			out = append(out, byte(r))
		} else {
			out = append(out, '?')
		}
		b = b[n:]
	}
	return string(out)
}

// IsASCII reports whether b holds only 7-bit bytes.
func IsASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func cte(eightBit bool) string {
	if eightBit {
		return "8bit"
	}
	return "7bit"
}

// crlf returns s with every line ending (LF, CR or CRLF) as CRLF and every
// line at most maxLine long (longer lines are broken; they cannot occur in
// text we write ourselves).
func crlf(s string) []byte {
	var b bytes.Buffer
	for s != "" {
		i := strings.IndexAny(s, "\r\n")
		line := s
		if i >= 0 {
			line = s[:i]
			if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			s = s[i+1:]
		} else {
			s = ""
		}
		for len(line) > maxLine {
			n := CutAt(line, maxLine) // ≥ 1: the loop progresses
			b.WriteString(line[:n] + "\r\n")
			line = line[n:]
		}
		b.WriteString(line + "\r\n")
	}
	return b.Bytes()
}

func newBoundary() string {
	var r [12]byte
	rand.Read(r[:])
	return "=_edgerelay_" + hex.EncodeToString(r[:])
}
