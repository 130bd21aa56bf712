package outbound

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// blockingSES is an SESAPI whose SendEmail calls wait for release; it
// counts the calls in progress and their most at once.
type blockingSES struct {
	release chan struct{}
	in, max atomic.Int64
	started chan struct{}
}

func (b *blockingSES) SendEmail(ctx context.Context, in *sesv2.SendEmailInput, _ ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	n := b.in.Add(1)
	defer b.in.Add(-1)
	for {
		m := b.max.Load()
		if n <= m || b.max.CompareAndSwap(m, n) {
			break
		}
	}
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &sesv2.SendEmailOutput{MessageId: aws.String("ses-id")}, nil
}

// TestAttackSESLargeSlotsHeldDuringCall: the large-message slots bound the
// messages held whole in memory, so a slot is held until the SendEmail
// call (which holds the message and its base64 form) is over, not only
// while the body is read. Three large messages delivered at once with
// two slots: at most two calls in progress; the third starts when one
// ends.
func TestAttackSESLargeSlotsHeldDuringCall(t *testing.T) {
	c := &blockingSES{release: make(chan struct{}), started: make(chan struct{}, 8)}
	h := sesHarness(t, c, nil)
	big := "Subject: large\r\n\r\n" + strings.Repeat(strings.Repeat("y", 998)+"\r\n", sesLargeMessage/1000+1)
	const n = sesLargeSlots + 1
	var msgs []*queue.Message
	for range n {
		h.enqueueBody(big, nil, "bob@example.net")
	}
	for range n {
		m, err := h.q.Lease(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	hop := h.sesHop()
	var wg sync.WaitGroup
	res := make([]map[int]result, n)
	for i, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], _ = hop.deliver(context.Background(), m, []int{0})
		}()
	}
	for range sesLargeSlots {
		<-c.started
	}
	select {
	case <-c.started:
		t.Errorf("a third SendEmail call started while two large messages were in calls (%d slots)", sesLargeSlots)
	case <-time.After(300 * time.Millisecond):
	}
	close(c.release)
	wg.Wait()
	if m := c.max.Load(); m > sesLargeSlots {
		t.Errorf("%d large messages in SendEmail at once, want at most %d", m, sesLargeSlots)
	}
	for i, r := range res {
		if r[0].status != queue.StatusRelayed {
			t.Errorf("message %d: %s %q", i, r[0].status, r[0].reply)
		}
	}
}

// TestAttackSESPartialGroupsRetriedOnce: 120 recipients in three calls,
// SES taking the first and throttling the second (the third is not
// tried): the first 50 are recorded relayed and the next attempt sends
// only the other 70 (two calls of 50 and 20); nobody gets the message
// twice and the message then leaves the queue.
func TestAttackSESPartialGroupsRetriedOnce(t *testing.T) {
	var throttle atomic.Bool
	throttle.Store(true)
	s := awstest.Start(t).Front(t, sesFault(429, "TooManyRequestsException", "Maximum sending rate exceeded.",
		func(n int64) bool { return n == 2 && throttle.Load() }))
	h := sesHarness(t, s.SESV2(), nil)
	marker := awstest.UniqueName("ses-partial")
	var rcpts []string
	for i := range 120 {
		rcpts = append(rcpts, fmt.Sprintf("p%03d@example.net", i))
	}
	h.enqueueBody(sesBody(marker), nil, rcpts...)
	env := h.attempt()
	relayed, pending := 0, 0
	for _, r := range env.Recipients {
		switch r.Status {
		case queue.StatusRelayed:
			relayed++
		case queue.StatusPending:
			pending++
		}
	}
	if relayed != 50 || pending != 70 {
		t.Fatalf("after the first attempt: %d relayed, %d pending; want 50 and 70", relayed, pending)
	}
	h.clock.Advance(5 * time.Hour)
	env = h.attempt()
	if p := env.Pending(); len(p) != 0 {
		t.Fatalf("%d pending after the second attempt", len(p))
	}
	sent := s.FindSent(t, marker)
	seen := map[string]int{}
	var sizes []int
	for _, e := range sent {
		sizes = append(sizes, len(e.Recipients()))
		for _, a := range e.Recipients() {
			seen[a]++
		}
	}
	if !slices.Equal(sizes, []int{50, 50, 20}) {
		t.Errorf("calls stored with %v recipients, want [50 50 20]", sizes)
	}
	for _, a := range rcpts {
		if seen[a] != 1 {
			t.Errorf("%s got the message %d times", a, seen[a])
		}
	}
}

// bodyFault is a queue whose bodies cannot be opened (open) or fail after
// a few bytes (read).
type bodyFault struct {
	queue.Queue
	open bool
}

func (q bodyFault) Body(ctx context.Context, m *queue.Message) (io.ReadCloser, error) {
	if q.open {
		return nil, errors.New("NoSuchKey: the body object is missing")
	}
	rc, err := q.Queue.Body(ctx, m)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, 10), iotest.ErrReader(errors.New("connection reset"))), rc}, nil
}

// TestAttackSESBodyUnreadable: a queued body that cannot be opened (the
// S3 object missing) or read to its end leaves the recipients pending
// with 451 4.3.0, no call to SES, no report, and the gateway not down
// (it is not SES's fault).
func TestAttackSESBodyUnreadable(t *testing.T) {
	for _, open := range []bool{true, false} {
		t.Run(fmt.Sprintf("open fails %v", open), func(t *testing.T) {
			var calls atomic.Int64
			s := awstest.Start(t).Front(t, countSends(&calls))
			h := sesHarness(t, s.SESV2(), nil)
			h.enqueueBody(sesBody(awstest.UniqueName("ses-body")), nil, "bob@example.net")
			m, err := h.q.Lease(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			hop := h.sesHop()
			hop.w.q = bodyFault{Queue: h.w.q, open: open}
			res, down := hop.deliver(context.Background(), m, []int{0})
			if down || res[0].status != queue.StatusPending || res[0].reply.String() != replyBodyUnreadable().String() || calls.Load() != 0 {
				t.Errorf("%s %q, down %v, %d calls", res[0].status, res[0].reply, down, calls.Load())
			}
			if len(h.rep.Calls()) != 0 {
				t.Errorf("reports %+v", h.rep.Calls())
			}
		})
	}
}
