package queue

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned by Admin operations for an ID the queue does not
// hold.
var ErrNotFound = errors.New("queue: no such message")

// Entry is one queued message as the operator sees it (edgerelay queue
// list/show).
type Entry struct {
	Envelope Envelope `json:"envelope"`
	// Leased is set while a worker is delivering the message.
	Leased bool `json:"leased,omitempty"`
	// AsOf is when this view of the envelope was written (SQS+S3: the copy
	// next to the body; spool: now).
	AsOf time.Time `json:"as_of,omitzero"`
}

// Admin is the operator's view of a queue (edgerelay queue ..., /admin/).
// Each action returns whether it took effect now (immediate) or waits for
// the next worker that receives the message (SQS+S3 marks; the spool, for
// a message a worker is delivering: applied when that attempt ends).
// Every method answers ErrNotFound (wrapped) for an ID the queue does not
// hold, an invalid one included. The worker carries out what an action
// leaves on the envelope (Hold, Operator) when it leases the message
// (outbound/operator.go). Both backends agree on these choices:
//   - Retry of a held message releases it (as Postfix's postsuper -r
//     requeues from the hold queue); Release of a message not on hold
//     changes nothing; Bounce and Delete end a hold.
//   - Bounce and Delete make the message due now, so that the worker acts
//     at once.
type Admin interface {
	List(ctx context.Context) ([]Entry, error)
	Show(ctx context.Context, id string) (*Entry, error)
	// OpenBody opens the stored message as submitted.
	OpenBody(ctx context.Context, id string) (io.ReadCloser, error)
	// Retry makes the message due now.
	Retry(ctx context.Context, id string) (immediate bool, err error)
	// RetryAll makes every held-back message that is not on hold due now
	// and returns how many.
	RetryAll(ctx context.Context) (int, error)
	Hold(ctx context.Context, id string) (immediate bool, err error)
	Release(ctx context.Context, id string) (immediate bool, err error)
	// Bounce has the pending recipients failed with 5.3.0 "deleted by the
	// operator" and reported to the sender (OperatorBounce).
	Bounce(ctx context.Context, id string) (immediate bool, err error)
	// Delete removes the message without a report (logged).
	Delete(ctx context.Context, id string) (immediate bool, err error)
}
