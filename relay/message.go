package relay

import (
	"crypto/tls"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
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
}

// receivedField builds the Received trace field (RFC 5321 §4.4) with the
// protocol "ESMTPSA" — ESMTP with STARTTLS/TLS and AUTH (RFC 3848) — or
// "ESMTPA" without TLS (only possible with RELAY_INSECURE_AUTH), and the TLS
// version and cipher as a comment. It never records the credentials, and
// names a recipient only when there is exactly one (as Postfix does), so a
// Bcc list is not disclosed.
func receivedField(t traceInfo) string {
	proto := "ESMTPA"
	tlsComment := ""
	if t.tls != nil {
		proto = "ESMTPSA"
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
func sanitizeComment(s string) string {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' && strings.Trim(s[1:len(s)-1], "0123456789abcdefABCDEF:.IPv6") == "" {
		return s
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '(' || r == ')' || r == '[' || r == ']' || r == '\\' {
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

// fixups returns the fields that RFC 6409 §8 lets a submission server add:
// Date (§8.2) and Message-ID (§8.3) when the client left them out. The
// second result is the message's Message-ID (existing or new).
func fixups(h *header, queueID, hostname string, now time.Time) (string, string) {
	var b strings.Builder
	if len(h.values("Date")) == 0 {
		fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	msgID := ""
	if v := h.values("Message-ID"); len(v) > 0 {
		msgID = v[0]
	}
	if msgID == "" {
		msgID = "<" + queueID + "@" + hostname + ">"
		fmt.Fprintf(&b, "Message-ID: %s\r\n", msgID)
	}
	return b.String(), msgID
}
