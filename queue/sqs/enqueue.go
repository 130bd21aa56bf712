package sqs

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/edgerelay/edgerelay/queue"
)

// Enqueue streams the body to S3 at <prefix><id>.eml, then sends the
// envelope as an SQS message (claim-check), and returns only when both are
// acknowledged: the message is durable on return. It sets env.ID (when
// empty), env.Arrival (when zero) and env.Size. An envelope too large for
// an SQS message is stored as an S3 object next to the body (see sqsWire).
//
// When either step fails it returns the error (the relay answers 451 4.3.0)
// and deletes what it stored, best effort; the bucket's lifecycle rule
// removes what a crash or a failed delete leaves (docs/aws.md). An envelope
// refused by Validate, or one that could outgrow an envelope object once
// every recipient holds a reply (ErrEnvelopeTooLarge), fails before any
// upload.
//
// With a preset env.ID (edgerelay's own reports) the body key uses it, and
// two Enqueues of one ID may race: two workers can hold one message after
// its visibility ran out, and both queue its report (issue 8 item 29d). So
// the body is written only if absent (If-None-Match: *, RFC 9110 §13.1.2):
// the first writer's bytes stay, later ones queue another envelope for
// them (Lease drops it if the first copy completes first, otherwise it is
// delivered again: a rare duplicate, never a loss). And a failed Enqueue
// of a preset ID never deletes the body, which another Enqueue of the same
// ID may have queued an envelope for; the lifecycle rule removes it if
// nothing refers to it.
func (q *Queue) Enqueue(ctx context.Context, env *queue.Envelope, body io.Reader) (string, error) {
	// Issue 8 item 1: an envelope with no recipients (or control characters)
	// would be "delivered" by completing it: refuse it before anything is
	// stored.
	if err := env.Validate(); err != nil {
		return "", fmt.Errorf("sqs queue: enqueue: %w", err)
	}
	if q.closed() {
		return "", queue.ErrClosed
	}
	preset := env.ID != ""
	if !preset {
		env.ID = queue.NewID()
	} else if !queue.ValidID(env.ID) {
		return "", fmt.Errorf("sqs queue: enqueue: invalid message ID %q", env.ID)
	}
	if env.Arrival.IsZero() {
		env.Arrival = q.o.Now()
	}
	id, key := env.ID, q.bodyKey(env.ID)
	if err := checkWorstCase(env); err != nil {
		return "", fmt.Errorf("sqs queue: enqueue %s: %w", id, err)
	}

	envKey := ""
	fail := func(err error) (string, error) {
		cctx, cancel := cleanupCtx(ctx)
		defer cancel()
		q.deleteEnvObject(cctx, envKey, id)
		if !preset {
			if derr := q.deleteBody(cctx, key); derr != nil {
				q.log.Warn("sqs queue: body of a failed enqueue left behind; the lifecycle rule removes it", "id", id, "err", derr)
			}
		}
		return "", fmt.Errorf("sqs queue: enqueue %s: %w", id, err)
	}

	var n int64
	var err error
	if preset {
		n, err = q.putBodyIfAbsent(ctx, key, body)
	} else {
		n, err = q.putBody(ctx, key, body)
	}
	if err != nil {
		return fail(err)
	}
	env.Size = n
	// The operator's copy (view.go) is written while the envelope is sent.
	// Once the send is acknowledged Enqueue returns without waiting for
	// it (250 promises the body and the SQS message, not the view), unless
	// too many are behind already; a failed Enqueue waits for it, so that
	// its cleanup comes after.
	view, wait := q.writeViewAsync(ctx, env.Clone())
	data, ek, err := q.encode(ctx, env, key, 0)
	envKey = ek
	if err == nil {
		err = q.send(ctx, data)
	}
	if wait || err != nil {
		<-view
	}
	if err != nil {
		if !preset {
			cctx, cancel := cleanupCtx(ctx)
			q.deleteExtras(cctx, id)
			cancel()
		}
		return fail(err)
	}
	q.log.Debug("sqs queue: enqueued", "id", id, "size", n, "rcpts", len(env.Recipients), "envelope_object", envKey)
	return id, nil
}

// send sends one envelope with no delay, through the batcher when enabled.
func (q *Queue) send(ctx context.Context, data []byte) error {
	if q.batch != nil {
		return q.batch.send(ctx, data)
	}
	return q.sendDelayed(ctx, data, 0)
}

// sendDelayed sends one envelope that becomes visible after delaySeconds
// (0 to 900).
func (q *Queue) sendDelayed(ctx context.Context, data []byte, delaySeconds int32) error {
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
