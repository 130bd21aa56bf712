package sqs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/edgerelay/edgerelay/queue"
)

// Reschedule persists m.Envelope as the caller left it (per-recipient
// state, replies, attempts) and makes the message due at at.
//
// SQS cannot change a message in place, and ChangeMessageVisibility alone
// would lose the updated state and count every retry as a receive against
// the dead-letter redrive. So Reschedule sends the updated envelope as a
// new message, with NextAttempt = at and DelaySeconds = min(at-now, 15 min),
// and then deletes the leased one. A receive before NextAttempt re-arms
// (see Lease). Send before delete: a crash in between leaves two copies
// (the older one is delivered again: a rare duplicate), never none.
//
// An operator's retry, release, bounce or delete written after this lease
// read the mark makes the message due now (mark.go: askedSince; one S3
// GET when at is later than now).
//
// The lease ends whatever the outcome; on error the message keeps its old
// state and is received again when its visibility timeout ends.
func (q *Queue) Reschedule(ctx context.Context, m *queue.Message, at time.Time) error {
	l, err := leaseOf(m)
	if err != nil {
		return err
	}
	if err := l.end(); err != nil {
		return fmt.Errorf("sqs queue: reschedule %s: %w", idOf(m), err)
	}
	now := q.o.Now()
	if at.IsZero() || at.After(now) && q.askedSince(ctx, idOf(m), l.received) {
		at = now
	}
	m.Envelope.NextAttempt = at
	delay := min(max(at.Sub(now), 0), maxDelay)
	data, envKey, err := q.encode(ctx, m.Envelope, l.key, seconds(delay))
	if err != nil {
		return fmt.Errorf("sqs queue: reschedule %s: %w", idOf(m), err)
	}
	if err := q.sendDelayed(ctx, data, seconds(delay)); err != nil {
		cctx, cancel := cleanupCtx(ctx)
		q.deleteEnvObject(cctx, envKey, idOf(m))
		cancel()
		return fmt.Errorf("sqs queue: reschedule %s: %w", idOf(m), err)
	}
	if _, err := q.o.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(l.handle)}); err != nil {
		q.log.Warn("sqs queue: rescheduled, but the old copy could not be deleted; it may be delivered again", "id", idOf(m), "sqs_message_id", l.messageID, "err", err)
	}
	// The old copy's envelope object goes once the new copy is sent: a
	// copy that was not deleted then finds it gone and is dropped as stale.
	q.deleteEnvObject(ctx, l.envKey, idOf(m))
	q.waitView(idOf(m))
	q.writeView(ctx, m.Envelope, "")
	q.log.Debug("sqs queue: rescheduled", "id", idOf(m), "next_attempt", at, "delay", delay)
	return nil
}

// Complete removes the message: the SQS message, then the body object (and
// the envelope object of a large envelope, the operator's copy and mark).
// Either delete alone is enough to retire the message (a copy whose body
// is gone is dropped by Lease), so Complete fails only when both fail. A
// body left behind by a failed delete is removed by the lifecycle rule.
func (q *Queue) Complete(ctx context.Context, m *queue.Message) error {
	l, err := leaseOf(m)
	if err != nil {
		return err
	}
	if err := l.end(); err != nil {
		return fmt.Errorf("sqs queue: complete %s: %w", idOf(m), err)
	}
	_, qerr := q.o.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(l.handle)})
	berr := q.deleteBody(ctx, l.key)
	q.deleteEnvObject(ctx, l.envKey, idOf(m))
	q.waitView(idOf(m))
	q.deleteExtras(ctx, idOf(m))
	switch {
	case qerr != nil && berr != nil:
		return fmt.Errorf("sqs queue: complete %s: %w", idOf(m), errors.Join(qerr, berr))
	case qerr != nil:
		q.log.Warn("sqs queue: completed, but the SQS message could not be deleted; its next receive drops it (body gone)", "id", idOf(m), "err", qerr)
	case berr != nil:
		q.log.Warn("sqs queue: completed, but the body object could not be deleted; the lifecycle rule removes it", "id", idOf(m), "err", berr)
	}
	q.log.Debug("sqs queue: completed", "id", idOf(m))
	return nil
}
