package queue

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Enqueue streams the body to S3 at <prefix><id>.eml, then sends the
// envelope as an SQS message (claim-check), and returns only when both are
// acknowledged: the message is durable on return. It sets env.ID (when
// empty), env.Arrival (when zero) and env.Size.
//
// When either step fails it returns the error (the relay answers 451 4.3.0)
// and deletes the body object, best effort; the bucket's lifecycle rule
// removes what a crash or a failed delete leaves (docs/aws.md). An envelope
// that cannot fit in an SQS message fails before any upload, with
// ErrEnvelopeTooLarge.
//
// With a preset env.ID the body key uses it, and idempotency is best
// effort: enqueueing an ID that is already queued overwrites its body with
// (presumably) the same bytes and queues a second envelope, which Lease
// drops if the first copy completes first (its body is gone) and otherwise
// delivers again. A failed Enqueue never deletes a body that existed before
// it, so a retry cannot break the copy already queued.
func (q *SQSQueue) Enqueue(ctx context.Context, env *Envelope, body io.Reader) (string, error) {
	// Issue 8 item 1: an envelope with no recipients (or control characters)
	// would be "delivered" by completing it: refuse it before anything is
	// stored.
	if err := env.Validate(); err != nil {
		return "", fmt.Errorf("sqs queue: enqueue: %w", err)
	}
	if q.closed() {
		return "", ErrClosed
	}
	preset := env.ID != ""
	if !preset {
		env.ID = NewID()
	} else if !ValidID(env.ID) {
		return "", fmt.Errorf("sqs queue: enqueue: invalid message ID %q", env.ID)
	}
	if env.Arrival.IsZero() {
		env.Arrival = q.o.Now()
	}
	id, key := env.ID, q.bodyKey(env.ID)
	if err := checkWireSize(env, key); err != nil {
		return "", fmt.Errorf("sqs queue: enqueue %s: %w", id, err)
	}

	existed := false
	if preset {
		ok, err := q.bodyExists(ctx, key)
		if err != nil {
			return "", fmt.Errorf("sqs queue: enqueue %s: check for an earlier copy: %w", id, err)
		}
		existed = ok
	}
	fail := func(err error) (string, error) {
		if !existed {
			cctx, cancel := cleanupCtx(ctx)
			defer cancel()
			if derr := q.deleteBody(cctx, key); derr != nil {
				q.log.Warn("sqs queue: body of a failed enqueue left behind; the lifecycle rule removes it", "id", id, "err", derr)
			}
		}
		return "", fmt.Errorf("sqs queue: enqueue %s: %w", id, err)
	}

	n, err := q.putBody(ctx, key, body)
	if err != nil {
		return fail(err)
	}
	env.Size = n
	data, err := encodeWire(env, key, 0)
	if err != nil {
		return fail(err)
	}
	if err := q.send(ctx, data); err != nil {
		return fail(err)
	}
	q.log.Debug("sqs queue: enqueued", "id", id, "size", n, "rcpts", len(env.Recipients))
	return id, nil
}

// send sends one envelope with no delay, through the batcher when enabled.
func (q *SQSQueue) send(ctx context.Context, data []byte) error {
	if q.batch != nil {
		return q.batch.send(ctx, data)
	}
	return q.sendDelayed(ctx, data, 0)
}

// sendDelayed sends one envelope that becomes visible after delaySeconds
// (0 to 900).
func (q *SQSQueue) sendDelayed(ctx context.Context, data []byte, delaySeconds int32) error {
	_, err := q.o.SQS.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl:     aws.String(q.o.QueueURL),
		MessageBody:  aws.String(string(data)),
		DelaySeconds: delaySeconds,
	})
	if err != nil {
		return fmt.Errorf("send to SQS: %w", err)
	}
	return nil
}
