package queue

// Limits on what a recipient's recorded state may hold. The outbound worker
// bounds what it records to them; the SQS backend sizes envelopes against
// them (an SQS message holds at most 256 KiB, and per-recipient state grows
// after the first attempt: issue 8 item 3).
const (
	// MaxReplyText is the most bytes of reply text (Reply.Lines joined by
	// "\n") recorded on one recipient.
	MaxReplyText = 512
	// MaxRemoteMTA is the most bytes of a recorded Recipient.RemoteMTA: a
	// host name (RFC 1035: 255 octets) plus the bracketed address.
	MaxRemoteMTA = 320
	// MaxRoute is the most bytes of Envelope.Route: a domain name of at
	// most 253 octets in text (RFC 1035 §2.3.4's 255 on the wire).
	MaxRoute = 253
)

// DefaultMaxDeliveryCrashes is how many claims of one message may end
// without Reschedule or Complete (the process died during the delivery)
// before the message is set aside (spool: quarantine; SQS: the dead-letter
// queue). Both backends use it when their option is zero.
const DefaultMaxDeliveryCrashes = 3
