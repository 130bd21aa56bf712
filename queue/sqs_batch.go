package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQS SendMessageBatch limits: 10 entries, and the same total payload as
// one message.
const (
	maxBatchEntries = 10
	maxBatchBytes   = MaxSQSMessageSize
)

// sendBatcher lets concurrent Enqueue calls share SendMessageBatch
// requests: one goroutine takes the first waiting envelope, collects more
// for at most the window (or until the batch is full) and sends them
// together. Each caller still returns only once its own entry is
// acknowledged.
type sendBatcher struct {
	q      *SQSQueue
	window time.Duration
	reqs   chan *batchReq
	done   chan struct{}
}

type batchReq struct {
	data []byte
	res  chan error
}

func newSendBatcher(q *SQSQueue, window time.Duration) *sendBatcher {
	b := &sendBatcher{q: q, window: window, reqs: make(chan *batchReq), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *sendBatcher) close() { <-b.done }

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
		return ErrClosed
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
		b.flush(batch)
	}
}

// flush sends one batch and hands every caller its entry's result. The
// request is not bound to any caller's context: a caller that gives up
// cleans up after itself.
func (b *sendBatcher) flush(batch []*batchReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
