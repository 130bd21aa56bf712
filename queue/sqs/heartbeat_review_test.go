package sqs_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestSQSSlowAcceptKeepsLease: the visibility clock runs from the receive,
// so the lease's first heartbeat is due a third of the visibility timeout
// after the receive, not after accept's S3 reads. With a mark read that
// takes three quarters of the timeout (a slow S3, a loaded machine), a
// first heartbeat counted from the end of accept came after the message
// was visible again, and a second Lease handed it out while the first
// still held it (the contract's EachMessageLeasedOnce under -race).
func TestSQSSlowAcceptKeepsLease(t *testing.T) {
	t.Parallel()
	const vis = 4 * time.Second
	var slowed atomic.Bool
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".op.json") && slowed.CompareAndSwap(false, true) {
				time.Sleep(vis * 3 / 4)
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, func(o *sqs.Options) { o.VisibilityTimeout = vis })
	id := mustEnqueueSQS(t, q, sqsEnvelope("bob@example.net"), "x")
	m := sqsLease(t, q)
	if m.Envelope.ID != id || !slowed.Load() {
		t.Fatalf("leased %s (mark read slowed: %v), want %s", m.Envelope.ID, slowed.Load(), id)
	}
	// Past the visibility timeout counted from the receive.
	sqsNothingDue(t, q, vis*3/4, "while the first lease holds the message")
	if err := q.Complete(context.Background(), m); err != nil {
		t.Fatalf("Complete: %v", err)
	}
}
