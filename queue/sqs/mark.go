package sqs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Operator marks (issue 13). SQS cannot change a message it holds, and the
// operator has no receipt handle, so `edgerelay queue hold/release/retry/
// bounce/delete` write a mark object next to the body,
// <prefix><id>.op.json, and the next receive of the message acts on it:
// accept reads it (one S3 GET per receive, a 404 when there is none) and
// sets the leased envelope's Hold and Operator from it, so that the worker
// carries them out as it does for the spool.
//
// The mark is a separate object that only the operator's commands write;
// Reschedule and the view never touch it, so a mark racing with a worker's
// Reschedule is never lost (a mark written during a delivery takes effect
// at the next receive). Two operators writing one mark at once: the last
// write wins. The mark object is the only source of Hold and Operator for
// this backend: whatever the SQS copy carries is replaced at receive.
//
// A mark asked for after the copy was sent (RetryAt, compared with the
// copy's SentTimestamp) makes the receive hand the message out even if it
// is not due: retry, release, bounce and delete do not wait for the next
// attempt. Complete deletes the mark with the body.

// markObject is the content of <prefix><id>.op.json.
type markObject struct {
	V        int    `json:"v"`
	Hold     bool   `json:"hold,omitempty"`
	Operator string `json:"operator,omitempty"`
	// RetryAt is when the operator last asked for the message to be tried
	// now (retry, release, bounce, delete).
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// markKey is the key of message id's operator mark.
func (q *Queue) markKey(id string) string { return q.o.Prefix + id + ".op.json" }

// readMark reads message id's mark; nil when there is none. A mark that
// is not valid JSON is an error (the receive gives the message back
// rather than deliver something the operator may have held).
func (q *Queue) readMark(ctx context.Context, id string) (*markObject, error) {
	data, found, err := q.getSmall(ctx, q.markKey(id), maxMarkObject)
	if err != nil || !found {
		return nil, err
	}
	mk, err := parseMark(data)
	if err != nil {
		return nil, fmt.Errorf("%w: s3://%s/%s: %w", errBadMark, q.o.Bucket, q.markKey(id), err)
	}
	return mk, nil
}

// errBadMark: a mark object exists and is not a mark. The message is not
// delivered (the mark may have been a hold) until an operator's command
// rewrites it; each receive logs it at ERROR.
var errBadMark = errors.New("unreadable operator mark")

// maxMarkObject bounds a mark object.
const maxMarkObject = 64 << 10

// parseMark decodes a mark object.
func parseMark(data []byte) (*markObject, error) {
	var mk markObject
	if err := json.Unmarshal(data, &mk); err != nil {
		return nil, err
	}
	return &mk, nil
}

// writeMark writes message id's mark.
func (q *Queue) writeMark(ctx context.Context, id string, mk *markObject) error {
	mk.V = viewVersion
	data, err := json.Marshal(mk)
	if err != nil {
		return err
	}
	return q.putJSON(ctx, q.markKey(id), data)
}

// mergeMark sets env's Hold and Operator from mk (none: not held, no
// action) and reports whether the receive must hand the message out even
// if it is not due: the operator asked for something after the copy was
// sent at sent. An Operator value this version does not know is ignored.
func mergeMark(env *queue.Envelope, mk *markObject, sent time.Time) (force bool) {
	env.Hold, env.Operator = false, ""
	if mk == nil {
		return false
	}
	env.Hold = mk.Hold
	switch mk.Operator {
	case queue.OperatorBounce, queue.OperatorDelete:
		env.Operator = mk.Operator
	}
	asked := !mk.RetryAt.IsZero() && (sent.IsZero() || mk.RetryAt.After(sent.Add(-dueSlack)))
	return env.Operator != "" || (asked && !env.Hold)
}

// askedSince reports whether the operator asked for message id to be
// tried now (retry, release, bounce, delete: RetryAt) after since, when a
// lease read the mark: that lease did not see it, so its Reschedule makes
// the message due at once, as the spool applies an action asked during a
// delivery when the attempt ends. Without it the new copy, sent after the
// mark, would not count it as asked and wait for the next attempt. A mark
// that cannot be read changes nothing here: the next receive deals with
// it.
func (q *Queue) askedSince(ctx context.Context, id string, since time.Time) bool {
	mk, err := q.readMark(ctx, id)
	return err == nil && mk != nil && !mk.Hold && mk.RetryAt.After(since)
}
