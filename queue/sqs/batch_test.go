package sqs_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestSQSBatchHungSend (issue 8 item 27): with batched sends, one
// SendMessage(Batch) request that hangs must not stall the other
// enqueues: they complete while it hangs (each within a 5 s bound that
// only detects the stall; a normal enqueue takes milliseconds).
func TestSQSBatchHungSend(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var sends atomic.Int32
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a := awstest.SQSAction(r); (a == "SendMessage" || a == "SendMessageBatch") && sends.Add(1) == 1 {
				select { // the hung request
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, func(o *sqs.Options) { o.BatchSends = true })
	t.Cleanup(func() { close(release) }) // before q.Close, which waits for sends in flight

	hung := make(chan error, 1)
	go func() {
		_, err := q.Enqueue(context.Background(), sqsEnvelope("hung@example.net"), strings.NewReader("hung"))
		hung <- err
	}()
	for sends.Load() == 0 { // wait until the first send is the one hanging
		time.Sleep(5 * time.Millisecond)
	}
	for i := range 8 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := q.Enqueue(ctx, sqsEnvelope(fmt.Sprintf("r%d@example.net", i)), strings.NewReader("x"))
		cancel()
		if err != nil {
			t.Fatalf("enqueue %d while another send hangs: %v", i, err)
		}
	}
	select {
	case err := <-hung:
		t.Fatalf("the hung enqueue returned early: %v", err)
	default:
	}
}
