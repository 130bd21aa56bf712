package relay

import (
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
)

// Envelope addresses and the parameters edgerelay stores must carry no
// control characters: a NUL, CR, LF, ESC or DEL in a path could end a
// string early in a next hop, a log or a report (RFC 5321 §4.1.2 allows
// none of them in a Mailbox; RFC 6531 §3.3 asks for valid UTF-8 with
// SMTPUTF8, and C1 controls have no place in an address either).
var (
	errAddrControl  = reply(501, 5, 1, 3, "Address contains a control character or invalid UTF-8")
	errParamControl = reply(501, 5, 5, 4, "Parameter contains a control character")
)

// hasControl reports whether s contains a C0 control, DEL, a C1 control
// (U+0080–U+009F) or invalid UTF-8.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b == 0x7f {
			return true
		}
	}
	if isASCII(s) {
		return false
	}
	if !utf8.ValidString(s) {
		return true
	}
	return strings.ContainsFunc(s, func(r rune) bool { return r >= 0x80 && r <= 0x9f })
}

// checkMailParams refuses control characters in the MAIL parameters that
// edgerelay keeps or passes on: ENVID (go-smtp checks it too) and AUTH=.
func checkMailParams(o *smtp.MailOptions) error {
	if o == nil {
		return nil
	}
	if hasControl(o.EnvelopeID) || o.Auth != nil && hasControl(*o.Auth) {
		return errParamControl
	}
	return nil
}

// checkRcptParams refuses control characters in ORCPT (RFC 3461 §4.2: xtext
// decodes +00 to a NUL), which is stored and written into reports.
func checkRcptParams(o *smtp.RcptOptions) error {
	if o == nil {
		return nil
	}
	if hasControl(o.OriginalRecipient) || hasControl(string(o.OriginalRecipientType)) {
		return errParamControl
	}
	return nil
}
