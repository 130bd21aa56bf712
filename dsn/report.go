package dsn

import "time"

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
