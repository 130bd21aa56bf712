// Package queue is the durable message queue that sits between the
// submission front end (relay) and the delivery worker (outbound). A message
// is an Envelope (sender, recipients with per-recipient state, DSN options,
// attempts, times) plus a body blob that is streamed, never held whole in
// memory.
//
// This package is the contract only: the Queue interface and the rules
// written on it, Message, Envelope, Recipient, Reply, IDs, the errors
// (ErrClosed, ErrInvalidEnvelope, ErrInsufficientStorage), the limits on
// recorded state, ValidDomain and Envelope.Validate. It imports nothing of
// ours and no SDK, so the front end links neither backend's dependencies.
// The backends are queue/spool (the local spool, the embedded default) and
// queue/sqs (SQS + S3); queue/queuetest is the contract suite both pass.
package queue

import (
	"slices"
	"strings"
	"time"
)

// RcptStatus is the delivery state of one recipient.
type RcptStatus string

// Recipient states. A message leaves the queue once no recipient is pending.
const (
	// StatusPending: not yet delivered; will be (re)tried.
	StatusPending RcptStatus = "pending"
	// StatusDelivered: the next hop answered 250 and promised a DSN of its own
	// where the sender asked for one.
	StatusDelivered RcptStatus = "delivered"
	// StatusRelayed: the next hop answered 250 but does not speak DSN, so
	// edgerelay reports "relayed" itself for NOTIFY=SUCCESS (RFC 3461 §6.2.2).
	StatusRelayed RcptStatus = "relayed"
	// StatusFailed: permanently failed (5xx, or the queue lifetime ran out).
	StatusFailed RcptStatus = "failed"
)

// Done reports whether the recipient needs no more delivery attempts.
func (s RcptStatus) Done() bool { return s != StatusPending && s != "" }

// Reply is a remote server's reply as it was received: the basic code, the
// RFC 3463 enhanced status code (empty when the remote gave none) and the
// text lines.
type Reply struct {
	Code     int      `json:"code"`
	Enhanced string   `json:"enhanced,omitempty"`
	Lines    []string `json:"lines,omitempty"`
}

// String renders the reply on one line, as logs and Diagnostic-Code fields
// show it: "550 5.1.1 user unknown".
func (r *Reply) String() string {
	if r == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(itoa3(r.Code))
	if r.Enhanced != "" {
		b.WriteString(" " + r.Enhanced)
	}
	if len(r.Lines) > 0 {
		b.WriteString(" " + strings.Join(r.Lines, " "))
	}
	return b.String()
}

func itoa3(n int) string {
	if n < 0 || n > 999 {
		return "000"
	}
	return string([]byte{byte('0' + n/100), byte('0' + n/10%10), byte('0' + n%10)})
}

// DSN NOTIFY keywords (RFC 3461 §4.1).
const (
	NotifyNever   = "NEVER"
	NotifySuccess = "SUCCESS"
	NotifyFailure = "FAILURE"
	NotifyDelay   = "DELAY"
)

// Recipient is one envelope recipient with its own delivery state.
type Recipient struct {
	// Addr is the forward-path, without angle brackets.
	Addr string `json:"addr"`
	// ORCPT is the RFC 3461 ORCPT parameter, decoded: "rfc822;user@example.org".
	ORCPT string `json:"orcpt,omitempty"`
	// Notify is the RFC 3461 NOTIFY list; empty means the default
	// (FAILURE and DELAY, at the MTA's discretion).
	Notify []string `json:"notify,omitempty"`

	Status      RcptStatus `json:"status"`
	Attempts    int        `json:"attempts,omitempty"`
	LastAttempt time.Time  `json:"last_attempt,omitzero"`
	// RemoteMTA is the host that gave Reply ("mx1.example.net [192.0.2.1]").
	RemoteMTA string `json:"remote_mta,omitempty"`
	// Reply is the last reply for this recipient, or a synthesized one for
	// local decisions (expiry: 4.4.7; no such domain: 5.1.2).
	Reply *Reply `json:"reply,omitempty"`
	// Reported is set once the report owed for the final Status (NDR, or
	// "relayed"/"delivered" DSN) has been produced, so it is produced once.
	Reported bool `json:"reported,omitempty"`
	// DelayReported is set once a "delayed" DSN covered this recipient.
	DelayReported bool `json:"delay_reported,omitempty"`
}

// Wants reports whether the recipient's NOTIFY asks for reports of the given
// kind (NotifySuccess, NotifyFailure, NotifyDelay). Without NOTIFY, failure
// and delay are reported (RFC 3461 §4.1).
func (r *Recipient) Wants(kind string) bool {
	if len(r.Notify) == 0 {
		return kind == NotifyFailure || kind == NotifyDelay
	}
	return slices.ContainsFunc(r.Notify, func(n string) bool { return strings.EqualFold(n, kind) })
}

// Envelope is everything about a queued message except its body.
type Envelope struct {
	// ID is the queue ID, shown in the 250 reply and in every log line about
	// the message. Enqueue assigns one when it is empty; when it is set,
	// Enqueue is idempotent for that ID where the backend can tell.
	ID string `json:"id"`
	// From is the reverse-path; empty is the null reverse-path <>.
	From       string      `json:"from"`
	Recipients []Recipient `json:"recipients"`
	// User is the authenticated identity that submitted the message.
	User string `json:"user,omitempty"`
	// RET is the RFC 3461 RET parameter: "FULL", "HDRS" or empty.
	RET string `json:"ret,omitempty"`
	// EnvID is the RFC 3461 ENVID parameter, decoded.
	EnvID string `json:"envid,omitempty"`
	// SMTPUTF8 is set when the message was submitted with SMTPUTF8 (RFC 6531).
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
	// Body8Bit is set for BODY=8BITMIME submissions.
	Body8Bit bool `json:"body_8bit,omitempty"`
	// Bounce marks a report generated by edgerelay itself (From is <>): it is
	// never bounced again.
	Bounce bool `json:"bounce,omitempty"`
	// MessageID is the header Message-ID of the body, for In-Reply-To in reports.
	MessageID string `json:"message_id,omitempty"`

	Arrival     time.Time `json:"arrival"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// Attempts counts delivery attempts started (claimed before delivering).
	Attempts int `json:"attempts,omitempty"`
	// Size is the body size in bytes.
	Size int64 `json:"size"`
	// DelayWarned is set once the "delayed" DSN for this message was produced.
	DelayWarned bool `json:"delay_warned,omitempty"`
}

// Pending returns the indexes of recipients that still need delivery.
func (e *Envelope) Pending() []int {
	var idx []int
	for i := range e.Recipients {
		if !e.Recipients[i].Status.Done() {
			idx = append(idx, i)
		}
	}
	return idx
}

// Clone returns a deep copy of e.
func (e *Envelope) Clone() *Envelope {
	c := *e
	c.Recipients = make([]Recipient, len(e.Recipients))
	for i, r := range e.Recipients {
		r.Notify = slices.Clone(r.Notify)
		if r.Reply != nil {
			rep := *r.Reply
			rep.Lines = slices.Clone(rep.Lines)
			r.Reply = &rep
		}
		c.Recipients[i] = r
	}
	return &c
}
