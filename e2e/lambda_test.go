package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/edgerelay/edgerelay/internal/awstest"
)

// runtimeAPI is a loopback stand-in for the Lambda Runtime API
// (2018-06-01): it hands out the events sent on next, one invocation
// each, and passes on what the function answers.
type runtimeAPI struct {
	next      chan []byte
	responses chan string // "response: <body>" or "error: <body>"
}

func newRuntimeAPI(t *testing.T) (*runtimeAPI, string) {
	rt := &runtimeAPI{next: make(chan []byte), responses: make(chan string, 4)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const base = "/2018-06-01/runtime/"
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodGet && r.URL.Path == base+"invocation/next":
			var ev []byte
			select {
			case ev = <-rt.next:
			case <-r.Context().Done():
				return
			}
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", "req-1")
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(60*time.Second).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:edgerelay-worker")
			w.Write(ev)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/response"):
			rt.responses <- "response: " + string(body)
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/error"):
			rt.responses <- "error: " + string(body)
			w.WriteHeader(http.StatusAccepted)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return rt, strings.TrimPrefix(srv.URL, "http://")
}

// TestBinaryLambdaWorker: the binary, started by a Lambda runtime (here a
// stand-in on loopback: AWS_LAMBDA_RUNTIME_API), runs the SQS handler: a
// message submitted to a front end and a foreign message, received from
// the queue as the event source would, are handed over as one event; the
// message reaches the gateway, and the partial batch response names only
// the foreign record.
func TestBinaryLambdaWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	endpoint, queueURL := startEmulator(t)
	sk := newSink(t, "127.0.0.1:0")
	aws := map[string]string{
		"RELAY_QUEUE": "sqs", "RELAY_SQS_QUEUE_URL": queueURL, "RELAY_S3_BUCKET": "relay-bodies",
		"RELAY_SQS_VISIBILITY_TIMEOUT": "5s",
		"AWS_ENDPOINT_URL":             endpoint, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
	}
	dir := t.TempDir()
	writeUsers(t, filepath.Join(dir, "users"), map[string]string{"alice@example.org": "alice-pw"})
	front := map[string]string{"RELAY_ROLE": "submission", "RELAY_DATA_DIR": dir}
	for k, v := range aws {
		front[k] = v
	}
	p := start(t, front)
	if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{"bob@example.net"}, msg("alice@example.org", "bob@example.net", "via lambda")); err != nil {
		t.Fatal(err)
	}
	sqsc := (&awstest.Server{URL: endpoint}).SQS()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := sqsc.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: awsString(queueURL), MessageBody: awsString("not an edgerelay message")}); err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	for len(ev.Records) < 2 && ctx.Err() == nil {
		out, err := sqsc.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
			QueueUrl: awsString(queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1, VisibilityTimeout: 60,
			MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			ev.Records = append(ev.Records, events.SQSMessage{
				MessageId: *m.MessageId, ReceiptHandle: *m.ReceiptHandle, Body: *m.Body, Attributes: m.Attributes,
				EventSource: "aws:sqs", EventSourceARN: "arn:aws:sqs:us-east-1:000000000000:relay", AWSRegion: "us-east-1",
			})
		}
	}
	if len(ev.Records) != 2 {
		t.Fatalf("received %d messages, want 2", len(ev.Records))
	}
	foreign := ev.Records[0].MessageId
	if strings.Contains(ev.Records[1].Body, "not an edgerelay") {
		foreign = ev.Records[1].MessageId
	}

	rt, rtAddr := newRuntimeAPI(t)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"AWS_LAMBDA_RUNTIME_API=" + rtAddr, "RELAY_ROLE=worker", "RELAY_DATA_DIR=" + t.TempDir(),
		"RELAY_HOSTNAME=relay.e2e.test", "RELAY_GATEWAY=" + sk.addr(), "RELAY_GATEWAY_TLS=none",
		"RELAY_BOUNCE_STORE=s3://relay-bodies/bounces/", "RELAY_LOG_FORMAT=json"}
	for k, v := range aws {
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(binary(t))
	cmd.Env = env
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	data, _ := json.Marshal(ev)
	select {
	case rt.next <- data:
	case <-ctx.Done():
		t.Fatalf("the function never asked for an invocation:\n%s", logs.String())
	}
	var answer string
	select {
	case answer = <-rt.responses:
	case <-ctx.Done():
		t.Fatalf("no answer to the invocation:\n%s", logs.String())
	}
	body, ok := strings.CutPrefix(answer, "response: ")
	if !ok {
		t.Fatalf("the function answered %s\n%s", answer, logs.String())
	}
	var resp events.SQSEventResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatalf("response %q: %v", body, err)
	}
	if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != foreign {
		t.Fatalf("batchItemFailures %+v, want only the foreign record %s\n%s", resp.BatchItemFailures, foreign, logs.String())
	}
	if got := sk.messages(); len(got) != 1 || got[0].To[0] != "bob@example.net" || !strings.Contains(string(got[0].Data), "Subject: via lambda") {
		t.Fatalf("sink got %+v", got)
	}
}

func awsString(s string) *string { return aws.String(s) }
