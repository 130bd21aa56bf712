package sqs_test

import (
	"context"
	"testing"
	"time"
)

// TestSQSRetryDuringDelivery: `edgerelay queue retry ID` asked while a
// worker delivers the message (its lease read the mark before the retry
// was written) is not absorbed by that attempt: when the attempt ends
// with a Reschedule for later, the message is due at once, as the spool
// applies such a retry when the attempt ends (queue.Admin). Before, the
// new copy was sent after the retry, so its receive did not count the
// retry as asked, and the message waited for its next scheduled attempt.
func TestSQSRetryDuringDelivery(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	ctx := sqsCtx(t, 30*time.Second)
	id := mustEnqueueSQS(t, q, sqsEnvelope("r@example.net"), "r")
	m := sqsLease(t, q)
	if _, err := q.Retry(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := q.Reschedule(ctx, m, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	m2, err := q.Lease(sqsCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Lease after a retry asked during the attempt: %v, want the message at once", err)
	}
	if m2.Envelope.ID != id {
		t.Fatalf("leased %s, want %s", m2.Envelope.ID, id)
	}
	q.Complete(context.Background(), m2)
}
