package sqs_test

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestSQSPoisonMessage (issue 8 item 5, SQS side): a message whose
// deliveries end without Reschedule or Complete (the worker process died:
// here its queue is closed, which stops the lease heartbeat) is not handed
// out again after queue.DefaultMaxDeliveryCrashes such receives: it is set
// aside under <prefix>quarantine/ with its envelope, deleted from SQS,
// logged at ERROR and counted. Legitimate retries (Reschedule) do not
// count: the first lease is rescheduled before the crashes begin.
func TestSQSPoisonMessage(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	id := mustEnqueueSQS(t, q, sqsEnvelope("bob@example.net"), "Subject: poison\r\n\r\nx\r\n")
	m := sqsLease(t, q)
	if err := q.Reschedule(context.Background(), m, time.Now()); err != nil {
		t.Fatal(err)
	}
	q.Close()
	for crash := 1; crash <= queue.DefaultMaxDeliveryCrashes; crash++ {
		w := f.open(t, nil)
		m := sqsLease(t, w)
		if m.Envelope.ID != id {
			t.Fatalf("crash %d: leased %s, want %s", crash, m.Envelope.ID, id)
		}
		w.Close() // the worker dies mid-delivery
	}
	last := f.open(t, nil)
	sqsNothingDue(t, last, 3*time.Second, "after the crashed deliveries")
	if got := last.Stats().CrashQuarantined; got != 1 {
		t.Errorf("CrashQuarantined = %d, want 1", got)
	}
	if !strings.Contains(f.logs.String(), "level=ERROR") || !strings.Contains(f.logs.String(), "quarantine") {
		t.Errorf("no ERROR log about the quarantine:\n%s", f.logs.String())
	}
	if v, inflight, delayed := f.counts(t); v != "0" || inflight != "0" || delayed != "0" {
		t.Errorf("SQS still holds the message: %s visible, %s in flight, %s delayed", v, inflight, delayed)
	}
	qkey := sqs.DefaultS3Prefix + "quarantine/" + id + ".json"
	out, err := f.srv.S3().GetObject(context.Background(), &s3.GetObjectInput{Bucket: &f.bucket, Key: aws.String(qkey)})
	if err != nil {
		t.Fatalf("quarantine record %s: %v (keys %v)", qkey, err, f.keys(t))
	}
	data, _ := io.ReadAll(out.Body)
	out.Body.Close()
	var rec struct {
		Key      string          `json:"key"`
		Envelope *queue.Envelope `json:"envelope"`
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Envelope == nil || rec.Envelope.ID != id || rec.Key != sqs.DefaultS3Prefix+id+".eml" {
		t.Fatalf("quarantine record %s: %v %s", qkey, err, data)
	}
	if _, err := f.srv.S3().HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &f.bucket, Key: aws.String(rec.Key)}); err != nil {
		t.Errorf("the body of the quarantined message is gone: %v", err)
	}
}

// TestSQSGiveBackNotACrash: a message received for a Lease call that was
// abandoned meanwhile (shutdown, a cancelled context) is given back
// without counting as a crashed delivery: it comes back with a fresh
// receive count, so shutdowns never push a healthy message to quarantine.
func TestSQSGiveBackNotACrash(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	id := mustEnqueueSQS(t, q, sqsEnvelope("bob@example.net"), "x")
	for range queue.DefaultMaxDeliveryCrashes + 1 {
		raw := f.rawReceive(t, 60)
		if raw == nil {
			t.Fatal("the message was not given back")
		}
		if n := raw.Attributes["ApproximateReceiveCount"]; n != "1" {
			t.Fatalf("received with ApproximateReceiveCount %s, want 1: the give-back counted as a receive without a result", n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := sqs.GiveBack(q, ctx, []sqstypes.Message{*raw}); err == nil {
			t.Fatal("GiveBack with a cancelled context returned nil")
		}
	}
	m := sqsLease(t, q)
	if m.Envelope.ID != id || m.Envelope.Attempts != 1 {
		t.Fatalf("leased %s with %d attempts, want %s with 1", m.Envelope.ID, m.Envelope.Attempts, id)
	}
	q.Complete(context.Background(), m)
}
