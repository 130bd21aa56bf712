package sqs

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Defaults of NewDepthCache.
const (
	// DefaultDepthMaxAge: SQS updates the approximate counts about once a
	// minute, so asking more often than every 15 s only costs requests.
	DefaultDepthMaxAge = 15 * time.Second
	// DefaultDepthTimeout bounds one GetQueueAttributes call, well within
	// a scrape's own timeout (Prometheus' default is 10 s).
	DefaultDepthTimeout = 3 * time.Second
)

// Depth is the queue's approximate message counts, as SQS reports them
// (GetQueueAttributes): all the messages on the queue, shared by every
// front end and worker, not only this process's.
type Depth struct {
	// Visible: ApproximateNumberOfMessages, due and waiting for a worker.
	Visible int64
	// NotVisible: ApproximateNumberOfMessagesNotVisible, leased (being
	// delivered) or waiting out a retry's visibility timeout.
	NotVisible int64
	// Delayed: ApproximateNumberOfMessagesDelayed, sent with a delay
	// (retries within 15 minutes).
	Delayed int64
	// At is when SQS gave these counts; zero when it never has.
	At time.Time
	// Errors counts the calls that failed since the cache was made.
	Errors uint64
}

// DepthCache asks SQS for the queue's Depth at most once per maxAge, each
// call bounded by a timeout, so that metric scrapes cost at most one
// request per maxAge whatever their number. A failed call keeps the last
// counts (and At) and is counted; it is not retried before maxAge has
// passed. No lock is held across the call: a Read that finds the counts
// stale while another Read is asking SQS returns the counts it has.
type DepthCache struct {
	q               *Queue
	maxAge, timeout time.Duration

	mu      sync.Mutex
	last    Depth
	tried   time.Time // the last call's start; zero: never
	asking  bool
	lastErr error
}

// NewDepthCache returns a cache over q; zero maxAge and timeout mean
// DefaultDepthMaxAge and DefaultDepthTimeout.
func NewDepthCache(q *Queue, maxAge, timeout time.Duration) *DepthCache {
	if maxAge <= 0 {
		maxAge = DefaultDepthMaxAge
	}
	if timeout <= 0 {
		timeout = DefaultDepthTimeout
	}
	return &DepthCache{q: q, maxAge: maxAge, timeout: timeout}
}

// Read returns the latest counts, asking SQS first when they are older
// than maxAge (and no other Read is asking). It never fails: see Err.
func (c *DepthCache) Read(ctx context.Context) Depth {
	c.mu.Lock()
	if c.asking || (!c.tried.IsZero() && time.Since(c.tried) < c.maxAge) {
		d := c.last
		c.mu.Unlock()
		return d
	}
	c.asking, c.tried = true, time.Now()
	c.mu.Unlock()

	d, err := c.ask(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.asking, c.lastErr = false, err
	if err != nil {
		c.last.Errors++
		c.q.log.Warn("sqs queue: reading the queue's message counts failed; metrics keep the last ones", "queue", c.q.o.QueueURL, "err", err)
	} else {
		d.Errors = c.last.Errors
		c.last = d
	}
	return c.last
}

// Err returns the last call's error, nil when it succeeded.
func (c *DepthCache) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// ask makes one GetQueueAttributes call within the timeout.
func (c *DepthCache) ask(ctx context.Context) (Depth, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	const (
		visible    = sqstypes.QueueAttributeNameApproximateNumberOfMessages
		notVisible = sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible
		delayed    = sqstypes.QueueAttributeNameApproximateNumberOfMessagesDelayed
	)
	out, err := c.q.o.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(c.q.o.QueueURL),
		AttributeNames: []sqstypes.QueueAttributeName{visible, notVisible, delayed},
	})
	if err != nil {
		return Depth{}, fmt.Errorf("sqs queue: %w", classifyAWS(err, "sqs:GetQueueAttributes"))
	}
	d := Depth{At: time.Now()}
	for name, v := range map[sqstypes.QueueAttributeName]*int64{visible: &d.Visible, notVisible: &d.NotVisible, delayed: &d.Delayed} {
		n, err := strconv.ParseInt(out.Attributes[string(name)], 10, 64)
		if err != nil {
			return Depth{}, fmt.Errorf("sqs queue: %s: %q is not a count", name, out.Attributes[string(name)])
		}
		*v = n
	}
	return d, nil
}
