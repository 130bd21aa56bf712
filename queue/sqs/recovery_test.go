package sqs_test

import (
	"context"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue/sqs"
)

// TestSQSDefaultVisibility (issue 8 item 20): a killed worker's message is
// retried after at most the visibility timeout, so the default is short
// (60 s) and the heartbeat extends it every 20 s.
func TestSQSDefaultVisibility(t *testing.T) {
	if sqs.DefaultVisibilityTimeout != 60*time.Second {
		t.Errorf("DefaultVisibilityTimeout = %v, want 60s", sqs.DefaultVisibilityTimeout)
	}
	if got := sqs.HeartbeatEvery(sqs.DefaultVisibilityTimeout); got != 20*time.Second {
		t.Errorf("heartbeat every %v with the default visibility, want 20s", got)
	}
}

// TestSQSRecoveryAfterKill measures (and logs; it asserts no timing) how
// long a message leased by a worker that dies stays unavailable: worker A
// leases it and dies right after a heartbeat extended the lease (the worst
// moment: its queue is closed, so no heartbeat runs again), and worker B,
// already polling, receives it. The visibility timeout is 3 s, or
// EDGERELAY_RECOVERY_VISIBILITY (e.g. 60s, the default) to measure that.
// docs/aws.md reports the figures.
func TestSQSRecoveryAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("measures a visibility timeout")
	}
	t.Parallel()
	vis := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("EDGERELAY_RECOVERY_VISIBILITY")); err == nil {
		vis = v
	}
	beats := make(chan time.Time, 16)
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			if awstest.SQSAction(r) == "ChangeMessageVisibility" {
				select {
				case beats <- time.Now():
				default:
				}
			}
		})
	})
	f := newSQSFixture(t, front, nil)
	mod := func(o *sqs.Options) { o.VisibilityTimeout = vis; o.WaitTime = time.Second }
	a := f.open(t, mod)
	id := mustEnqueueSQS(t, a, sqsEnvelope("bob@example.net"), "x")
	if m := sqsLease(t, a); m.Envelope.ID != id {
		t.Fatalf("leased %s", m.Envelope.ID)
	}
	var beat time.Time
	select {
	case beat = <-beats:
	case <-time.After(vis + 5*time.Second):
		t.Fatal("no heartbeat")
	}
	a.Close() // killed right after its heartbeat
	killed := time.Now()
	b := f.open(t, mod)
	m, err := b.Lease(sqsCtx(t, vis+30*time.Second))
	if err != nil {
		t.Fatalf("the message of the killed worker was not received again: %v", err)
	}
	recovered := time.Since(killed)
	t.Logf("visibility %v, heartbeat every %v: recovered %.2fs after the kill (%.2fs after the last heartbeat; %.2f visibility timeouts)",
		vis, sqs.HeartbeatEvery(vis), recovered.Seconds(), time.Since(beat).Seconds(), recovered.Seconds()/vis.Seconds())
	if m.Envelope.ID != id || m.Envelope.Attempts != 2 {
		t.Errorf("received %s with %d attempts, want %s with 2 (the killed attempt counts)", m.Envelope.ID, m.Envelope.Attempts, id)
	}
	b.Complete(context.Background(), m)
}
