package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// lambdaHandler delivers the records of one SQS event and answers with a
// partial batch response (the event source mapping's
// FunctionResponseTypes=ReportBatchItemFailures): the event source deletes
// the records not named in BatchItemFailures and leaves the others in the
// queue, to be received again after their visibility timeout.
//
// A record is reported done when its lease ended in the queue: delivered
// and completed, or deferred and re-sent with its retry delay
// (Reschedule), or settled without a delivery (a stale copy, set aside).
// It is reported failed when it must stay in the queue as it is: the
// lease could not end (Reschedule or Complete failed: S3 or SQS down), the
// record is not an edgerelay message (left for the dead-letter queue,
// never deleted), it was re-armed for a later attempt, or it panicked. A
// record not started because the invocation was about to run out of time
// is given back as a fresh copy and reported done (reported failed, its
// receive would count as a crashed delivery toward quarantine), or
// reported failed if that fails.
type lambdaHandler struct {
	q     *sqs.Queue
	w     *outbound.Worker // built on track
	track *endTracker
	log   *slog.Logger
	// parallel records are delivered at once (RELAY_DELIVERY_CONCURRENCY).
	parallel int
	// reserve and minStart: see lambdaReserve.
	reserve, minStart time.Duration
}

// handle is the Lambda handler.
func (h *lambdaHandler) handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	failed := make([]bool, len(ev.Records))
	// SQS delivers at least once: a batch may hold one message twice. Only
	// its last record (the newest receipt handle) is worked on, so that it
	// is not delivered twice at once; the others share its outcome, the
	// only one a MessageId can be reported with.
	last := make(map[string]int, len(ev.Records))
	for i, rec := range ev.Records {
		last[rec.MessageId] = i
	}
	sem := make(chan struct{}, max(h.parallel, 1))
	var wg sync.WaitGroup
	for i, rec := range ev.Records {
		if last[rec.MessageId] != i {
			h.log.Warn("record received twice in one batch; worked on once", "sqs_message_id", rec.MessageId)
			continue
		}
		sem <- struct{}{}
		if !h.timeToStart(ctx) {
			<-sem
			failed[i] = !h.giveBack(ctx, rec)
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			failed[i] = !h.record(ctx, rec)
		})
	}
	wg.Wait()
	var resp events.SQSEventResponse
	for i, rec := range ev.Records {
		if last[rec.MessageId] == i && failed[i] {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	h.log.Info("batch done", "records", len(ev.Records), "failed", len(resp.BatchItemFailures))
	return resp, nil
}

// timeToStart reports whether there is time to start another record.
func (h *lambdaHandler) timeToStart(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) >= h.reserve+h.minStart
}

// giveBack returns a record the invocation has no time for to the queue
// as a fresh copy (sqs.ReturnRecord), so that its receive does not count
// as a crashed delivery, and reports whether it did; if not, the record is
// reported failed and comes back after its visibility timeout.
func (h *lambdaHandler) giveBack(ctx context.Context, rec events.SQSMessage) bool {
	log := h.log.With("sqs_message_id", rec.MessageId)
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-time.Second))
		defer cancel()
	}
	if ctx.Err() == nil {
		if err := h.q.ReturnRecord(ctx, sqsRecord(rec)); err == nil {
			log.Warn("record not started: the invocation is about to time out; given back to the queue, due at once")
			return true
		}
	}
	log.Warn("record not started: the invocation is about to time out; it is received again after the visibility timeout")
	return false
}

func sqsRecord(rec events.SQSMessage) sqs.Record {
	return sqs.Record{MessageID: rec.MessageId, ReceiptHandle: rec.ReceiptHandle, Body: rec.Body, Attributes: rec.Attributes}
}

// record delivers one record and reports whether it may be deleted. A
// panic outside the worker's own recovery fails this record only.
func (h *lambdaHandler) record(ctx context.Context, rec events.SQSMessage) (done bool) {
	log := h.log.With("sqs_message_id", rec.MessageId)
	defer func() {
		if p := recover(); p != nil {
			log.Error("record panicked; reported failed", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			done = false
		}
	}()
	m, err := h.q.MessageFromRecord(ctx, sqsRecord(rec))
	switch {
	case errors.Is(err, sqs.ErrSettled):
		return true
	case err != nil:
		log.Debug("record left in the queue", "err", err)
		return false
	}
	// Deliveries stop reserve before the deadline: the worker then gives
	// the message back (Reschedule, due at once) while there is time.
	dctx := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		dctx, cancel = context.WithDeadline(ctx, dl.Add(-h.reserve))
		defer cancel()
	}
	h.track.watch(m)
	h.w.Process(dctx, m)
	return h.track.ended(m)
}

// endTracker is the worker's queue in the Lambda: the SQS queue, with the
// outcome of each watched lease's Reschedule or Complete recorded, which
// decides whether its record is reported done.
type endTracker struct {
	*sqs.Queue
	mu   sync.Mutex
	ends map[*queue.Message]bool
}

func (t *endTracker) watch(m *queue.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ends == nil {
		t.ends = map[*queue.Message]bool{}
	}
	t.ends[m] = false
}

func (t *endTracker) record(m *queue.Message, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.ends[m]; ok && err == nil {
		t.ends[m] = true
	}
}

// ended reports whether m's lease ended in the queue, and forgets m.
func (t *endTracker) ended(m *queue.Message) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ok := t.ends[m]
	delete(t.ends, m)
	return ok
}

func (t *endTracker) Reschedule(ctx context.Context, m *queue.Message, at time.Time) error {
	err := t.Queue.Reschedule(ctx, m, at)
	t.record(m, err)
	return err
}

func (t *endTracker) Complete(ctx context.Context, m *queue.Message) error {
	err := t.Queue.Complete(ctx, m)
	t.record(m, err)
	return err
}
