package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

type slowSink struct{ delay time.Duration }

func (s *slowSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &slowSession{s}, nil }

type slowSession struct{ s *slowSink }

func (ss *slowSession) Mail(string, *smtp.MailOptions) error { return nil }
func (ss *slowSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (ss *slowSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	time.Sleep(ss.s.delay)
	return nil
}
func (ss *slowSession) Reset()        {}
func (ss *slowSession) Logout() error { return nil }

// TestLambdaFinishAfterDeliveryDeadline: a delivery that ends shortly
// before the delivery deadline (the invocation's less lambdaReserve) is
// recorded: its Complete, running past that deadline, is not cut short by
// it (outbound's finishContext gives it finishGrace, within the reserve).
// Before, Complete failed with "context deadline exceeded", the record
// was reported failed and the delivered message stayed queued, to be
// delivered again.
func TestLambdaFinishAfterDeliveryDeadline(t *testing.T) {
	var slow atomic.Bool
	slowDeletes := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Load() && (r.Method == http.MethodDelete || awstest.SQSAction(r) == "DeleteMessage") {
				time.Sleep(1500 * time.Millisecond)
			}
			next.ServeHTTP(w, r)
		})
	}
	f := newLambdaFixture(t, slowDeletes)
	slow.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ss := smtp.NewServer(&slowSink{delay: 500 * time.Millisecond})
	ss.Domain = "slow.test"
	go ss.Serve(ln)
	t.Cleanup(func() { ss.Close() })
	t.Setenv("RELAY_GATEWAY", ln.Addr().String())
	h := f.handler(t)
	h.minStart = 0
	slow.Store(false)
	id := f.enqueue(t, "ok@example.net")
	ev := f.receive(t, 1)
	slow.Store(true)
	// Deliveries until 2 s; the delivery ends at about 0.6 s, and
	// Complete's deletes take 1.5 s each.
	ctx, cancel := context.WithTimeout(context.Background(), h.reserve+2*time.Second)
	defer cancel()
	resp, _ := h.handle(ctx, ev)
	if len(resp.BatchItemFailures) != 0 {
		t.Errorf("BatchItemFailures %v, want none\n%s", resp.BatchItemFailures, f.logs.String())
	}
	if _, err := f.q.Show(context.Background(), id); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("delivered message still queued (%v): it will be delivered again\n%s", err, grep(f.logs.String(), "complete"))
	}
}

func grep(s, w string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, w) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
