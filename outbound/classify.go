package outbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// classify turns an error from dialing, from TLS or from the go-smtp client
// into a verdict, by the error's type and never by its text. Remote replies
// (*smtp.SMTPError) are kept as they were received: 4xx is temporary, 5xx
// permanent (RFC 5321 §4.2.1), and 421 also closes the channel. Anything
// that is not a reply (connection refused, reset, timeout, TLS failure) is
// temporary, breaks the connection, and gets a synthesized reply from
// networkReply. Decisions made here never come through classify: they
// return their verdict directly (replies.go).
func classify(err error) verdict {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		r := replyFromSMTP(se)
		switch {
		case se.Code >= 500 && se.Code < 600:
			return permanent(r)
		case se.Code >= 400 && se.Code < 500:
			return verdict{Reply: r, Temporary: true, Broken: se.Code == 421}
		default:
			// A reply the protocol does not allow here (a 2xx or 3xx where
			// another code was due): the conversation is out of step.
			return dropped(r)
		}
	}
	return dropped(networkReply(err))
}

// classifyHandshake is classify for an error from a TLS handshake: what
// is not a network failure (a timeout, a dropped connection, a refused
// certificate) is a failed handshake, whatever its type, because of where
// it came from: crypto/tls returns many handshake failures as plain errors.
// An I/O error that typedNetworkReply does not name (a *net.OpError that is
// not a TLS alert, a system call's errno: no route to host, network
// unreachable) is a network failure, as networkReply says.
func classifyHandshake(err error) verdict {
	if r, ok := typedNetworkReply(err); ok {
		return dropped(r)
	}
	var (
		opErr *net.OpError
		errno syscall.Errno
	)
	if errors.As(err, &opErr) || errors.As(err, &errno) {
		return dropped(networkReply(err))
	}
	return dropped(reply(451, "4.7.5", "TLS handshake with host failed: "+errString(err)))
}

// networkReply synthesizes the reply for a failure that the remote did not
// answer: 451 with an X.4.x code (RFC 3463 §3.5) or X.7.x for TLS (§3.8).
func networkReply(err error) *queue.Reply {
	if r, ok := typedNetworkReply(err); ok {
		return r
	}
	return reply(451, "4.4.2", "connection to host failed: "+errString(err))
}

// typedNetworkReply is networkReply for the error types it knows; ok is
// false for any other error. The mapping, first match wins:
//
//	*tls.CertificateVerificationError, x509.UnknownAuthorityError,
//	x509.HostnameError, x509.CertificateInvalidError  4.7.5 certificate not trusted
//	tls.RecordHeaderError, tls.AlertError, *net.OpError
//	  with Op "local error"/"remote error" (a TLS alert)  4.7.5 TLS handshake failed
//	errOutOfStep (replyGuard), context.Canceled         4.4.2 connection failed
//	*net.DNSError                                       4.4.3 cannot resolve host
//	syscall.ECONNREFUSED                                4.4.1 connection refused
//	timeout (net.Error.Timeout, os.ErrDeadlineExceeded,
//	  context.DeadlineExceeded) while dialing           4.4.1 no answer from host
//	timeout otherwise                                   4.4.2 timed out waiting
//	*net.OpError with Op "dial"                         4.4.1 cannot connect
//	io.EOF, io.ErrUnexpectedEOF, ECONNRESET, EPIPE,
//	  net.ErrClosed                                     4.4.2 connection dropped
func typedNetworkReply(err error) (*queue.Reply, bool) {
	var (
		opErr   *net.OpError
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unkAuth x509.UnknownAuthorityError
		hostErr x509.HostnameError
		certInv x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
	)
	dialing := errors.As(err, &opErr) && opErr.Op == "dial"
	switch {
	case errors.As(err, &certErr), errors.As(err, &unkAuth), errors.As(err, &hostErr), errors.As(err, &certInv):
		return reply(451, "4.7.5", "TLS certificate of host not trusted: "+errString(err)), true
	case errors.As(err, &recErr), errors.As(err, &alert), isTLSAlert(err):
		return reply(451, "4.7.5", "TLS handshake with host failed: "+errString(err)), true
	case errors.Is(err, errOutOfStep), errors.Is(err, context.Canceled):
		return reply(451, "4.4.2", "connection to host failed: "+errString(err)), true
	case errors.As(err, &dnsErr):
		return reply(451, "4.4.3", "cannot resolve host: "+errString(err)), true
	case errors.Is(err, syscall.ECONNREFUSED):
		return reply(451, "4.4.1", "connection refused by host"), true
	case isTimeout(err) && dialing:
		return reply(451, "4.4.1", "no answer from host: connection timed out"), true
	case isTimeout(err):
		return reply(451, "4.4.2", "timed out waiting for host"), true
	case dialing:
		return reply(451, "4.4.1", "cannot connect to host: "+errString(err)), true
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return reply(451, "4.4.2", "connection dropped by host"), true
	}
	return nil, false
}

// isTLSAlert reports whether err is a TLS alert on a TCP connection:
// crypto/tls reports an alert it sent or received as a *net.OpError with
// Op "local error" or "remote error" around its unexported alert type, and
// it is the only user of those two Ops.
func isTLSAlert(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && (opErr.Op == "local error" || opErr.Op == "remote error")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// errString is err's text on one line, for the text of a synthesized
// reply (never for deciding anything).
func errString(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
