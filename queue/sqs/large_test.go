package sqs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestSQSLargeEnvelopeReschedule (issue 8 item 3): envelopes of 700 and
// 2,000 recipients are accepted, and after an attempt that gives every
// recipient a reply of queue.MaxReplyText bytes and a remote MTA of
// queue.MaxRemoteMTA bytes (far over 256 KiB in all), Reschedule succeeds
// and the whole per-recipient state comes back on the next lease, twice in
// a row; Complete leaves no object behind.
func TestSQSLargeEnvelopeReschedule(t *testing.T) {
	t.Parallel()
	for _, n := range []int{700, 2000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			f := newSQSFixture(t, nil, nil)
			q := f.open(t, nil)
			env := sqsEnvelope()
			for i := range n {
				env.Recipients = append(env.Recipients, queue.Recipient{Addr: fmt.Sprintf("rcpt%04d@example.net", i), Status: queue.StatusPending})
			}
			mustEnqueueSQS(t, q, env, "Subject: many\r\n\r\nhi\r\n")
			m := sqsLease(t, q)
			for round := 1; round <= 2; round++ {
				now := time.Now().UTC().Truncate(time.Second)
				for i := range m.Envelope.Recipients {
					r := &m.Envelope.Recipients[i]
					r.Attempts, r.LastAttempt = round, now
					r.RemoteMTA = strings.Repeat("m", queue.MaxRemoteMTA)
					r.Reply = &queue.Reply{Code: 451, Enhanced: "4.7.1", Lines: []string{fmt.Sprintf("%d/%d ", round, i) + strings.Repeat("y", queue.MaxReplyText-12)}}
					if i%3 == 0 {
						r.Status = queue.StatusDelivered
					}
				}
				want := m.Envelope.Clone()
				if err := q.Reschedule(context.Background(), m, time.Now()); err != nil {
					t.Fatalf("round %d: Reschedule of %d recipients with full replies: %v", round, n, err)
				}
				m = sqsLease(t, q)
				got := m.Envelope
				if len(got.Recipients) != n || got.Attempts != round+1 {
					t.Fatalf("round %d: leased %d recipients, %d attempts; want %d, %d", round, len(got.Recipients), got.Attempts, n, round+1)
				}
				for i := range want.Recipients {
					w, g := want.Recipients[i], got.Recipients[i]
					if g.Status != w.Status || g.Attempts != w.Attempts || !g.LastAttempt.Equal(w.LastAttempt) || g.RemoteMTA != w.RemoteMTA ||
						g.Reply == nil || g.Reply.String() != w.Reply.String() {
						t.Fatalf("round %d: recipient %d came back as %+v, want %+v", round, i, g, w)
					}
				}
			}
			if got := string(sqsBody(t, q, m)); got != "Subject: many\r\n\r\nhi\r\n" {
				t.Fatalf("body = %q", got)
			}
			if err := q.Complete(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			sqsNothingDue(t, q, 2500*time.Millisecond, "after Complete")
			if k := f.keys(t); len(k) != 0 {
				t.Errorf("objects left after Complete: %v", k)
			}
		})
	}
}

// TestSQSLargeEnvelopeStaleCopy: a duplicate of a message whose envelope is
// an S3 object, received after the message was rescheduled (which replaced
// that object), is dropped as stale and deleted; the current copy is
// delivered with its current state.
func TestSQSLargeEnvelopeStaleCopy(t *testing.T) {
	t.Parallel()
	f := newSQSFixture(t, nil, nil)
	q := f.open(t, nil)
	env := sqsEnvelope()
	for i := range 700 {
		env.Recipients = append(env.Recipients, queue.Recipient{Addr: fmt.Sprintf("rcpt%04d@example.net", i), Status: queue.StatusPending})
	}
	mustEnqueueSQS(t, q, env, "x")
	m := sqsLease(t, q)
	setReplies := func(m *queue.Message, text string) {
		for i := range m.Envelope.Recipients {
			m.Envelope.Recipients[i].Reply = &queue.Reply{Code: 451, Lines: []string{text + strings.Repeat("z", 500)}}
		}
	}
	setReplies(m, "first")
	if err := q.Reschedule(context.Background(), m, time.Now()); err != nil {
		t.Fatal(err)
	}
	raw := f.rawReceive(t, 60)
	if raw == nil || !strings.Contains(*raw.Body, `"env_key"`) {
		t.Fatalf("the rescheduled message does not point to an envelope object: %v", raw)
	}
	f.rawRelease(t, raw)
	f.rawSend(t, *raw.Body) // a duplicate of the pointer message
	m = sqsLease(t, q)
	setReplies(m, "second")
	if err := q.Reschedule(context.Background(), m, time.Now()); err != nil {
		t.Fatal(err)
	}
	m = sqsLease(t, q)
	if got := m.Envelope.Recipients[0].Reply.Lines[0]; !strings.HasPrefix(got, "second") {
		t.Fatalf("leased a copy with the old state %q", got[:10])
	}
	if err := q.Complete(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	sqsNothingDue(t, q, 2500*time.Millisecond, "after Complete")
	if !strings.Contains(f.logs.String(), "stale copy") {
		t.Errorf("the stale copy was not dropped:\n%s", f.logs.String())
	}
	if k := f.keys(t); len(k) != 0 {
		t.Errorf("objects left: %v", k)
	}
}
