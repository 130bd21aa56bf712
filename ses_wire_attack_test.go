package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestAttackSESLostResponseSentAgain pins what a lost SendEmail response
// costs: SendEmail has no idempotency token, so when SES read the whole
// request (and may have sent the message) and the connection dropped
// before its answer, the SDK's retry sends it again within the call, and
// the recipient may get it twice. That is at-least-once, as the queue's
// own retry after an unanswered call would be (README, "Amazon SES"); it
// is bounded: at most sesMaxAttempts requests per call, however many
// responses are lost.
func TestAttackSESLostResponseSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lost     int64 // responses dropped before one is answered
		requests int64
		ok       bool
	}{
		{"one response lost", 1, 2, true},
		{"every response lost", 100, sesMaxAttempts, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var n atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body) // the whole request reached "SES"
				if n.Add(1) <= tc.lost {
					conn, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						conn.Close()
					}
					return
				}
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"MessageId":"0100-test"}`)
			}))
			defer srv.Close()
			sesEnv(t, srv.URL, "us-east-1")
			c, err := newSESClient(context.Background(), &Config{}, "")
			if err != nil {
				t.Fatal(err)
			}
			err = sendOne(t, c)
			if (err == nil) != tc.ok {
				t.Errorf("SendEmail: %v", err)
			}
			if got := n.Load(); got != tc.requests {
				t.Errorf("%d complete SendEmail requests, want %d", got, tc.requests)
			}
		})
	}
}
