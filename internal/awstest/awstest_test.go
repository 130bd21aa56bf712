package awstest

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TestEmulator checks the emulator behaviours the queue backend relies on,
// through the real SDK clients.
func TestEmulator(t *testing.T) {
	s := Start(t)
	c := ctx(t)
	bucket := UniqueName("awstest-b")
	url := s.CreateQueue(t, UniqueName("awstest-q"), map[string]string{"VisibilityTimeout": "30"})
	q := s.SQS()
	if _, err := q.SendMessage(c, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String(`{"x":1}`)}); err != nil {
		t.Fatal(err)
	}
	out, err := q.ReceiveMessage(c, &sqs.ReceiveMessageInput{QueueUrl: &url, WaitTimeSeconds: 1,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameApproximateReceiveCount}})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("ReceiveMessage: %v, %d messages", err, len(out.Messages))
	}
	m := out.Messages[0]
	if got := m.Attributes[string(sqstypes.MessageSystemAttributeNameApproximateReceiveCount)]; got != "1" {
		t.Errorf("ApproximateReceiveCount = %q, want 1", got)
	}
	if _, err := q.ChangeMessageVisibility(c, &sqs.ChangeMessageVisibilityInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 60}); err != nil {
		t.Error(err)
	}
	if _, err := q.DeleteMessage(c, &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle}); err != nil {
		t.Error(err)
	}

	s.CreateBucket(t, bucket)
	b := s.S3()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	if _, err := b.PutObject(c, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatal(err)
	}
	g, err := b.GetObject(c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(g.Body)
	g.Body.Close()
	if !bytes.Equal(got, big) {
		t.Errorf("upload: read back %d bytes, want %d identical", len(got), len(big))
	}

	s.SetDown("sqs", true)
	if _, err := q.SendMessage(c, &sqs.SendMessageInput{QueueUrl: &url, MessageBody: aws.String("x")}); !errors.Is(err, ErrDown) {
		t.Errorf("SendMessage while down: %v, want ErrDown", err)
	}
	if _, err := b.HeadBucket(c, &s3.HeadBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("S3 while only SQS is down: %v", err)
	}
}

// TestVirtualHostedLoopback: an S3 client without UsePathStyle still works
// against a loopback IP endpoint (the SDK uses path-style for IP hosts), so
// the binary needs no path-style switch for the standalone emulator.
func TestVirtualHostedLoopback(t *testing.T) {
	s := Start(t)
	vh := UniqueName("awstest-vh")
	s.CreateBucket(t, vh)
	c := s3.NewFromConfig(s.Config())
	if _, err := c.HeadBucket(ctx(t), &s3.HeadBucketInput{Bucket: aws.String(vh)}); err != nil {
		t.Fatalf("HeadBucket without UsePathStyle: %v", err)
	}
}
