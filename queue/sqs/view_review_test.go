package sqs_test

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// TestSQSLateEnqueueCopy: the operator's copy that Enqueue does not wait
// for may land after another process received the message and wrote a
// newer copy at its Reschedule; it must not replace that one (queue show
// would tell the state before the attempt: no reply, no attempt). The
// enqueue's copy is written only where there is none.
func TestSQSLateEnqueueCopy(t *testing.T) {
	t.Parallel()
	var slowed atomic.Bool
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".view.json") && slowed.CompareAndSwap(false, true) {
				time.Sleep(time.Second)
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	front1 := f.open(t, nil) // the front end that accepted the message
	worker := f.open(t, nil) // another process
	ctx := sqsCtx(t, 30*time.Second)
	id := mustEnqueueSQS(t, front1, sqsEnvelope("w@example.net"), "w")
	m := sqsLease(t, worker)
	m.Envelope.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{"try later"}}
	m.Envelope.Recipients[0].Attempts = 1
	if err := worker.Reschedule(ctx, m, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	front1.Close() // waits for the enqueue's copy
	if !slowed.Load() {
		t.Fatal("the enqueue's copy was not slowed")
	}
	e, err := worker.Show(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r := e.Envelope.Recipients[0]; r.Reply == nil || r.Attempts != 1 {
		t.Errorf("queue show tells %+v, want the reschedule's copy (the 451, one attempt)", r)
	}
}
