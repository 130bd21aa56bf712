package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// lambdaSink is a loopback gateway: 250 for every recipient but those
// starting with "defer", which get 451 4.3.0; it records what it took.
type lambdaSink struct {
	mu  sync.Mutex
	got []string
}

func (s *lambdaSink) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &lambdaSinkSession{s: s}, nil
}

func (s *lambdaSink) delivered() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

type lambdaSinkSession struct {
	s     *lambdaSink
	rcpts []string
}

func (ss *lambdaSinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *lambdaSinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "defer") {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}
func (ss *lambdaSinkSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, ss.rcpts...)
	ss.s.mu.Unlock()
	return nil
}
func (ss *lambdaSinkSession) Reset()        { ss.rcpts = nil }
func (ss *lambdaSinkSession) Logout() error { return nil }

// lambdaFixture is the emulator's queue and bucket, the sink, and the
// environment of a Lambda function configured for them.
type lambdaFixture struct {
	srv      *awstest.Server
	queueURL string
	bucket   string
	sink     *lambdaSink
	q        *sqs.Queue // the test's own handle, to enqueue and inspect
	logs     *testutil.LogBuffer
}

func newLambdaFixture(t testing.TB, front func(http.Handler) http.Handler) *lambdaFixture {
	srv := awstest.Start(t)
	f := &lambdaFixture{srv: srv, bucket: awstest.UniqueName("lambda"), sink: &lambdaSink{}, logs: &testutil.LogBuffer{}}
	f.queueURL = srv.CreateQueue(t, f.bucket, map[string]string{"VisibilityTimeout": "5"})
	srv.CreateBucket(t, f.bucket)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss := smtp.NewServer(f.sink)
	ss.Domain = "sink.test"
	go ss.Serve(ln)
	t.Cleanup(func() { ss.Close() })
	endpoint := srv.URL
	if front != nil {
		endpoint = srv.Front(t, front).URL
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": awstest.Region, "AWS_CA_BUNDLE": "",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
		"RELAY_QUEUE": "sqs", "RELAY_ROLE": "worker", "RELAY_DATA_DIR": t.TempDir(),
		"RELAY_SQS_QUEUE_URL": f.queueURL, "RELAY_S3_BUCKET": f.bucket, "RELAY_SQS_VISIBILITY_TIMEOUT": "5s",
		"RELAY_HOSTNAME": "relay.test", "RELAY_GATEWAY": ln.Addr().String(), "RELAY_GATEWAY_TLS": "none",
		"RELAY_RETRY_SCHEDULE": "10m", "RELAY_BOUNCE_STORE": "s3://" + f.bucket + "/bounces/",
	} {
		t.Setenv(k, v)
	}
	f.q, err = sqs.Open(context.Background(), sqs.Options{SQS: srv.SQS(), S3: srv.S3(), QueueURL: f.queueURL, Bucket: f.bucket, VisibilityTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.q.Close() })
	return f
}

// handler builds the Lambda handler from the environment, as lambdaMain
// does.
func (f *lambdaFixture) handler(t testing.TB) *lambdaHandler {
	cfg, err := lambdaConfig()
	if err != nil {
		t.Fatal(err)
	}
	h, err := newLambdaHandler(context.Background(), cfg, f.logs.Logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.q.Close() })
	return h
}

func (f *lambdaFixture) enqueue(t testing.TB, rcpt string) string {
	env := &queue.Envelope{From: "alice@example.org", Recipients: []queue.Recipient{{Addr: rcpt, Status: queue.StatusPending}}}
	id, err := f.q.Enqueue(context.Background(), env, strings.NewReader("Subject: t\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// receive takes n messages from the queue as the event source would and
// returns them as a Lambda SQS event.
func (f *lambdaFixture) receive(t testing.TB, n int) events.SQSEvent {
	var ev events.SQSEvent
	deadline := time.Now().Add(20 * time.Second)
	for len(ev.Records) < n && time.Now().Before(deadline) {
		out, err := f.srv.SQS().ReceiveMessage(context.Background(), &awssqs.ReceiveMessageInput{
			QueueUrl: aws.String(f.queueURL), MaxNumberOfMessages: int32(n - len(ev.Records)), WaitTimeSeconds: 1,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			ev.Records = append(ev.Records, events.SQSMessage{
				MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle),
				Body: aws.ToString(m.Body), Attributes: m.Attributes, EventSource: "aws:sqs",
			})
		}
	}
	if len(ev.Records) != n {
		t.Fatalf("received %d messages, want %d", len(ev.Records), n)
	}
	return ev
}

// recordOf finds the record whose body mentions s.
func recordOf(t *testing.T, ev events.SQSEvent, s string) events.SQSMessage {
	for _, r := range ev.Records {
		if strings.Contains(r.Body, s) {
			return r
		}
	}
	t.Fatalf("no record mentions %q", s)
	return events.SQSMessage{}
}

// TestLambdaBatch: one batch of five records really received from the
// emulator. The delivered one is completed; the deferred one is re-sent
// with its retry delay and reported done; the copy of a completed message
// (body gone) is dropped and reported done; a record that is not an
// edgerelay message and one whose Reschedule fails (SQS refuses the new
// copy) are the only BatchItemFailures, and both are still in the queue.
func TestLambdaBatch(t *testing.T) {
	failSend := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if awstest.SQSAction(r) == "SendMessage" && bytes.Contains(awstest.PeekBody(r), []byte("defer-broken@")) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"refused by the test"}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	f := newLambdaFixture(t, failSend)
	h := f.handler(t)
	good := f.enqueue(t, "ok@example.net")
	deferred := f.enqueue(t, "defer@example.net")
	broken := f.enqueue(t, "defer-broken@example.net")
	gone := f.enqueue(t, "gone@example.net")
	if _, err := f.srv.S3().DeleteObject(context.Background(), s3Delete(f.bucket, sqs.DefaultS3Prefix+gone+".eml")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.srv.SQS().SendMessage(context.Background(), &awssqs.SendMessageInput{QueueUrl: aws.String(f.queueURL), MessageBody: aws.String("not an edgerelay message")}); err != nil {
		t.Fatal(err)
	}
	ev := f.receive(t, 5)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp, err := h.handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, b := range resp.BatchItemFailures {
		failed = append(failed, b.ItemIdentifier)
	}
	want := []string{recordOf(t, ev, "not an edgerelay").MessageId, recordOf(t, ev, broken).MessageId}
	slices.Sort(failed)
	slices.Sort(want)
	if !slices.Equal(failed, want) {
		t.Fatalf("BatchItemFailures %v, want %v (the foreign record and the failed reschedule)\n%s", failed, want, f.logs.String())
	}
	if got := f.sink.delivered(); !slices.Equal(got, []string{"ok@example.net"}) {
		t.Errorf("sink took %v, want ok@example.net only", got)
	}
	if _, err := f.q.Show(ctx, good); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("delivered message still queued: %v", err)
	}
	e, err := f.q.Show(ctx, deferred)
	if err != nil {
		t.Fatal(err)
	}
	if wait := time.Until(e.Envelope.NextAttempt); wait < 8*time.Minute || e.Envelope.Recipients[0].Reply.String() != "451 4.3.0 try again later" {
		t.Errorf("deferred message: next attempt in %v, reply %q; want about 10 min and the 451", wait, e.Envelope.Recipients[0].Reply)
	}
	out, err := f.srv.SQS().GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: aws.String(f.queueURL),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
	if err != nil {
		t.Fatal(err)
	}
	// In flight: the two failed records (their receive's visibility);
	// delayed: the deferred copy; nothing visible.
	a := out.Attributes
	if a["ApproximateNumberOfMessagesDelayed"] != "1" || a["ApproximateNumberOfMessagesNotVisible"] != "2" || a["ApproximateNumberOfMessages"] != "0" {
		t.Errorf("queue after the batch: %v visible, %v in flight, %v delayed; want 0, 2, 1",
			a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"], a["ApproximateNumberOfMessagesDelayed"])
	}
	// The failed reschedule kept the message as it was: received again.
	if e, err := f.q.Show(ctx, broken); err != nil || e.Envelope.Attempts != 0 {
		t.Errorf("message whose reschedule failed: %+v %v, want still queued with its old state", e, err)
	}
}

// TestLambdaDeadline: with less time left than a delivery is given, no
// record is started: each is given back as a fresh copy (so the receive
// does not count as a crashed delivery) and reported done; nothing is
// delivered or lost.
func TestLambdaDeadline(t *testing.T) {
	f := newLambdaFixture(t, nil)
	h := f.handler(t)
	id := f.enqueue(t, "ok@example.net")
	ev := f.receive(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), h.reserve+h.minStart-time.Second)
	defer cancel()
	resp, _ := h.handle(ctx, ev)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("BatchItemFailures %v, want none (given back)", resp.BatchItemFailures)
	}
	if got := f.sink.delivered(); len(got) != 0 {
		t.Errorf("delivered %v with no time to start", got)
	}
	if _, err := f.q.Show(context.Background(), id); err != nil {
		t.Errorf("message gone: %v", err)
	}
	again := f.receive(t, 1).Records[0]
	if again.MessageId == ev.Records[0].MessageId || again.Attributes["ApproximateReceiveCount"] != "1" || !strings.Contains(again.Body, id) {
		t.Errorf("received %s (receive count %s), want a fresh copy of %s", again.MessageId, again.Attributes["ApproximateReceiveCount"], id)
	}
}

// TestLambdaMainRefuses: in a Lambda environment (AWS_LAMBDA_RUNTIME_API)
// the binary runs the Lambda worker, which refuses to start without
// RELAY_QUEUE=sqs, RELAY_ROLE=worker and an S3 bounce store, one line
// naming each, before any network.
func TestLambdaMainRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:$2a$04$abcdefghijklmnopqrstuuSoMeHashThatIsNotCheckedHere00000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:1")
	t.Setenv("RELAY_DATA_DIR", dir)
	t.Setenv("RELAY_HOSTNAME", "relay.test")
	t.Setenv("RELAY_AUTH", "file")
	var stderr bytes.Buffer
	code := run(nil, strings.NewReader(""), io.Discard, &stderr)
	for _, name := range []string{"RELAY_QUEUE:", "RELAY_ROLE:", "RELAY_BOUNCE_STORE:"} {
		if code != 2 || !strings.Contains(stderr.String(), "\n"+name) {
			t.Errorf("exit %d, stderr:\n%s\nwant 2 and a line starting with %s", code, stderr.String(), name)
		}
	}
}

func s3Delete(bucket, key string) *s3.DeleteObjectInput {
	return &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}

// TestLambdaOperatorMarks: the operator's marks written while messages
// wait (edgerelay queue hold/bounce/delete with SQS + S3) are carried out
// by the Lambda worker that receives them, as by the long-running one:
// the held message stays queued and undelivered, the bounced one's sender
// gets a report (queued, and delivered by the next invocation), the
// deleted one is gone without one; every record is reported done.
func TestLambdaOperatorMarks(t *testing.T) {
	f := newLambdaFixture(t, nil)
	h := f.handler(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	held := f.enqueue(t, "held@example.net")
	bounced := f.enqueue(t, "bounced@example.net")
	deleted := f.enqueue(t, "deleted@example.net")
	for _, op := range []struct {
		do func(context.Context, string) (bool, error)
		id string
	}{{f.q.Hold, held}, {f.q.Bounce, bounced}, {f.q.Delete, deleted}} {
		if imm, err := op.do(ctx, op.id); err != nil || imm {
			t.Fatalf("mark %s: %v %v, want a mark (not immediate)", op.id, imm, err)
		}
	}
	resp, err := h.handle(ctx, f.receive(t, 3))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("BatchItemFailures %v (%v), want none\n%s", resp.BatchItemFailures, err, f.logs.String())
	}
	if got := f.sink.delivered(); len(got) != 0 {
		t.Errorf("sink took %v, want nothing: held, bounced and deleted", got)
	}
	// The report to the bounced message's sender is queued, and the next
	// invocation delivers it.
	if resp, err := h.handle(ctx, f.receive(t, 1)); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("report's batch: %v %v", resp.BatchItemFailures, err)
	}
	if got := f.sink.delivered(); !slices.Equal(got, []string{"alice@example.org"}) {
		t.Errorf("sink took %v, want the report to the bounced message's sender\n%s", got, f.logs.String())
	}
	e, err := f.q.Show(ctx, held)
	if err != nil || !e.Envelope.Hold || time.Until(e.Envelope.NextAttempt) < time.Minute {
		t.Errorf("held message: %+v %v, want still queued, held, looked at again later", e, err)
	}
	for _, id := range []string{bounced, deleted} {
		if _, err := f.q.Show(ctx, id); !errors.Is(err, queue.ErrNotFound) {
			t.Errorf("%s still queued: %v", id, err)
		}
	}
	if k := f.srv.Keys(t, f.bucket, "bounces/"); len(k) < 2 { // the marker and one report
		t.Errorf("bounce store holds %v, want the report of the bounced message", k)
	}
}
