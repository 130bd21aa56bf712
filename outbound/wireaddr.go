package outbound

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/queue"
)

// Stored addresses and the wire (issue 8 item 7).
//
// The queue stores an address as go-smtp's server hands it to the relay:
// the local part with its quoting removed ("john smith@example.net" for
// <"john smith"@example.net>), then '@', then the domain. go-smtp's client
// writes whatever string it gets between < and > without quoting it, so a
// stored local part with a space, '>' or '@' in it would reach the next hop
// as a different recipient plus ESMTP parameters, and at a domain other than
// the one it was routed by. Every address written to a next hop therefore
// goes through wirePath, and routing splits addresses with the same
// splitAddr, so the domain a message is routed by is the domain the next hop
// sees.

// splitAddr splits a stored address at its last '@': a Domain (RFC 5321
// §4.1.2) never contains '@', so everything before the last one is the
// local part. Without an '@' the whole address is returned as the domain
// and ok is false.
func splitAddr(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", addr, false
	}
	return addr[:i], addr[i+1:], true
}

// Why wirePath refused an address. The texts end up in the recorded reply
// and the NDR, so they never quote the address's bytes.
var (
	errPathNoDomain     = errors.New("address has no domain")
	errPathEmptyLocal   = errors.New("local part is empty")
	errPathLocalControl = errors.New("local part contains a control character, which RFC 5321 cannot represent")
	errPathUTF8         = errors.New("address is not valid UTF-8")
	errPathDomain       = errors.New("domain is not a domain name or address literal (RFC 5321 §4.1.2)")
)

// wirePath renders a stored address for the wire, as the text between the
// angle brackets of MAIL FROM:<…> or RCPT TO:<…> (RFC 5321 §4.1.2):
//
//	Mailbox      = Local-part "@" ( Domain / address-literal )
//	Local-part   = Dot-string / Quoted-string
//	Quoted-string   = DQUOTE *QcontentSMTP DQUOTE
//	quoted-pairSMTP = %d92 %d32-126
//	qtextSMTP       = %d32-33 / %d35-91 / %d93-126
//
// The local part is written as a Dot-string when it is one, and otherwise
// as a Quoted-string with '"' and '\' escaped; RFC 6531 §3.3 adds UTF-8 to
// both. A control character (NUL, CR, LF, TAB, DEL…) has no representation
// in either form, and a domain that is not a Domain or address-literal
// cannot be written either: both are refused, never passed on. The null
// reverse-path "" renders as "".
func wirePath(addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	if !utf8.ValidString(addr) {
		return "", errPathUTF8
	}
	local, domain, ok := splitAddr(addr)
	if !ok {
		return "", errPathNoDomain
	}
	if local == "" {
		return "", errPathEmptyLocal
	}
	if !queue.ValidDomain(domain) {
		return "", errPathDomain
	}
	if isDotString(local) {
		return addr, nil
	}
	var b strings.Builder
	b.Grow(len(addr) + 8)
	b.WriteByte('"')
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return "", errPathLocalControl
		case c == '"' || c == '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteString(`"@`)
	b.WriteString(domain)
	return b.String(), nil
}

// isDotString reports whether s is an RFC 5321 Dot-string: atoms of atext
// (RFC 5322 §3.2.3, plus UTF-8 per RFC 6531 §3.3) joined by single dots.
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext reports whether c may appear in an Atom: ALPHA, DIGIT, one of
// "!#$%&'*+-/=?^_`{|}~", or a byte of a (valid) UTF-8 sequence.
func isAtext(c byte) bool {
	switch {
	case c >= 0x80, 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// unwritable sorts the pending recipients idx of env into those that can
// be written to a next hop and those that cannot, before anything is
// dialled: a sender that cannot be written fails every recipient with
// 553 5.1.7, a recipient that cannot be written fails with 553 5.1.3
// (RFC 3463 §3.2: bad sender's / destination mailbox address syntax). Both
// are permanent: no later attempt could write them either.
func unwritable(env *queue.Envelope, idx []int) (res map[int]result, send []int) {
	res = make(map[int]result)
	if _, err := wirePath(env.From); err != nil {
		v := permanent(replyBadSender(err))
		for _, i := range idx {
			res[i] = resultOf(v, "")
		}
		return res, nil
	}
	for _, i := range idx {
		if _, err := wirePath(env.Recipients[i].Addr); err != nil {
			res[i] = resultOf(permanent(replyBadRecipient(err)), "")
			continue
		}
		send = append(send, i)
	}
	return res, send
}
