package sqs_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// TestSQSFailedRearmsNotCrashes: a message that is not due yet is re-armed
// with ChangeMessageVisibility; when that call fails (a flaky SQS), the
// message comes back after the visibility timeout with one more receive.
// Such receives delivered nothing and must not count as crashed
// deliveries: a healthy message must not be quarantined for them
// (issue 8 review).
func TestSQSFailedRearmsNotCrashes(t *testing.T) {
	t.Parallel()
	var fails atomic.Int32
	fails.Store(int32(queue.DefaultMaxDeliveryCrashes))
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if awstest.SQSAction(r) == "ChangeMessageVisibility" && fails.Add(-1) >= 0 {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"__type":"com.amazonaws.sqs#AccessDenied","message":"flaky"}`))
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, nil)
	env := sqsEnvelope("bob@example.net")
	env.NextAttempt = time.Now().Add(6 * time.Second) // a retry due later
	id := mustEnqueueSQS(t, q, env, "x")
	m, err := q.Lease(sqsCtx(t, 20*time.Second))
	if err != nil {
		t.Fatalf("Lease: %v (CrashQuarantined %d)", err, q.Stats().CrashQuarantined)
	}
	if m.Envelope.ID != id {
		t.Fatalf("leased %s, want %s", m.Envelope.ID, id)
	}
	if n := q.Stats().CrashQuarantined; n != 0 {
		t.Fatalf("CrashQuarantined = %d, want 0", n)
	}
	q.Complete(context.Background(), m)
}
