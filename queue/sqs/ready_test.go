package sqs

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// readySQS answers GetQueueAttributes with err (the rest of SQSAPI is not
// used by Ready).
type readySQS struct {
	SQSAPI
	err error
}

func (r *readySQS) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{}, r.err
}

// TestSQSReady: an SQS outage makes the queue unready, and it is ready
// again as soon as SQS answers.
func TestSQSReady(t *testing.T) {
	api := &readySQS{err: errors.New("dial tcp: connection refused")}
	q := &Queue{o: Options{SQS: api, QueueURL: "http://127.0.0.1:1/q"}}
	if err := q.Ready(context.Background()); err == nil {
		t.Fatal("SQS down: ready, want an error")
	}
	api.err = nil
	if err := q.Ready(context.Background()); err != nil {
		t.Fatalf("SQS back: %v", err)
	}
}
