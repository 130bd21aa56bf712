package sqs_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// TestSQSCloseDuringEnqueue: Close waits for the operator's copies that
// Enqueue left running, and an Enqueue that was under way when Close ran
// leaves none running after it returns: before, its copy was started
// after Close's wait (a write outliving Close, and a WaitGroup Add racing
// its Wait).
func TestSQSCloseDuringEnqueue(t *testing.T) {
	t.Parallel()
	var viewsInFlight atomic.Int32
	var slowBody atomic.Bool
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut {
				next.ServeHTTP(w, r)
				return
			}
			switch {
			case strings.HasSuffix(r.URL.Path, ".view.json"):
				viewsInFlight.Add(1)
				defer viewsInFlight.Add(-1)
				time.Sleep(300 * time.Millisecond)
			case strings.HasSuffix(r.URL.Path, ".eml") && slowBody.Load():
				time.Sleep(time.Second)
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, nil)
	mustEnqueueSQS(t, q, sqsEnvelope("a@example.net"), "a") // its copy still being written
	slowBody.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := q.Enqueue(context.Background(), sqsEnvelope("b@example.net"), strings.NewReader("b"))
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // B is storing its body
	q.Close()
	if n := viewsInFlight.Load(); n != 0 {
		t.Errorf("%d copies still being written when Close returned", n)
	}
	if err := <-done; err != nil {
		t.Fatalf("Enqueue under way at Close: %v", err)
	}
	if n := viewsInFlight.Load(); n != 0 {
		t.Errorf("%d copies still being written after Close and the last Enqueue returned", n)
	}
}

// TestSQSCloseDuringAccept: a Lease whose receive was answered before
// Close, and whose accept (the S3 reads) ends after it, returns
// ErrClosed, as Close promises for Lease calls in progress, and gives the
// message back: before, it handed out a lease whose heartbeat could not
// run (the queue's context was cancelled), started after Close's wait.
func TestSQSCloseDuringAccept(t *testing.T) {
	t.Parallel()
	var slowed atomic.Bool
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".op.json") && slowed.CompareAndSwap(false, true) {
				time.Sleep(600 * time.Millisecond)
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, nil)
	id := mustEnqueueSQS(t, q, sqsEnvelope("a@example.net"), "a")
	type leased struct {
		m   *queue.Message
		err error
	}
	done := make(chan leased, 1)
	go func() {
		m, err := q.Lease(sqsCtx(t, 10*time.Second))
		done <- leased{m, err}
	}()
	for !slowed.Load() {
		time.Sleep(10 * time.Millisecond)
	}
	q.Close()
	got := <-done
	if !errors.Is(got.err, queue.ErrClosed) {
		t.Fatalf("Lease in accept during Close = %v, %v; want ErrClosed", got.m, got.err)
	}
	q2 := f.open(t, nil)
	if m := sqsLease(t, q2); m.Envelope.ID != id {
		t.Fatalf("leased %s, want %s given back", m.Envelope.ID, id)
	}
}
