package sqs_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
)

// TestSQSPresetIDRace (issue 8 item 29d): two Enqueues of one report ID
// race (two workers holding one message after its visibility ran out both
// queue its report), and the SQS send of one of them fails. The stand-in
// holds the body uploads until both have arrived, so each Enqueue looked
// for an earlier copy before either wrote one. The Enqueue that succeeded
// must leave a deliverable message: the failed one must not delete the
// body the other's envelope refers to.
func TestSQSPresetIDRace(t *testing.T) {
	t.Parallel()
	var puts sync.WaitGroup
	puts.Add(2)
	var sends atomic.Int32
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/NDR-RACE.eml") {
				puts.Done()
				waitGroupOrTimeout(&puts, 5*time.Second)
			}
			if awstest.SQSAction(r) == "SendMessage" && sends.Add(1) == 1 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, `{"__type":"com.amazonaws.sqs#InternalError","message":"injected"}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, nil)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := sqsEnvelope("alice@example.com")
			env.ID, env.From, env.Bounce = "NDR-RACE", "", true
			_, errs[i] = q.Enqueue(sqsCtx(t, 20*time.Second), env, strings.NewReader("the report"))
		}()
	}
	wg.Wait()
	if (errs[0] == nil) == (errs[1] == nil) {
		t.Fatalf("Enqueue results %v and %v: want exactly one to fail (the first send was failed)", errs[0], errs[1])
	}
	m, err := q.Lease(sqsCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("Lease after one Enqueue succeeded: %v (the report was lost)\n%s", err, f.logs.String())
	}
	if got := string(sqsBody(t, q, m)); m.Envelope.ID != "NDR-RACE" || got != "the report" {
		t.Fatalf("leased %s with body %q", m.Envelope.ID, got)
	}
	if err := q.Complete(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if m, err := q.Lease(sqsCtx(t, 2500*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second copy was leased: %v, %v", m, err)
	}
}

func waitGroupOrTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// TestSQSCheckConditionalWrites: Check refuses, at start, an S3 store that
// does not support conditional writes, which preset-ID enqueues rely on.
func TestSQSCheckConditionalWrites(t *testing.T) {
	t.Parallel()
	front := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && r.Header.Get("If-None-Match") != "" {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusNotImplemented)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	f := newSQSFixture(t, front, nil)
	q := f.open(t, nil)
	if err := q.Check(sqsCtx(t, 10*time.Second)); err == nil || !strings.Contains(err.Error(), "conditional writes") {
		t.Fatalf("Check against a store without conditional writes: %v", err)
	}
}
