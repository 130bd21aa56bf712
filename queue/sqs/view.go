package sqs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/edgerelay/edgerelay/internal/s3util"
	"github.com/edgerelay/edgerelay/queue"
)

// The operator's view of a message (issue 13): a copy of its envelope kept
// next to the body, <prefix><id>.view.json, which `edgerelay queue
// list/show` read. SQS cannot list or read the messages it holds, so the
// copy is the only way to see what is queued.
//
// The copy is a view, never the source of truth for delivery: the envelope
// travels in the SQS message (or its envelope object). So a failed write of
// the copy is logged and counted (Stats.ViewWriteErrors) and never fails
// the enqueue, the reschedule or the delivery. It is written
//   - at Enqueue, concurrently with the SQS send, and not waited for once
//     the send is acknowledged (the accept path is not lengthened; 250
//     means body PUT and SQS send acknowledged, whatever the copy). A
//     message delivered and completed before its copy landed leaves that
//     copy behind: List ignores a copy without a body, and the lifecycle
//     rule removes it. It is written only where there is no copy yet, so
//     that it never replaces the newer copy of a process that received
//     the message first;
//   - at Reschedule, after the new message is sent;
//   - when a receive re-arms a long delay, with the receipt handle of that
//     receive, so that an operator's retry can make the message visible at
//     once (ChangeMessageVisibility) instead of waiting up to 12 h;
//
// and deleted by Complete with the body. It is not written at every lease
// (a PUT per delivery attempt): Attempts there is the count persisted by
// the last Reschedule.

// viewVersion is the version of the view object's format.
const viewVersion = 1

// maxViewObject bounds a view or mark object read by the operator's
// commands.
const maxViewObject = maxEnvelopeObject + 64<<10

// viewObject is the content of <prefix><id>.view.json.
type viewObject struct {
	V        int             `json:"v"`
	Envelope *queue.Envelope `json:"envelope"`
	// AsOf is when this copy was written.
	AsOf time.Time `json:"as_of"`
	// Receipt is the receipt handle of the receive that re-armed the
	// message (it is in flight, invisible until NextAttempt); empty when
	// the message waits on an SQS delay, which nothing can shorten.
	Receipt string `json:"receipt,omitempty"`
}

// viewKey is the key of the operator's copy of message id's envelope.
func (q *Queue) viewKey(id string) string { return q.o.Prefix + id + ".view.json" }

// putJSON writes data to key with the queue's encryption settings.
func (q *Queue) putJSON(ctx context.Context, key string, data []byte) error {
	return q.putJSONIf(ctx, key, data, false)
}

// putJSONIf is putJSON, only where there is no object yet when ifAbsent
// is set (If-None-Match: *, RFC 9110 §13.1.2; a taken key is an error
// that isPreconditionFailed reports).
func (q *Queue) putJSONIf(ctx context.Context, key string, data []byte, ifAbsent bool) error {
	in := &s3.PutObjectInput{
		Bucket: aws.String(q.o.Bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentType: aws.String("application/json"),
	}
	if ifAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	q.setSSE(in)
	if _, err := q.o.S3.PutObject(ctx, in); err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	return nil
}

// getSmall reads the object key, at most limit bytes. found is false when
// there is no such object.
func (q *Queue) getSmall(ctx context.Context, key string, limit int64) (data []byte, found bool, err error) {
	out, err := q.o.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(q.o.Bucket), Key: aws.String(key)})
	if err != nil {
		if s3util.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	defer out.Body.Close()
	data, err = io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, true, fmt.Errorf("read s3://%s/%s: %w", q.o.Bucket, key, err)
	}
	if int64(len(data)) > limit {
		return nil, true, fmt.Errorf("s3://%s/%s is over %d bytes", q.o.Bucket, key, limit)
	}
	return data, true, nil
}

// writeView writes the operator's copy of env, best effort: a failure is
// logged and counted, never returned (the copy is a view).
func (q *Queue) writeView(ctx context.Context, env *queue.Envelope, receipt string) {
	q.putView(ctx, env, receipt, false)
}

// putView writes the copy; with first (Enqueue's copy, not waited for)
// only where there is none: another process may have received the
// message and written a newer copy at its Reschedule or re-arm before
// this one lands, and that one stays.
func (q *Queue) putView(ctx context.Context, env *queue.Envelope, receipt string, first bool) {
	data, err := json.Marshal(viewObject{V: viewVersion, Envelope: env, AsOf: q.o.Now().UTC(), Receipt: receipt})
	if err == nil {
		err = q.putJSONIf(ctx, q.viewKey(env.ID), data, first)
	}
	if first && err != nil && isPreconditionFailed(err) {
		return // a newer copy is there
	}
	if err != nil {
		q.stats.viewWriteErrors.Add(1)
		q.log.Warn("sqs queue: the operator's copy of the envelope could not be written; 'edgerelay queue' shows an older state until the next change (delivery is not affected)", "id", env.ID, "err", err)
	}
}

// viewWriteTimeout bounds a view write that Enqueue does not wait for.
const viewWriteTimeout = 30 * time.Second

// maxViewsBehind bounds the view writes left running after their
// Enqueue returned: past it, Enqueue waits for its own (backpressure; an
// unbounded backlog of them slowed every request to S3 and SQS).
const maxViewsBehind = 32

// writeViewAsync writes the operator's copy of env in the background,
// outliving ctx by up to viewWriteTimeout (Close waits for it), and
// returns a channel closed when it is done, and whether the caller must
// wait for it (maxViewsBehind are running already).
//
// After Close (an Enqueue under way when it ran) the write is not counted
// in q.views, which Close has waited for, and the caller must wait for it:
// nothing is left running once Close and that Enqueue have returned.
func (q *Queue) writeViewAsync(ctx context.Context, env *queue.Envelope) (<-chan struct{}, bool) {
	done := make(chan struct{})
	behind := false
	q.viewMu.Lock()
	counted := !q.viewsClosed
	if counted {
		q.views.Add(1) // under viewMu: never after Close's Wait began
		select {
		case q.viewsBehind <- struct{}{}:
			behind = true
		default:
		}
	}
	if q.viewsPending == nil {
		q.viewsPending = map[string]chan struct{}{}
	}
	q.viewsPending[env.ID] = done
	q.viewMu.Unlock()
	go func() {
		if counted {
			defer q.views.Done()
		}
		defer func() {
			q.viewMu.Lock()
			if q.viewsPending[env.ID] == done {
				delete(q.viewsPending, env.ID)
			}
			q.viewMu.Unlock()
			if behind {
				<-q.viewsBehind
			}
			close(done)
		}()
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), viewWriteTimeout)
		defer cancel()
		q.putView(vctx, env, "", true)
	}()
	return done, !behind
}

// waitView waits for a write of message id's copy that Enqueue left
// running in this process, so that Reschedule's copy is not overwritten by
// the older one and Complete's delete is not undone by it. (Another
// process's late write can still land after: List ignores a copy without
// a body, and the lifecycle rule removes it.)
func (q *Queue) waitView(id string) {
	q.viewMu.Lock()
	done := q.viewsPending[id]
	q.viewMu.Unlock()
	if done != nil {
		<-done
	}
}

// readView reads the operator's copy of message id; nil without one.
func (q *Queue) readView(ctx context.Context, id string) (*viewObject, error) {
	data, found, err := q.getSmall(ctx, q.viewKey(id), maxViewObject)
	if err != nil || !found {
		return nil, err
	}
	v, err := parseView(data, id)
	if err != nil {
		return nil, fmt.Errorf("%w: s3://%s/%s: %w", errBadView, q.o.Bucket, q.viewKey(id), err)
	}
	return v, nil
}

// errBadView: a view object exists and is not a copy of the message's
// envelope (cut short, written by hand or by another version).
var errBadView = errors.New("unreadable operator's copy")

// parseView decodes a view object of message id.
func parseView(data []byte, id string) (*viewObject, error) {
	var v viewObject
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	if v.Envelope == nil || v.Envelope.ID != id {
		return nil, fmt.Errorf("does not hold message %s's envelope", id)
	}
	return &v, nil
}

// deleteExtras removes the view and mark objects of message id, best
// effort: the lifecycle rule on the prefix removes what is left behind,
// and `queue list` ignores a copy whose body is gone.
func (q *Queue) deleteExtras(ctx context.Context, id string) {
	for _, key := range []string{q.viewKey(id), q.markKey(id)} {
		if err := q.deleteBody(ctx, key); err != nil {
			q.log.Warn("sqs queue: operator object left behind; the lifecycle rule removes it", "id", id, "key", key, "err", err)
		}
	}
}

// idOfKey returns the message ID of a body key under the prefix, or "".
func (q *Queue) idOfKey(key string) string {
	rest, ok := strings.CutPrefix(key, q.o.Prefix)
	if !ok {
		return ""
	}
	id, ok := strings.CutSuffix(rest, ".eml")
	if !ok || !queue.ValidID(id) {
		return ""
	}
	return id
}
