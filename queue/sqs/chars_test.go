package sqs_test

import (
	"context"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// TestSQSRescheduleNonXMLCharacters (issue 8 item 24): a reply holding
// characters that SQS refuses raw (U+FFFE, U+FFFF), recorded for a
// recipient, must not make Reschedule fail: the stand-in enforces the
// documented SQS character rule, and the state round-trips exactly.
func TestSQSRescheduleNonXMLCharacters(t *testing.T) {
	t.Parallel()
	front := awstest.Start(t).Front(t, awstest.StrictSQSText)
	f := newSQSFixture(t, front, nil)
	q := f.open(t, nil)
	env := sqsEnvelope("bob@example.net", "carol@example.net")
	env.EnvID = "env\uFFFDid"
	mustEnqueueSQS(t, q, env, "hi")
	m := sqsLease(t, q)
	weird := "mailbox \uFFFE busy \uFFFF try later \U0010FFFF"
	m.Envelope.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.2.1", Lines: []string{weird, "second\uFFFE"}}
	m.Envelope.Recipients[0].RemoteMTA = "mx\uFFFF.example.net [192.0.2.1]"
	if err := q.Reschedule(context.Background(), m, m.Envelope.Arrival); err != nil {
		t.Fatalf("Reschedule with U+FFFE/U+FFFF in a reply: %v", err)
	}
	m = sqsLease(t, q)
	r := m.Envelope.Recipients[0]
	if r.Reply == nil || strings.Join(r.Reply.Lines, "|") != weird+"|second\uFFFE" || r.RemoteMTA != "mx\uFFFF.example.net [192.0.2.1]" || m.Envelope.EnvID != env.EnvID {
		t.Fatalf("state did not round-trip: %+v %q", r.Reply, r.RemoteMTA)
	}
	if err := q.Complete(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}
