package sqs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestSQSAdminListUnreadableObjects: an operator's copy or a mark that
// cannot be decoded (cut short, written by hand or by another version)
// spoils only its own entry: List still shows every message, the one
// with a bad copy from its body object (ID, size, arrival), the one with
// a bad mark as held (the worker does not deliver it: TestSQSBadMark), so
// that the operator sees it and can release it; Show answers for both, and
// retry --all leaves it alone as it does held messages.
// Before, one such object made every `edgerelay queue list` fail.
func TestSQSAdminListUnreadableObjects(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	ctx := sqsCtx(t, 30*time.Second)
	good := mustEnqueueSQS(t, q, sqsEnvelope("a@example.net"), "body A")
	badView := mustEnqueueSQS(t, q, sqsEnvelope("b@example.net"), "body B")
	badMark := mustEnqueueSQS(t, q, sqsEnvelope("c@example.net"), "body C")
	// The copies Enqueue did not wait for land first.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if len(f.keys(t)) >= 6 {
			break
		}
	}
	for key, body := range map[string]string{
		sqs.DefaultS3Prefix + badView + ".view.json": `{"v":1,"envelope":{"id":"` + badView,
		sqs.DefaultS3Prefix + badMark + ".op.json":   `{"hold": tru`,
	} {
		if _, err := f.srv.S3().PutObject(ctx, putInput(f.bucket, key, body)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := q.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	byID := map[string]queue.Entry{}
	for _, e := range entries {
		byID[e.Envelope.ID] = e
	}
	if len(byID) != 3 {
		t.Fatalf("List shows %d messages, want 3", len(byID))
	}
	if e := byID[good]; e.Envelope.From != "alice@example.com" || e.Envelope.Hold {
		t.Errorf("good entry %+v", e)
	}
	if e := byID[badView]; e.Envelope.Size != int64(len("body B")) || !e.AsOf.IsZero() {
		t.Errorf("entry with a bad copy %+v, want the body's size and no AsOf", e)
	}
	if e := byID[badMark]; !e.Envelope.Hold || e.Envelope.From != "alice@example.com" {
		t.Errorf("entry with a bad mark %+v, want its copy, held", e)
	}
	for _, id := range []string{badView, badMark} {
		if _, err := q.Show(ctx, id); err != nil {
			t.Errorf("Show %s: %v", id, err)
		}
	}
	// retry --all leaves held messages alone, and so this one.
	if n, err := q.RetryAll(ctx); err != nil || n != 2 {
		t.Errorf("RetryAll = %d, %v; want 2 (not the one with a bad mark)", n, err)
	}
	if e, err := q.Show(ctx, badMark); err != nil || !e.Envelope.Hold {
		t.Errorf("after RetryAll, Show %s = %+v, %v; want it still held", badMark, e, err)
	}
	for _, key := range []string{badView + ".view.json", badMark + ".op.json"} {
		if !strings.Contains(f.logs.String(), key) {
			t.Errorf("the unreadable %s was not logged:\n%s", key, f.logs.String())
		}
	}
}

// TestSQSAdminQuarantined: a message set aside in quarantine is no longer
// in SQS, so no receive will ever read a mark: hold, retry, bounce and
// delete refuse it with an error naming the quarantine, instead of
// answering that the next receive acts on it (an action silently lost);
// retry --all passes over it.
func TestSQSAdminQuarantined(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	one := func(o *sqs.Options) { o.MaxDeliveryCrashes = 1 }
	q := f.open(t, one)
	ctx := sqsCtx(t, 30*time.Second)
	id := mustEnqueueSQS(t, q, sqsEnvelope("p@example.net"), "p")
	sqsLease(t, q)
	q.Close() // the worker dies mid-delivery
	w := f.open(t, one)
	sqsNothingDue(t, w, 3*time.Second, "a crashed delivery with MaxDeliveryCrashes 1")
	if w.Stats().CrashQuarantined != 1 {
		t.Fatalf("CrashQuarantined = %d, want 1", w.Stats().CrashQuarantined)
	}
	for name, do := range map[string]func(context.Context, string) (bool, error){
		"hold": w.Hold, "release": w.Release, "retry": w.Retry, "bounce": w.Bounce, "delete": w.Delete,
	} {
		if _, err := do(ctx, id); err == nil || !strings.Contains(err.Error(), "quarantine") {
			t.Errorf("%s of a quarantined message: %v, want an error naming the quarantine", name, err)
		}
	}
	if n, err := w.RetryAll(ctx); n != 0 || err != nil {
		t.Errorf("RetryAll = %d, %v; want 0 and no error", n, err)
	}
}
