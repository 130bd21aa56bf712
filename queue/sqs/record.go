package sqs

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/edgerelay/edgerelay/queue"
)

// Messages received by someone else: an AWS Lambda event source mapping
// receives from the queue and hands the function a batch of records; the
// serverless worker (package main, lambda*.go) turns each into a lease with
// MessageFromRecord and delivers it as the long-running worker does. The
// event source deletes the records the function reports done, and leaves
// the others (ReportBatchItemFailures), so what became of a record that is
// not handed out decides how it must be reported.

// Record is a message an event source received from this queue: its ID,
// receipt handle, body and system attributes (ApproximateReceiveCount and
// SentTimestamp are used), as in AWS Lambda's SQS event.
type Record struct {
	MessageID     string
	ReceiptHandle string
	Body          string
	Attributes    map[string]string
}

var (
	// ErrSettled: the record was dealt with and must not be delivered (a
	// stale copy deleted, given back as a new copy, set aside in
	// quarantine): report it done; deleting it loses nothing.
	ErrSettled = errors.New("sqs queue: record settled without a delivery")
	// ErrKept: the record stays in the queue as it is (not an edgerelay
	// message, an unreadable envelope object, re-armed for a later
	// attempt, or S3 could not be read and the give-back failed): report
	// it as a failure, so that it is not deleted.
	ErrKept = errors.New("sqs queue: record kept in the queue")
)

// sqsMessage is r as the SQS API returns a received message.
func (r Record) sqsMessage() sqstypes.Message {
	return sqstypes.Message{
		MessageId: aws.String(r.MessageID), ReceiptHandle: aws.String(r.ReceiptHandle),
		Body: aws.String(r.Body), Attributes: r.Attributes,
	}
}

// ReturnRecord gives a record that was received but not worked on (the
// invocation ran out of time before it) back to the queue: a copy due at
// once is sent and the received one deleted, so that this receive does not
// count as a crashed delivery toward MaxDeliveryCrashes, as reporting it
// failed would. It returns ErrKept when nothing was sent (a record that is
// not an edgerelay message, or SQS refused): report it failed.
func (q *Queue) ReturnRecord(ctx context.Context, r Record) error {
	if q.giveBackCopy(ctx, r.sqsMessage(), 0) {
		return nil
	}
	return ErrKept
}

// MessageFromRecord turns a received record into a lease exactly as Lease
// does for a message it receives itself (re-arm, stale copies, quarantine,
// the operator's marks, the claimed attempt, the heartbeat), or returns
// ErrSettled or ErrKept. The lease ends with Reschedule or Complete.
func (q *Queue) MessageFromRecord(ctx context.Context, r Record) (*queue.Message, error) {
	if q.closed() {
		return nil, queue.ErrClosed
	}
	m, d := q.accept(ctx, r.sqsMessage())
	switch {
	case m != nil:
		return m, nil
	case d == settled:
		return nil, ErrSettled
	}
	return nil, ErrKept
}
