package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestLambdaDuplicateRecord: SQS delivers at least once, so one batch may
// hold the same message twice (one MessageId, two receipt handles). It
// is delivered once, not by two goroutines at once, and both records get
// the one outcome a MessageId can be reported with (done here).
func TestLambdaDuplicateRecord(t *testing.T) {
	f := newLambdaFixture(t, nil)
	t.Setenv("RELAY_DELIVERY_CONCURRENCY", "4")
	h := f.handler(t)
	f.enqueue(t, "ok@example.net")
	ev := f.receive(t, 1)
	ev.Records = append(ev.Records, ev.Records[0])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := h.handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("BatchItemFailures %v (%v), want none\n%s", resp.BatchItemFailures, err, f.logs.String())
	}
	if n := strings.Count(f.logs.String(), "msg=delivered"); n != 1 {
		t.Errorf("delivered %d times, want once\n%s", n, f.logs.String())
	}
}
