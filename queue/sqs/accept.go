package sqs

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/edgerelay/edgerelay/queue"
)

// disposition is what became of a received message that accept did not
// hand out.
type disposition int

const (
	// handedOut: accept returned a lease.
	handedOut disposition = iota
	// settled: the received message is gone or replaced (a stale copy
	// deleted, a copy given back, set aside in quarantine): whoever
	// received it may delete it.
	settled
	// kept: the received message stays in the queue as it is (not an
	// edgerelay message, an unreadable envelope object, re-armed for a
	// later attempt, or a give-back that failed): it must not be deleted.
	kept
)

// accept turns a received SQS message into a lease, or deals with it and
// returns nil and what became of it (see Lease).
func (q *Queue) accept(ctx context.Context, sm sqstypes.Message) (*queue.Message, disposition) {
	// The message is received: finish with it even if ctx ends now.
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	since := time.Now()
	msgID, handle := aws.ToString(sm.MessageId), aws.ToString(sm.ReceiptHandle)
	receives := attrInt(sm.Attributes, sqstypes.MessageSystemAttributeNameApproximateReceiveCount)
	w, err := decodeWire(aws.ToString(sm.Body), q.bodyKey)
	if err != nil {
		q.log.Error("sqs queue: unreadable message left for the dead-letter queue (not deleted, not delivered)",
			"sqs_message_id", msgID, "receive_count", receives, "err", err)
		return nil, kept
	}
	if w.EnvKey != "" {
		log := q.log.With("id", w.ID, "sqs_message_id", msgID)
		err := q.loadEnvelope(ctx, w)
		var bad *badEnvelopeError
		switch {
		case errors.Is(err, errEnvGone):
			// Reschedule deletes the envelope object it replaces once the
			// new message is sent, Complete deletes it too: this copy is
			// stale.
			log.Warn("sqs queue: envelope object gone: a stale copy of a rescheduled or completed message; deleting it", "key", w.EnvKey, "receive_count", receives)
			if _, err := q.o.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(handle)}); err != nil {
				log.Warn("sqs queue: could not delete the stale copy; it will be received again", "err", err)
			}
			return nil, settled
		case errors.As(err, &bad):
			log.Error("sqs queue: unreadable envelope object; message left for the dead-letter queue (not deleted, not delivered)", "receive_count", receives, "err", err)
			return nil, kept
		case err != nil:
			return nil, q.giveBackUnread(ctx, sm, log, "could not read the envelope object", err)
		}
	}
	env, key := w.Envelope, w.Key
	log := q.log.With("id", env.ID, "sqs_message_id", msgID)
	now := q.o.Now()
	sent := time.UnixMilli(int64(attrInt(sm.Attributes, sqstypes.MessageSystemAttributeNameSentTimestamp)))

	// The body check runs while the mark is read: the lease's first
	// heartbeat comes only after accept, and the visibility clock runs
	// from the receive.
	type head struct {
		exists bool
		err    error
	}
	headc := make(chan head, 1)
	go func() {
		exists, err := q.bodyExists(ctx, key)
		headc <- head{exists, err}
	}()

	// The operator's marks (mark.go): Hold and Operator come from the mark
	// object alone; a retry, bounce or delete asked for after this copy
	// was sent hands it out now even if it is not due.
	mk, err := q.readMark(ctx, env.ID)
	if errors.Is(err, errBadMark) {
		log.Error("sqs queue: the operator's mark is not readable; the message is not delivered until a queue command (release, retry) rewrites it", "err", err)
	}
	if err != nil {
		return nil, q.giveBackUnread(ctx, sm, log, "could not read the operator's mark", err)
	}
	force := mergeMark(env, mk, sent)

	if vis, ok := rearmFor(env.NextAttempt, now); ok && !force {
		if _, err := q.o.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(handle), VisibilityTimeout: seconds(vis),
		}); err != nil {
			// A failed re-arm would bring the message back after the
			// visibility timeout with a receive that rearms does not
			// expect, counted as a crashed delivery: give it back as a
			// copy delayed toward its due time instead.
			if q.giveBackCopy(ctx, sm, seconds(min(vis, maxDelay))) {
				log.Warn("sqs queue: could not re-arm a message that is not due; given back as a delayed copy", "next_attempt", env.NextAttempt, "err", err)
				return nil, settled
			}
			log.Warn("sqs queue: could not re-arm a message that is not due; it is received again after the visibility timeout", "next_attempt", env.NextAttempt, "err", err)
			return nil, kept
		}
		log.Debug("sqs queue: not due yet; re-armed", "next_attempt", env.NextAttempt, "invisible_for", vis)
		// The receipt in the operator's copy lets a retry end the wait.
		q.writeView(ctx, env, handle)
		return nil, kept
	}

	h := <-headc
	exists, err := h.exists, h.err
	switch {
	case err != nil:
		// Hand it out anyway: Body will fail and the worker reschedules,
		// which costs no receive count, unlike leaving it to expire.
		log.Warn("sqs queue: could not check the body object", "key", key, "err", err)
	case !exists:
		log.Warn("sqs queue: body object gone: a copy of a completed message; deleting it", "key", key, "receive_count", receives)
		if _, err := q.o.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(handle)}); err != nil {
			log.Warn("sqs queue: could not delete the copy; it will be received again", "err", err)
		}
		return nil, settled
	}

	rearmed := rearms(sent, time.Duration(w.Delay)*time.Second, env.NextAttempt)
	if crashes := crashedReceives(receives, rearmed); crashes >= q.o.MaxDeliveryCrashes {
		if q.setAside(ctx, w, handle, crashes, log) {
			return nil, settled
		}
		return nil, kept
	}
	env.Attempts = claimAttempts(env.Attempts, receives, rearmed)

	// Close may have run during the S3 reads: a Lease in progress then
	// returns ErrClosed (Lease), and a heartbeat must not start after
	// Close's wait. The message goes back at once.
	q.viewMu.Lock()
	if q.closed() {
		q.viewMu.Unlock()
		return nil, q.giveBackClosed(ctx, sm, log)
	}
	q.leases.Add(1)
	q.viewMu.Unlock()
	hctx, stop := context.WithCancel(q.base)
	l := &sqsLease{messageID: msgID, handle: handle, key: key, envKey: w.EnvKey, received: now, since: since, stop: stop, hb: make(chan struct{})}
	go q.heartbeat(hctx, l, log)
	log.Debug("sqs queue: leased", "attempts", env.Attempts, "receive_count", receives, "hold", env.Hold, "operator", env.Operator)
	return &queue.Message{Envelope: env, Token: l}, handedOut
}

// giveBackUnread deals with a received message whose state S3 could not
// tell just now: it is given back as a copy due after the visibility
// timeout (a receive that delivered nothing must not count as a crash).
func (q *Queue) giveBackUnread(ctx context.Context, sm sqstypes.Message, log *slog.Logger, what string, err error) disposition {
	if q.giveBackCopy(ctx, sm, seconds(min(q.o.VisibilityTimeout, maxDelay))) {
		log.Warn("sqs queue: "+what+"; the message is given back, due again after the visibility timeout", "err", err)
		return settled
	}
	log.Warn("sqs queue: "+what+"; the message is received again after the visibility timeout", "err", err)
	return kept
}

// giveBackClosed gives back a message received before Close and accepted
// after it: a copy due at once (this receive must not count as a crashed
// delivery), else its visibility set to 0.
func (q *Queue) giveBackClosed(ctx context.Context, sm sqstypes.Message, log *slog.Logger) disposition {
	if q.giveBackCopy(ctx, sm, 0) {
		log.Debug("sqs queue: closed while the message was being leased; given back")
		return settled
	}
	if _, err := q.o.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: sm.ReceiptHandle, VisibilityTimeout: 0,
	}); err != nil {
		log.Warn("sqs queue: closed while the message was being leased; it is due again after the visibility timeout", "err", err)
	}
	return kept
}
