package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/edgerelay/edgerelay/queue"
)

// sqsLease is the Token of a Message leased from an Queue.
type sqsLease struct {
	messageID string
	handle    string // the receipt handle of this receive
	key       string // body object
	envKey    string // envelope object, "" when the envelope was inline
	received  time.Time
	// since is when accept began (monotonic): the visibility clock runs
	// from about then, so the first heartbeat is counted from it.
	since time.Time

	stop context.CancelFunc // stops the heartbeat
	hb   chan struct{}      // closed when the heartbeat has stopped

	mu    sync.Mutex
	ended bool
}

func leaseOf(m *queue.Message) (*sqsLease, error) {
	if m == nil {
		return nil, errors.New("sqs queue: nil message")
	}
	l, ok := m.Token.(*sqsLease)
	if !ok || l == nil {
		return nil, fmt.Errorf("sqs queue: message %s was not leased from an SQS queue", idOf(m))
	}
	return l, nil
}

func idOf(m *queue.Message) string {
	if m == nil || m.Envelope == nil {
		return "?"
	}
	return m.Envelope.ID
}

// end stops the heartbeat and marks the lease ended; it fails when the
// lease had already ended (a second Reschedule or Complete).
func (l *sqsLease) end() error {
	l.mu.Lock()
	ended := l.ended
	l.ended = true
	l.mu.Unlock()
	l.stop()
	<-l.hb
	if ended {
		return errors.New("lease already ended (Reschedule or Complete was called before)")
	}
	return nil
}

// Lease receives the next due message (ReceiveMessage long poll, one
// message at a time, so that no received message waits in a buffer while
// its visibility clock runs) and hands it out with Attempts incremented.
// While the lease is held, a heartbeat extends the message's visibility
// every third of VisibilityTimeout, so a long delivery (a 25 MB message to a
// slow gateway) is not received a second time.
//
// Received messages that must not be handed out:
//   - a body that is not an edgerelay envelope is logged at ERROR and left
//     alone: it reappears after the visibility timeout until the queue's
//     redrive policy moves it to the dead-letter queue. It is never deleted.
//   - an envelope whose NextAttempt is still ahead (a retry delay longer than
//     the 15 min SQS DelaySeconds allows) is made invisible for the rest of
//     the delay, at most 12 h at a time: longer delays re-arm.
//   - a message of which MaxDeliveryCrashes receives ended without
//     Reschedule or Complete (the worker died mid-delivery) is set aside in
//     quarantine, logged at ERROR and counted (poison.go).
//   - a message whose envelope object is gone is a stale copy: deleted.
//   - an envelope whose body object is gone is a copy of a completed message
//     (SQS delivers at least once; Complete deletes the body; a failed
//     Enqueue deletes it too): its SQS message is deleted and it is skipped.
//
// Attempts: SQS cannot update a message in place, so the attempt count
// travels in the envelope and is persisted when Reschedule re-sends it.
// The claim made here is the receive itself: a crash mid-delivery shows in
// ApproximateReceiveCount, and Attempts is max(sent Attempts + 1, sent
// Attempts + receives - re-arms), so a redelivery after a crash counts
// both tries.
func (q *Queue) Lease(ctx context.Context) (*queue.Message, error) {
	backoff := time.Second
	for {
		if q.closed() {
			return nil, queue.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rctx, cancel := q.withClose(ctx)
		out, err := q.o.SQS.ReceiveMessage(rctx, &sqs.ReceiveMessageInput{
			QueueUrl:            aws.String(q.o.QueueURL),
			MaxNumberOfMessages: 1,
			WaitTimeSeconds:     int32(q.o.WaitTime / time.Second),
			VisibilityTimeout:   seconds(q.o.VisibilityTimeout),
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{
				sqstypes.MessageSystemAttributeNameApproximateReceiveCount,
				sqstypes.MessageSystemAttributeNameSentTimestamp,
			},
		})
		cancel()
		if err != nil {
			if q.closed() {
				return nil, queue.ErrClosed
			}
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			q.log.Warn("sqs queue: receive failed; retrying", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-q.base.Done():
				return nil, queue.ErrClosed
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		if err := q.giveBackIfDone(ctx, out.Messages); err != nil {
			return nil, err
		}
		for _, sm := range out.Messages {
			if m, _ := q.accept(ctx, sm); m != nil {
				return m, nil
			}
		}
	}
}

// giveBackIfDone gives received messages back at once when the caller gave
// up (or the queue closed) while the receive was answered, so they do not
// wait out a visibility timeout, and returns the reason. A message is given
// back as a new copy (sent, then the received one deleted), so that this
// receive, which delivered nothing, does not count as a crashed delivery
// toward MaxDeliveryCrashes; if that fails, its visibility is set to 0.
func (q *Queue) giveBackIfDone(ctx context.Context, msgs []sqstypes.Message) error {
	err := ctx.Err()
	if q.closed() {
		err = queue.ErrClosed
	}
	if err == nil {
		return nil
	}
	cctx, cancel := cleanupCtx(ctx)
	defer cancel()
	for _, sm := range msgs {
		if q.giveBackCopy(cctx, sm, 0) {
			continue
		}
		if _, cerr := q.o.SQS.ChangeMessageVisibility(cctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: sm.ReceiptHandle, VisibilityTimeout: 0,
		}); cerr != nil {
			q.log.Warn("sqs queue: could not give back a message received after Lease was abandoned; it is due again after the visibility timeout", "sqs_message_id", aws.ToString(sm.MessageId), "err", cerr)
		}
	}
	return err
}

// giveBackCopy re-sends a received edgerelay message unchanged but for its
// delay (recorded in the copy, for the re-arm estimate), then deletes the
// received one, so that this receive, which delivered nothing, does not
// count toward MaxDeliveryCrashes. It reports false when nothing was sent
// (the caller then deals with the received message otherwise).
func (q *Queue) giveBackCopy(ctx context.Context, sm sqstypes.Message, delay int32) bool {
	w, err := decodeWire(aws.ToString(sm.Body), q.bodyKey)
	if err != nil {
		return false // not ours to copy: its receives go toward the DLQ
	}
	w.Delay = delay
	data, err := marshalSQS(w)
	if err != nil || len(data) > MaxSQSMessageSize {
		return false
	}
	if err := q.sendDelayed(ctx, data, delay); err != nil {
		return false
	}
	if _, err := q.o.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: sm.ReceiptHandle}); err != nil {
		q.log.Warn("sqs queue: gave back a copy of a message received after Lease was abandoned, but could not delete the received one; it may be delivered twice", "sqs_message_id", aws.ToString(sm.MessageId), "err", err)
	}
	return true
}

// rearmFor says whether a message due at next is not yet due at now, and
// for how long to make it invisible: the rest of the delay, at most the
// SQS maximum of 12 h (longer delays re-arm again).
func rearmFor(next, now time.Time) (time.Duration, bool) {
	wait := next.Sub(now)
	if next.IsZero() || wait <= dueSlack {
		return 0, false
	}
	return min(wait, maxVisibility), true
}

// claimAttempts is the attempt count of a lease: the count the envelope
// was sent with plus this attempt, plus the receives that ended without a
// Reschedule or Complete (a crash) beyond those that re-armed a delay.
func claimAttempts(sent, receives, rearms int) int {
	attempts := sent + 1
	if crashes := receives - 1 - rearms; crashes > 0 {
		attempts += crashes
	}
	return attempts
}

// rearms estimates how many receives only re-armed the delay of a message
// sent at sent with DelaySeconds delay to be due at next: each re-arm covers
// at most 12 h of what the delay did not.
func rearms(sent time.Time, delay time.Duration, next time.Time) int {
	if sent.IsZero() || next.IsZero() {
		return 0
	}
	rest := next.Sub(sent) - delay - dueSlack
	if rest <= 0 {
		return 0
	}
	return int(math.Ceil(float64(rest) / float64(maxVisibility)))
}

// heartbeat extends the visibility of a leased message until the lease
// ends, the queue closes, or SQS refuses (12 h after the receive, or a lost
// receipt handle).
func (q *Queue) heartbeat(ctx context.Context, l *sqsLease, log *slog.Logger) {
	defer q.leases.Done()
	defer close(l.hb)
	// The first beat is due a third of the way from the receive, not from
	// the end of accept (its S3 reads may have taken a while), then every
	// third.
	every := heartbeatEvery(q.o.VisibilityTimeout)
	t := time.NewTimer(max(every-time.Since(l.since), 0))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(every)
		if q.o.Now().Sub(l.received)+q.o.VisibilityTimeout > maxVisibility {
			log.Warn("sqs queue: lease held for 12 h, the SQS limit; the message becomes visible again")
			return
		}
		_, err := q.o.SQS.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
			QueueUrl: aws.String(q.o.QueueURL), ReceiptHandle: aws.String(l.handle), VisibilityTimeout: seconds(q.o.VisibilityTimeout),
		})
		switch {
		case err == nil, ctx.Err() != nil:
		case isLostReceipt(err):
			log.Warn("sqs queue: lease lost (receipt handle no longer valid); another worker may deliver the message too", "err", err)
			return
		default:
			log.Warn("sqs queue: could not extend the lease; will retry", "err", err)
		}
	}
}

// heartbeatEvery is how often a lease is extended: every third of the
// visibility timeout, so two heartbeats can fail before the message
// becomes visible again (20 s with the default 60 s).
func heartbeatEvery(visibility time.Duration) time.Duration {
	return max(visibility/3, 200*time.Millisecond)
}

// isLostReceipt reports whether SQS refused a receipt handle because the
// message is no longer in flight under it.
func isLostReceipt(err error) bool {
	var inv *sqstypes.ReceiptHandleIsInvalid
	var nif *sqstypes.MessageNotInflight
	return errors.As(err, &inv) || errors.As(err, &nif) || apiCode(err) == "InvalidParameterValue"
}

func attrInt(attrs map[string]string, name sqstypes.MessageSystemAttributeName) int {
	n, _ := strconv.Atoi(attrs[string(name)])
	return n
}

// seconds rounds d up to whole seconds for SQS.
func seconds(d time.Duration) int32 {
	return int32((d + time.Second - 1) / time.Second)
}
