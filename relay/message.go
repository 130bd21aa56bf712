package relay

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// fromParser parses From fields for their addresses only. Display names in
// any charset are accepted as they are (Outlook sends windows-1252, others
// iso-2022-jp…): the default decoder knows only UTF-8 and Latin-1 and would
// reject the whole field over a name edgerelay does not look at.
var fromParser = &mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, input io.Reader) (io.Reader, error) { return input, nil },
}}

// traceInfo is what the Received field records about a submission.
type traceInfo struct {
	helo     string
	remoteIP string
	hostname string
	queueID  string
	tls      *tls.ConnectionState
	rcpts    []string
	now      time.Time
	// inbound: from the MX listener, without AUTH.
	inbound bool
}

// receivedField builds the Received trace field (RFC 5321 §4.4) with the
// protocol "ESMTPSA" — ESMTP with STARTTLS/TLS and AUTH (RFC 3848) — or
// "ESMTPA" without TLS (only possible with InsecureAuth), and the TLS
// version and cipher as a comment. It never records the credentials, and
// names a recipient only when there is exactly one (as Postfix does), so a
// Bcc list is not disclosed.
func receivedField(t traceInfo) string {
	proto := "ESMTPA"
	if t.inbound {
		proto = "ESMTP"
	}
	tlsComment := ""
	if t.tls != nil {
		proto = strings.Replace(proto, "ESMTP", "ESMTPS", 1)
		tlsComment = fmt.Sprintf("\r\n\t(version=%s cipher=%s)",
			tls.VersionName(t.tls.Version), tls.CipherSuiteName(t.tls.CipherSuite))
	}
	helo := sanitizeComment(t.helo)
	var b strings.Builder
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (edgerelay) with %s id %s%s",
		helo, t.remoteIP, t.hostname, proto, t.queueID, tlsComment)
	if len(t.rcpts) == 1 && len(t.rcpts[0]) <= 256 { // RFC 5321 §4.5.3.1.3 path limit
		fmt.Fprintf(&b, "\r\n\tfor <%s>", t.rcpts[0])
	}
	fmt.Fprintf(&b, ";\r\n\t%s\r\n", t.now.Format(time.RFC1123Z))
	return b.String()
}

// sanitizeComment keeps the client-supplied HELO name from breaking the
// field: no control characters, parentheses or brackets (except around an
// address literal such as [192.0.2.1], RFC 5321 §4.1.3).
//
// It is also always ASCII (issue 8 item 29b). RFC 6531 §3.7.3 allows a
// UTF-8 name in Received only when the message travels with SMTPUTF8; an
// unverified EHLO name is no reason to require SMTPUTF8 of the next hop
// (which would bounce an otherwise ASCII message at hops without it), so a
// valid internationalized name is written as its A-label (RFC 5890
// §2.3.2.1, "xn--…") and anything else non-ASCII as '_'.
func sanitizeComment(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' && strings.Trim(s[1:len(s)-1], "0123456789abcdefABCDEF:.IPv6") == "" {
		return s
	}
	if !isASCII(s) && utf8.ValidString(s) {
		if a, err := idna.Lookup.ToASCII(s); err == nil && isASCII(a) {
			s = a
		}
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r >= 0x7f || r == '(' || r == ')' || r == '[' || r == ']' || r == '\\' {
			return '_'
		}
		return r
	}, s)
	if len(s) > 255 {
		s = s[:255]
	}
	if s == "" {
		return "unknown"
	}
	return s
}

// fixup is what the submission changes in a header section.
type fixup struct {
	add   string  // fields to put before the header section
	msgID string  // the message's Message-ID (the client's or new)
	drop  []field // fields to leave out, in order: empty Date and Message-ID, every ScanHeader
}

// fixups returns the fields that RFC 6409 §8 lets a submission server add:
// Date (§8.2) and Message-ID (§8.3) when the client left them out. A field
// that is present but empty (or only white space) counts as left out: it
// is dropped and replaced, never joined by a second one, as RFC 5322 §3.6
// allows exactly one of each (issue 8 item 29a).
//
// Every ScanHeader field the client sent is dropped too, whatever its case,
// folding or number, on every listener: that field is edgerelay's word that
// a message went unscanned (scanPlan), and a sender must not be able to
// forge it, or hide behind a copy of it, for a filter downstream to trust.
func fixups(h *header, queueID, hostname string, now time.Time) fixup {
	var fx fixup
	var b strings.Builder
	date := ""
	for _, f := range h.fields {
		switch {
		case f.name == ScanHeader:
			fx.drop = append(fx.drop, f)
		case f.name != "Date" && f.name != "Message-ID":
		case f.value == "":
			fx.drop = append(fx.drop, f)
		case f.name == "Date" && date == "":
			date = f.value
		case f.name == "Message-ID" && fx.msgID == "":
			fx.msgID = f.value
		}
	}
	if date == "" {
		fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	if fx.msgID == "" {
		fx.msgID = "<" + queueID + "@" + hostname + ">"
		fmt.Fprintf(&b, "Message-ID: %s\r\n", fx.msgID)
	}
	fx.add = b.String()
	return fx
}

// without returns the raw header section less the given fields (in
// order of appearance), as a reader over its pieces: no copy.
func (h *header) without(drop []field) io.Reader {
	if len(drop) == 0 {
		return bytes.NewReader(h.raw)
	}
	var parts []io.Reader
	at := 0
	for _, f := range drop {
		parts = append(parts, bytes.NewReader(h.raw[at:f.start]))
		at = f.end
	}
	parts = append(parts, bytes.NewReader(h.raw[at:]))
	return io.MultiReader(parts...)
}
