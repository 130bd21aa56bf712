package outbound

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// Replies as the next hop sent them (RFC 5321 §4.2), read by go-smtp's
// client or before it takes over (greeting, EHLO, STARTTLS).

// replyFromSMTP converts a go-smtp client error into the reply as the remote
// sent it: basic code, enhanced code (RFC 3463, when given) and text lines.
func replyFromSMTP(e *smtp.SMTPError) *queue.Reply {
	r := &queue.Reply{Code: e.Code}
	if e.EnhancedCode != smtp.EnhancedCodeNotSet && e.EnhancedCode != smtp.NoEnhancedCode {
		r.Enhanced = fmt.Sprintf("%d.%d.%d", e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2])
	}
	if e.Message != "" {
		r.Lines = strings.Split(e.Message, "\n")
	}
	return r
}

// replyFromText parses a reply text as textproto returns it ("2.0.0 OK
// queued as X", lines joined by "\n") into a Reply with the given code.
// RFC 2034 §4 repeats the enhanced code on every line; it is kept once.
func replyFromText(code int, msg string) *queue.Reply {
	r := &queue.Reply{Code: code}
	lines := strings.Split(msg, "\n")
	if enh, _, ok := strings.Cut(lines[0], " "); ok && isEnhancedCode(enh, code) {
		r.Enhanced = enh
		for i, l := range lines {
			lines[i] = strings.TrimPrefix(l, enh+" ")
		}
	} else if isEnhancedCode(lines[0], code) && len(lines) == 1 {
		r.Enhanced, lines = lines[0], nil
	}
	if len(lines) > 0 && !(len(lines) == 1 && lines[0] == "") {
		r.Lines = lines
	}
	return r
}

// isEnhancedCode reports whether s is an RFC 3463 status code whose class
// matches the basic reply code's first digit: "5.1.1" for a 550.
func isEnhancedCode(s string, code int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || parts[0] != strconv.Itoa(code/100) {
		return false
	}
	for _, p := range parts[1:] {
		if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 999 || len(p) > 3 {
			return false
		}
	}
	return true
}

// smtpErrorFromText builds the *smtp.SMTPError that go-smtp would have built
// for a reply read outside its client (the greeting and STARTTLS exchange).
func smtpErrorFromText(code int, msg string) *smtp.SMTPError {
	r := replyFromText(code, msg)
	e := &smtp.SMTPError{Code: code, Message: strings.Join(r.Lines, "\n")}
	if r.Enhanced != "" {
		fmt.Sscanf(r.Enhanced, "%d.%d.%d", &e.EnhancedCode[0], &e.EnhancedCode[1], &e.EnhancedCode[2])
	}
	return e
}
