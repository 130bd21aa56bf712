package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
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

// FuzzLambdaRecord: whatever an SQS record holds (body, receive count,
// sent time, message ID), the handler answers before its deadline, and a record whose body is not even JSON (so not an edgerelay
// message) is reported failed, never done: the event source would delete
// a record reported done, and a foreign message must be left for the
// dead-letter queue; no panic is recovered on the way. The seeds include
// a real edgerelay message.
func FuzzLambdaRecord(f *testing.F) {
	fx := newLambdaFixture(f, nil)
	// The handler and the worker recover panics and log them: a panic is
	// a finding all the same.
	var panics atomic.Int64
	cfg, err := lambdaConfig()
	if err != nil {
		f.Fatal(err)
	}
	h, err := newLambdaHandler(context.Background(), cfg, slog.New(slog.NewTextHandler(panicCounter{&panics}, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.q.Close() })
	fx.enqueue(f, "ok@example.net")
	real := fx.receive(f, 1).Records[0]
	f.Add(real.Body, "1", real.Attributes["SentTimestamp"], real.MessageId)
	f.Add(strings.Replace(real.Body, "ok@", "defer@", 1), "7", "0", "m2")
	f.Add("not json", "x", "-1", "")
	f.Add(`{"v":1,"key":"queue/X.eml","envelope":{"id":"../../acme/account"}}`, "99999999999999999999", "1e99", "\xff")
	f.Add("\x00\xff{\"v\":1}", "", "", "id")
	f.Add(`{"v":1,"key":"queue/06H2FSST3XFMJ0DAC53T.eml","env_key":"queue/env/06H2FSST3XFMJ0DAC53T/x.json","id":"06H2FSST3XFMJ0DAC53T"}`, "2", "", "p")
	f.Fuzz(func(t *testing.T, body, receives, sent, msgID string) {
		rec := events.SQSMessage{
			MessageId: msgID, ReceiptHandle: "fuzz-handle", Body: body, EventSource: "aws:sqs",
			Attributes: map[string]string{"ApproximateReceiveCount": receives, "SentTimestamp": sent},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		resp, err := h.handle(ctx, events.SQSEvent{Records: []events.SQSMessage{rec}})
		if err != nil {
			t.Fatalf("handle: %v", err)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Fatalf("handle took %v", d)
		}
		if n := panics.Load(); n != 0 {
			t.Fatalf("record %q: %d panics recovered", body, n)
		}
		if !json.Valid([]byte(body)) && len(resp.BatchItemFailures) != 1 {
			t.Fatalf("record %q (not JSON) reported done: the event source would delete it", body)
		}
	})
}

// panicCounter counts the log lines of recovered panics.
type panicCounter struct{ n *atomic.Int64 }

func (p panicCounter) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("panicked")) {
		p.n.Add(1)
	}
	return len(b), nil
}
