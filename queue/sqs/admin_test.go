package sqs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestSQSAdminListShow: List and Show read the operator's copies written
// at Enqueue and at Reschedule, OpenBody the body; an unknown or invalid
// ID is queue.ErrNotFound for every command; Complete leaves no copy.
func TestSQSAdminListShow(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	ctx := sqsCtx(t, 30*time.Second)
	a := mustEnqueueSQS(t, q, sqsEnvelope("a@example.net"), "body A")
	b := mustEnqueueSQS(t, q, sqsEnvelope("b1@example.net", "b2@example.net"), "body B")

	// Enqueue does not wait for the copies: List may see a message before
	// its copy (AsOf zero) for a moment.
	var entries []queue.Entry
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if entries, err = q.List(ctx); err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(entries, func(e queue.Entry) bool { return e.AsOf.IsZero() }) || time.Now().After(deadline) {
			break
		}
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Envelope.ID)
		if e.Envelope.From != "alice@example.com" || e.AsOf.IsZero() || e.Envelope.Size == 0 {
			t.Errorf("entry %s: %+v, want the enqueued envelope with its copy's time", e.Envelope.ID, e)
		}
	}
	if !slices.Contains(ids, a) || !slices.Contains(ids, b) || len(ids) != 2 {
		t.Fatalf("List IDs %v, want %s and %s", ids, a, b)
	}

	// A deferred attempt: the copy follows Reschedule.
	m := sqsLease(t, q)
	m.Envelope.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{"try later"}}
	m.Envelope.Recipients[0].Attempts = 1
	if err := q.Reschedule(ctx, m, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e, err := q.Show(ctx, m.Envelope.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Envelope.Recipients[0]; r.Reply.String() != "451 4.3.0 try later" || e.Envelope.Attempts != 1 || e.Envelope.NextAttempt.IsZero() {
		t.Errorf("Show after Reschedule: %+v, want the recorded reply, 1 attempt and the next attempt", e.Envelope)
	}

	rc, err := q.OpenBody(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "body A" {
		t.Errorf("OpenBody %s = %q", a, got)
	}

	for _, id := range []string{"NOSUCHID", "../etc/passwd", ""} {
		if _, err := q.Show(ctx, id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("Show(%q): %v, want ErrNotFound", id, err)
		}
		if _, err := q.OpenBody(ctx, id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("OpenBody(%q): %v, want ErrNotFound", id, err)
		}
		for name, op := range map[string]func(context.Context, string) (bool, error){
			"Retry": q.Retry, "Hold": q.Hold, "Release": q.Release, "Bounce": q.Bounce, "Delete": q.Delete,
		} {
			if _, err := op(ctx, id); !errors.Is(err, queue.ErrNotFound) {
				t.Errorf("%s(%q): %v, want ErrNotFound", name, id, err)
			}
		}
	}

	// The other message completes: its copy and mark go with the body.
	other := a
	if m.Envelope.ID == a {
		other = b
	}
	if _, err := q.Hold(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Release(ctx, other); err != nil {
		t.Fatal(err)
	}
	m2 := sqsLease(t, q)
	if m2.Envelope.ID != other {
		t.Fatalf("leased %s, want %s", m2.Envelope.ID, other)
	}
	if err := q.Complete(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Show(ctx, other); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("Show of a completed message: %v, want ErrNotFound", err)
	}
	for _, k := range f.keys(t) {
		if len(k) > len("queue/")+len(other) && k[len("queue/"):len("queue/")+len(other)] == other {
			t.Errorf("object %s left after Complete", k)
		}
	}
}

// TestSQSAdminMarks: Hold, Release, Bounce and Delete are marks that the
// next receive merges into the leased envelope (immediate=false); a mark
// written while a worker holds the message survives that worker's
// Reschedule; a bounce of a message that a receive re-armed for a long
// delay makes it visible at once (the receipt handle in the copy).
func TestSQSAdminMarks(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	ctx := sqsCtx(t, 60*time.Second)
	id := mustEnqueueSQS(t, q, sqsEnvelope("x@example.net"), "x")

	if imm, err := q.Hold(ctx, id); err != nil || imm {
		t.Fatalf("Hold: %v %v, want not immediate", imm, err)
	}
	e, err := q.Show(ctx, id)
	if err != nil || !e.Envelope.Hold {
		t.Fatalf("Show after Hold: %+v %v", e, err)
	}
	m := sqsLease(t, q)
	if !m.Envelope.Hold || m.Envelope.Operator != "" {
		t.Fatalf("leased hold=%v operator=%q, want held", m.Envelope.Hold, m.Envelope.Operator)
	}
	// Marked while leased: the worker's Reschedule (which still carries
	// Hold in its copy) does not undo the release, nor the bounce.
	if _, err := q.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Bounce(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := q.Reschedule(ctx, m, time.Now()); err != nil {
		t.Fatal(err)
	}
	m = sqsLease(t, q)
	if m.Envelope.Hold || m.Envelope.Operator != queue.OperatorBounce {
		t.Fatalf("leased hold=%v operator=%q, want released and marked bounce", m.Envelope.Hold, m.Envelope.Operator)
	}
	if _, err := q.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}

	// Put the message back due in 2 h as a receive after a 15 min delay
	// finds it: the receive re-arms it and leaves its receipt in the copy.
	if err := q.Reschedule(ctx, m, time.Now()); err != nil {
		t.Fatal(err)
	}
	raw := f.rawReceive(t, 60)
	if raw == nil {
		t.Fatal("rescheduled message not received")
	}
	var w map[string]json.RawMessage
	if err := json.Unmarshal([]byte(aws.ToString(raw.Body)), &w); err != nil {
		t.Fatal(err)
	}
	var env queue.Envelope
	json.Unmarshal(w["envelope"], &env)
	env.NextAttempt = time.Now().Add(2 * time.Hour)
	w["envelope"], _ = json.Marshal(&env)
	data, _ := json.Marshal(w)
	f.rawDelete(t, raw)
	// The delete mark would hand the message out whatever its due time
	// (an Operator action does not wait): clear it to see the re-arm.
	clearOperator(t, f, id)
	f.rawSend(t, string(data))
	sqsNothingDue(t, q, 3*time.Second, "due in 2 h")
	if e, err := q.Show(ctx, id); err != nil || e.Envelope.NextAttempt.Before(time.Now().Add(time.Hour)) {
		t.Fatalf("Show after the re-arm: %+v %v", e, err)
	}
	start := time.Now()
	if _, err := q.Bounce(ctx, id); err != nil {
		t.Fatal(err)
	}
	m = sqsLease(t, q)
	if m.Envelope.ID != id || m.Envelope.Operator != queue.OperatorBounce {
		t.Fatalf("leased %s operator %q, want %s marked bounce", m.Envelope.ID, m.Envelope.Operator, id)
	}
	// The handle that ended the wait is gone from the copy: a second
	// command must not use it on the delivery that receive started.
	if r, err := q.ViewReceipt(ctx, id); err != nil || r != "" {
		t.Errorf("copy after the nudge holds receipt %q (%v), want none", r, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("bounced message received %v after the mark; the re-armed wait was not ended", el)
	}
	if err := q.Complete(ctx, m); err != nil {
		t.Fatal(err)
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("keys after Complete: %v", k)
	}
}

// clearOperator rewrites id's mark without an action, as an operator
// mark written before the copy would be.
func clearOperator(t *testing.T, f *sqsFixture, id string) {
	t.Helper()
	if _, err := f.srv.S3().PutObject(context.Background(), putInput(f.bucket, sqs.DefaultS3Prefix+id+".op.json", `{"v":1}`)); err != nil {
		t.Fatal(err)
	}
}

func putInput(bucket, key, body string) *s3.PutObjectInput {
	return &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
}

// TestSQSAdminRetryAll: RetryAll marks every message that is not held,
// and List reads them all, more than run at once (adminParallel).
func TestSQSAdminRetryAll(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	ctx := sqsCtx(t, 60*time.Second)
	const n = 40
	for i := range n {
		mustEnqueueSQS(t, q, sqsEnvelope(fmt.Sprintf("r%d@example.net", i)), "a")
	}
	held := mustEnqueueSQS(t, q, sqsEnvelope("b@example.net"), "b")
	if _, err := q.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}
	got, err := q.RetryAll(ctx)
	if err != nil || got != n {
		t.Fatalf("RetryAll = %d, %v; want %d (the held one left alone)", got, err, n)
	}
	es, err := q.List(ctx)
	if err != nil || len(es) != n+1 {
		t.Fatalf("List: %d entries, %v; want %d", len(es), err, n+1)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[e.Envelope.ID] = true
		if e.Envelope.Hold != (e.Envelope.ID == held) {
			t.Errorf("%s: hold %v", e.Envelope.ID, e.Envelope.Hold)
		}
	}
	if len(seen) != n+1 {
		t.Errorf("List gave %d distinct IDs, want %d", len(seen), n+1)
	}
}

// TestSQSViewWriteFailure: the operator's copy is a view: when S3 refuses
// it, Enqueue and Reschedule still succeed (the body and the SQS message
// are what 250 promises), the failure is counted, and the message is
// delivered as usual.
func TestSQSViewWriteFailure(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	front := f.srv.Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".view.json") {
				http.Error(w, "<Error><Code>InternalError</Code></Error>", http.StatusInternalServerError)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	q := f.open(t, func(o *sqs.Options) { o.S3 = front.S3() })
	ctx := sqsCtx(t, 30*time.Second)
	id := mustEnqueueSQS(t, q, sqsEnvelope("v@example.net"), "v")
	m := sqsLease(t, q)
	if err := q.Reschedule(ctx, m, time.Now()); err != nil {
		t.Fatalf("Reschedule with the copy refused: %v", err)
	}
	for deadline := time.Now().Add(5 * time.Second); q.Stats().ViewWriteErrors < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if got := q.Stats().ViewWriteErrors; got != 2 {
		t.Errorf("ViewWriteErrors = %d, want 2 (enqueue and reschedule)", got)
	}
	if !strings.Contains(f.logs.String(), "operator's copy of the envelope could not be written") {
		t.Errorf("failed copy not logged:\n%s", f.logs.String())
	}
	// No copy: Show still finds the message by its body.
	if e, err := q.Show(ctx, id); err != nil || e.Envelope.ID != id || !e.AsOf.IsZero() {
		t.Errorf("Show without a copy: %+v %v, want the ID with no copy time", e, err)
	}
	m = sqsLease(t, q)
	if err := q.Complete(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// TestSQSBadMark: a mark object that is not a mark (written by hand, cut
// short) keeps the message from delivery, logged at ERROR at each receive,
// since it may have been a hold; a queue command rewrites it and the
// message is delivered again.
func TestSQSBadMark(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	ctx := sqsCtx(t, 30*time.Second)
	id := mustEnqueueSQS(t, q, sqsEnvelope("m@example.net"), "m")
	if _, err := f.srv.S3().PutObject(ctx, putInput(f.bucket, sqs.DefaultS3Prefix+id+".op.json", `{"hold": tru`)); err != nil {
		t.Fatal(err)
	}
	sqsNothingDue(t, q, 3*time.Second, "unreadable mark")
	if !strings.Contains(f.logs.String(), "mark is not readable") {
		t.Errorf("the unreadable mark was not logged:\n%s", f.logs.String())
	}
	if _, err := q.Release(ctx, id); err != nil {
		t.Fatal(err)
	}
	m := sqsLease(t, q)
	if m.Envelope.ID != id || m.Envelope.Hold {
		t.Fatalf("leased %s hold=%v", m.Envelope.ID, m.Envelope.Hold)
	}
	q.Complete(ctx, m)
}
