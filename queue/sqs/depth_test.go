package sqs_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/edgerelay/edgerelay/queue/sqs"
)

// attrCounter counts GetQueueAttributes calls and, while hang is set,
// makes them wait for their context.
type attrCounter struct {
	sqs.SQSAPI
	calls atomic.Int64
	hang  atomic.Bool
}

func (a *attrCounter) GetQueueAttributes(ctx context.Context, in *awssqs.GetQueueAttributesInput, o ...func(*awssqs.Options)) (*awssqs.GetQueueAttributesOutput, error) {
	a.calls.Add(1)
	if a.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return a.SQSAPI.GetQueueAttributes(ctx, in, o...)
}

// TestDepthCache: the approximate counts come from the emulator, at most
// one call per max age; a failing or hanging call keeps the last counts,
// is counted, returns within the timeout and is not retried before the max
// age has passed.
func TestDepthCache(t *testing.T) {
	f := newSQSFixture(t, nil, nil)
	counter := &attrCounter{SQSAPI: f.srv.SQS()}
	q := f.open(t, func(o *sqs.Options) { o.SQS = counter; o.VisibilityTimeout = 30 * time.Second })
	ctx := sqsCtx(t, 30*time.Second)
	for range 3 {
		if _, err := q.Enqueue(ctx, sqsEnvelope("bob@example.net"), strings.NewReader("Subject: x\r\n\r\nx\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	const maxAge, timeout = 300 * time.Millisecond, 200 * time.Millisecond
	c := sqs.NewDepthCache(q, maxAge, timeout)
	calls := func() int64 { return counter.calls.Load() }

	before := calls()
	d := c.Read(ctx)
	if d.Visible != 3 || d.NotVisible != 0 || d.At.IsZero() || c.Err() != nil {
		t.Fatalf("3 enqueued: %+v, err %v", d, c.Err())
	}
	if c.Read(ctx); calls() != before+1 {
		t.Fatalf("a second read within the max age called SQS again (%d calls)", calls()-before)
	}

	if _, err := q.Lease(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(maxAge)
	if d = c.Read(ctx); d.Visible != 2 || d.NotVisible != 1 {
		t.Fatalf("one leased: %+v", d)
	}

	f.srv.SetDown("sqs", true)
	time.Sleep(maxAge)
	if got := c.Read(ctx); got.Visible != 2 || got.NotVisible != 1 || got.Errors != 1 || !got.At.Equal(d.At) || c.Err() == nil {
		t.Fatalf("SQS down: %+v (err %v), want the last counts and one error", got, c.Err())
	}
	n := calls()
	if c.Read(ctx); calls() != n {
		t.Fatal("a failed call was retried before the max age")
	}
	f.srv.SetDown("sqs", false)

	counter.hang.Store(true)
	time.Sleep(maxAge)
	start := time.Now()
	if got := c.Read(ctx); got.Errors != 2 || got.Visible != 2 {
		t.Fatalf("SQS hanging: %+v", got)
	}
	if el := time.Since(start); el > timeout+2*time.Second {
		t.Fatalf("a hanging call held the read %v (timeout %v)", el, timeout)
	}
	counter.hang.Store(false)

	time.Sleep(maxAge)
	if got := c.Read(ctx); got.Visible != 2 || got.Errors != 2 || c.Err() != nil || !got.At.After(d.At) {
		t.Fatalf("SQS back: %+v (err %v)", got, c.Err())
	}
}
