package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/edgerelay/edgerelay/queue"
)

// SQS SendMessageBatch limits: 10 entries, and the same total payload as
// one message.
const (
	maxBatchEntries = 10
	maxBatchBytes   = MaxSQSMessageSize
	// maxBatchesInFlight bounds the batch requests sent at once: one slow or
	// hung request must not hold up every other enqueue (issue 8 item 27),
	// and a burst must not open unbounded connections.
	maxBatchesInFlight = 4
	// batchSendTimeout bounds one batch request; its callers get the error
	// (451 to the client) if it has not been answered by then.
	batchSendTimeout = 15 * time.Second
)

// sendBatcher lets concurrent Enqueue calls share SendMessageBatch
// requests: one goroutine takes the first waiting envelope, collects more
// for at most the window (or until the batch is full) and hands the batch
// to a sender of its own, up to maxBatchesInFlight at once, each bounded by
// batchSendTimeout. Each caller still returns only once its own entry is
// acknowledged.
type sendBatcher struct {
	q        *Queue
	window   time.Duration
	reqs     chan *batchReq
	done     chan struct{}
	inflight chan struct{} // a slot per batch request in flight
	flushing sync.WaitGroup
}

type batchReq struct {
	data []byte
	res  chan error
}

func newSendBatcher(q *Queue, window time.Duration) *sendBatcher {
	b := &sendBatcher{q: q, window: window, reqs: make(chan *batchReq), done: make(chan struct{}),
		inflight: make(chan struct{}, maxBatchesInFlight)}
	go b.run()
	return b
}

// close waits for the collector to stop (the queue's base context is
// done) and for the batches in flight to be answered or time out.
func (b *sendBatcher) close() {
	<-b.done
	b.flushing.Wait()
}

// send queues data for the next batch and waits for its result. If ctx
// ends first the envelope may still be sent; the caller then deletes the
// body, and Lease drops the bodiless copy as completed.
func (b *sendBatcher) send(ctx context.Context, data []byte) error {
	r := &batchReq{data: data, res: make(chan error, 1)}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.q.base.Done():
		return queue.ErrClosed
	}
	select {
	case err := <-r.res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *sendBatcher) run() {
	defer close(b.done)
	var carry *batchReq
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-b.reqs:
			case <-b.q.base.Done():
				return
			}
		}
		batch, size := []*batchReq{first}, len(first.data)
		timer := time.NewTimer(b.window)
	collect:
		for len(batch) < maxBatchEntries {
			select {
			case r := <-b.reqs:
				if size+len(r.data) > maxBatchBytes {
					carry = r
					break collect
				}
				batch = append(batch, r)
				size += len(r.data)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		b.inflight <- struct{}{} // waits only while maxBatchesInFlight are out
		b.flushing.Add(1)
		go func() {
			defer func() { <-b.inflight; b.flushing.Done() }()
			b.flush(batch)
		}()
	}
}

// flush sends one batch and hands every caller its entry's result. The
// request is not bound to any caller's context: a caller that gives up
// cleans up after itself.
func (b *sendBatcher) flush(batch []*batchReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchSendTimeout)
	defer cancel()
	if len(batch) == 1 {
		batch[0].res <- b.q.sendDelayed(ctx, batch[0].data, 0)
		return
	}
	entries := make([]sqstypes.SendMessageBatchRequestEntry, len(batch))
	for i, r := range batch {
		entries[i] = sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(string(r.data))}
	}
	out, err := b.q.o.SQS.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(b.q.o.QueueURL), Entries: entries})
	if err != nil {
		err = fmt.Errorf("send batch to SQS: %w", err)
		for _, r := range batch {
			r.res <- err
		}
		return
	}
	answered := make([]bool, len(batch))
	for _, s := range out.Successful {
		if i, ok := batchIndex(s.Id, len(batch)); ok && !answered[i] {
			answered[i] = true
			batch[i].res <- nil
		}
	}
	for _, f := range out.Failed {
		if i, ok := batchIndex(f.Id, len(batch)); ok && !answered[i] {
			answered[i] = true
			batch[i].res <- fmt.Errorf("send to SQS: %s: %s", aws.ToString(f.Code), aws.ToString(f.Message))
		}
	}
	for i, r := range batch {
		if !answered[i] {
			r.res <- errors.New("send to SQS: the batch reply did not mention this entry")
		}
	}
}

func batchIndex(id *string, n int) (int, bool) {
	i, err := strconv.Atoi(aws.ToString(id))
	return i, err == nil && i >= 0 && i < n
}
