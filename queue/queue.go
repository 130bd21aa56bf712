package queue

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrClosed is returned by a queue that has been closed.
var ErrClosed = errors.New("queue: closed")

// ErrInsufficientStorage is wrapped by Enqueue when the backend's storage is
// full (spool: ENOSPC or EDQUOT). Nothing of the message is kept; a later
// Enqueue may succeed once space is freed, without a restart. The front end
// answers 452 4.3.1 (RFC 5321 §4.2.2 "insufficient system storage", RFC 3463
// X.3.1 "mail system full").
var ErrInsufficientStorage = errors.New("queue: insufficient storage")

// Queue is the contract that both backends keep (see ARCHITECTURE.md).
//
//   - Enqueue is durable on return: the body and the envelope are on stable
//     storage (fsync'd spool files, or an acknowledged S3 PUT and SQS send).
//     It reads body only while it runs, never after it returns (the front
//     end reuses the buffers behind body for the next message).
//     On error nothing half-written is left that could later be delivered.
//     An envelope that fails Envelope.Validate (no recipients, control
//     characters) is refused with ErrInvalidEnvelope; full storage is
//     ErrInsufficientStorage.
//   - Lease hands one due message to one caller; it stays invisible to other
//     callers until it is Rescheduled or Completed, or until the process that
//     leased it dies (then it becomes due again: at-least-once delivery).
//     The lease, with Attempts incremented, is persisted before Lease returns
//     (claim before deliver).
//   - Reschedule persists the message's Envelope as the caller left it
//     (per-recipient state included) and makes it due again at the given time.
//   - Complete removes the message, body included.
type Queue interface {
	Enqueue(ctx context.Context, env *Envelope, body io.Reader) (id string, err error)
	// Lease blocks until a message is due, ctx is done (ctx.Err()) or the
	// queue is closed (ErrClosed).
	Lease(ctx context.Context) (*Message, error)
	// Body opens the message body for reading. The caller closes it.
	Body(ctx context.Context, m *Message) (io.ReadCloser, error)
	Reschedule(ctx context.Context, m *Message, at time.Time) error
	Complete(ctx context.Context, m *Message) error
	// Close stops Lease calls in progress and releases resources.
	Close() error
}

// Message is a leased message. Envelope may be changed by the holder of the
// lease; Reschedule persists the changes.
type Message struct {
	Envelope *Envelope
	// Token is the backend's handle on the lease (spool: file path; SQS:
	// receipt handle). Callers must not touch it.
	Token any
}
