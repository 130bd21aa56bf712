package relay

import (
	"context"
	"errors"
	"os"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// Replies the session gives. Each is an *smtp.SMTPError that is handed to
// go-smtp unwrapped, so the client sees exactly this code and text and never
// an internal error string.
var (
	errAuthRequired        = reply(530, 5, 7, 0, "Authentication required")
	errNullSender          = reply(553, 5, 7, 1, "The null sender <> is not allowed on submission")
	errSenderDenied        = reply(553, 5, 7, 1, "Sender address is not one of yours")
	errHeaderFrom          = reply(550, 5, 7, 1, "From header address is not one of yours")
	errNoFrom              = reply(550, 5, 6, 0, "Message has no valid From header (RFC 5322 section 3.6.2)")
	errBadHeader           = reply(550, 5, 6, 0, "Message header section is malformed")
	errBareLF              = reply(550, 5, 6, 0, "Message contains a bare CR or LF; lines must end with CRLF (RFC 5321 section 2.3.8)")
	errTooBig              = reply(552, 5, 3, 4, "Message too big")
	errHeaderTooBig        = reply(552, 5, 3, 4, "Message header section too big")
	errHeaderTooManyFields = reply(552, 5, 3, 4, "Message header section has too many fields")
	errHeaderLineTooLong   = reply(554, 5, 6, 0, "Header line longer than 4000 octets (RFC 5322 section 2.1.1 allows 998)")
	errLineTooLong         = reply(500, 5, 6, 0, "Line too long")
	errQueue               = reply(451, 4, 3, 0, "Temporary queue failure, try again later")
	errEnvelopeRefused     = reply(554, 5, 5, 0, "The queue cannot store this envelope")
	errStorage             = reply(452, 4, 3, 1, "Insufficient system storage, try again later")
	errTimeout             = reply(451, 4, 4, 2, "Timeout reading the message")
	errBadCreds            = reply(535, 5, 7, 8, "Authentication credentials invalid")
	errAuthTempFail        = reply(454, 4, 7, 0, "Temporary authentication failure, try again later")
	errAuthThrottle        = reply(454, 4, 7, 0, "Too many authentication failures, try again later")
	errAuthTooMany         = reply(421, 4, 7, 0, "Too many authentication failures, closing connection")
	errAuthSyntax          = reply(501, 5, 5, 2, "Malformed authentication exchange")
	errShutdown            = reply(421, 4, 3, 2, "Service shutting down, try again later")
	errNoRecipients        = reply(554, 5, 5, 1, "No valid recipients")
	errRcptSyntax          = reply(501, 5, 1, 3, "Bad recipient address syntax")
	errUTF8                = reply(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8 (RFC 6531)")
	errRateLimited         = reply(450, 4, 7, 1, "Sending rate limit reached for this account, try again later")
	errMechUnknown         = smtp.ErrAuthUnknownMechanism
	// errNestedMail: RFC 5321 §4.1.4, MAIL must not be sent while a
	// transaction is open.
	errNestedMail = reply(503, 5, 5, 1, "Nested MAIL command: a transaction is already open (RSET first)")
	// errAborted answers the data of a transaction that RSET, EHLO or an
	// oversized chunk aborted; the client already has its reply, so go-smtp
	// discards this one.
	errAborted = reply(451, 4, 3, 0, "Transaction aborted")
	// errQueue421 closes a connection whose aborted transaction has not
	// ended (a hung queue).
	errQueue421 = reply(421, 4, 3, 0, "Temporary queue failure, closing connection")
)

func reply(code, c1, c2, c3 int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{c1, c2, c3}, Message: msg}
}

// dataErrorReply is the one place where an error met while reading a
// message body and queueing it becomes an SMTP reply. A reply the session
// already chose passes through; a deadline is 451 4.4.2; a too-long line is
// 500 5.6.0; a full queue store is 452 4.3.1; anything else (the queue
// backend failed) is 451 4.3.0 with no internals shown.
func dataErrorReply(err error) *smtp.SMTPError {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se):
		if se == smtp.ErrDataTooLarge {
			return errTooBig
		}
		return se
	case errors.Is(err, smtp.ErrTooLongLine):
		return errLineTooLong
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	case errors.Is(err, queue.ErrInsufficientStorage):
		// RFC 5321 §4.2.2: 452 insufficient system storage; RFC 3463
		// X.3.1: mail system full.
		return errStorage
	case errors.Is(err, queue.ErrInvalidEnvelope):
		// The queue refuses this envelope whatever the time (the session
		// checks what a client can send, so this is an envelope past the
		// backend's own bounds): permanent, not a retry loop.
		return errEnvelopeRefused
	default:
		return errQueue
	}
}
