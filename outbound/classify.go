package outbound

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// verdict is the classification of one result: the reply to record and
// whether the failure is temporary (retry later) or permanent.
type verdict struct {
	Reply     *queue.Reply
	Temporary bool
	// Broken is set when the connection cannot be used any more (network
	// error, timeout, 421 "service not available, closing channel").
	Broken bool
}

// localError is a failure decided on this side, with the reply it is
// recorded as. It is used for conditions that have no remote reply: STARTTLS
// required but not offered, a message the hop cannot take (SMTPUTF8, SIZE),
// DNS results.
type localError struct {
	reply     queue.Reply
	temporary bool
	broken    bool
}

func (e *localError) Error() string { return e.reply.String() }

// mkReply builds a synthesized one-line reply.
func mkReply(code int, enhanced, text string) queue.Reply {
	return queue.Reply{Code: code, Enhanced: enhanced, Lines: []string{text}}
}

func tempLocal(code int, enhanced, text string) *localError {
	return &localError{reply: mkReply(code, enhanced, text), temporary: true}
}

func permLocal(code int, enhanced, text string) *localError {
	return &localError{reply: mkReply(code, enhanced, text)}
}

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

// classify turns an error from dialing or from the go-smtp client into a
// verdict. Remote replies are kept as they were received: 4xx is temporary,
// 5xx permanent (RFC 5321 §4.2.1), and 421 also closes the channel.
// Anything that is not a reply (connection refused, reset, timeout, TLS
// failure) is temporary and gets a synthesized reply with an RFC 3463 code
// from the X.4.x (network and routing) or X.7.x (security) class.
func classify(err error) verdict {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		r := replyFromSMTP(se)
		switch {
		case se.Code >= 500 && se.Code < 600:
			return verdict{Reply: r}
		case se.Code >= 400 && se.Code < 500:
			return verdict{Reply: r, Temporary: true, Broken: se.Code == 421}
		default:
			// A reply the protocol does not allow here (a 2xx or 3xx where
			// another code was due): the conversation is out of step.
			return verdict{Reply: r, Temporary: true, Broken: true}
		}
	}
	var le *localError
	if errors.As(err, &le) {
		rep := le.reply
		rep.Lines = append([]string(nil), le.reply.Lines...)
		return verdict{Reply: &rep, Temporary: le.temporary, Broken: le.broken}
	}
	return verdict{Reply: networkReply(err), Temporary: true, Broken: true}
}

// networkReply synthesizes the reply for a failure that the remote did not
// answer: 451 with an X.4.x code (RFC 3463 §3.5) or X.7.x for TLS.
func networkReply(err error) *queue.Reply {
	code, enh, text := 451, "4.4.2", "connection to host lost"
	var (
		opErr    *net.OpError
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		unkAuth  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		certInv  x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
	)
	dialing := errors.As(err, &opErr) && opErr.Op == "dial"
	switch {
	case errors.As(err, &certErr), errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &certInv):
		enh, text = "4.7.5", "TLS certificate of host not trusted: "+errString(err)
	case errors.As(err, &recErr), errors.As(err, &alertErr), strings.Contains(err.Error(), "tls:"):
		enh, text = "4.7.5", "TLS handshake with host failed: "+errString(err)
	case errors.As(err, &dnsErr):
		enh, text = "4.4.3", "cannot resolve host: "+errString(err)
	case errors.Is(err, syscall.ECONNREFUSED):
		enh, text = "4.4.1", "connection refused by host"
	case isTimeout(err) && dialing:
		enh, text = "4.4.1", "no answer from host: connection timed out"
	case isTimeout(err):
		enh, text = "4.4.2", "timed out waiting for host"
	case dialing:
		enh, text = "4.4.1", "cannot connect to host: "+errString(err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		enh, text = "4.4.2", "connection dropped by host"
	default:
		text = "connection to host failed: " + errString(err)
	}
	return &queue.Reply{Code: code, Enhanced: enh, Lines: []string{text}}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// errString is err's text on one line.
func errString(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
