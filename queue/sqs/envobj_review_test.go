package sqs

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestWorstCaseCountsOperatorFields: an envelope accepted with the least
// room to spare stays storable at Reschedule once the worker has recorded
// everything it can, the issue 13 fields included: the route (a domain
// name, up to 255 bytes: RFC 1035 §2.3.4), the operator's hold and
// action. Else Reschedule fails with ErrEnvelopeTooLarge every time, the
// recorded state (delivered recipients) is lost at each redelivery and
// the message ends in quarantine after being sent again and again.
func TestWorstCaseCountsOperatorFields(t *testing.T) {
	// One recipient whose ORCPT is all characters JSON escapes (6 bytes
	// each, as the worst case counts them), so that the worst case is
	// within a few bytes of what the worker can really make of it.
	env := wireEnvelope(1, 0)
	env.Recipients[0].Addr = "&@a.b"
	env.Recipients[0].ORCPT = "rfc822;" + strings.Repeat("&", maxEnvelopeObject/6-2000)
	env.User = "u"
	w1, _ := worstCaseSize(env)
	env.User = strings.Repeat("u", 1+maxEnvelopeObject-w1)
	if err := checkWorstCase(env); err != nil {
		t.Fatalf("envelope built to fit exactly refused: %v", err)
	}
	if w, _ := worstCaseSize(env); w != maxEnvelopeObject {
		t.Fatalf("worst case %d, want the limit %d", w, maxEnvelopeObject)
	}

	full := env.Clone()
	for i := range full.Recipients {
		r := &full.Recipients[i]
		r.Status, r.Attempts, r.LastAttempt = queue.StatusDelivered, math.MaxInt32, worstTime
		r.Reply = &queue.Reply{Code: 999, Enhanced: "5.999.999", Lines: []string{strings.Repeat("\x01", queue.MaxReplyText)}}
		r.RemoteMTA = strings.Repeat("\x01", queue.MaxRemoteMTA)
		r.Reported, r.DelayReported = true, true
	}
	full.Size, full.Attempts, full.NextAttempt, full.DelayWarned = math.MaxInt64, math.MaxInt32, worstTime, true
	full.Route = strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	full.Hold, full.Operator = true, queue.OperatorBounce
	if _, err := encodeEnvelopeObject(full); errors.Is(err, ErrEnvelopeTooLarge) {
		t.Fatalf("an envelope accepted at enqueue cannot be stored at Reschedule once it holds a route and the operator's mark: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
}

// FuzzWorstCaseBound: whatever an accepted envelope holds, once the
// worker has recorded the most it can (every recipient failed with a
// reply of MaxReplyText bytes and a remote MTA of MaxRemoteMTA, any
// bytes; a route; the operator's mark), its stored form (marshalSQS, as
// in an SQS message or an envelope object) is within the worst case
// computed at Enqueue.
func FuzzWorstCaseBound(f *testing.F) {
	f.Add("alice@example.com", "bob@example.net", "rfc822;bob@example.net", "user", "env", "msg@id", "example.com", "reply", "mx [192.0.2.1]", uint8(3))
	f.Add("\uffff\ufffe", "&<>\"\\", "\U0001F600", "\u2028", "\ud7ff", "\ue000", "xn--tda.example", "\x01\x00\xff", "\x7f", uint8(1))
	f.Add(strings.Repeat("\uffff", 300), "a@b", "", strings.Repeat("\ufffe", 1000), "", strings.Repeat("<", 900), "", "", "", uint8(0))
	f.Fuzz(func(t *testing.T, from, addr, orcpt, user, envid, msgid, route, reply, mta string, n uint8) {
		env := &queue.Envelope{ID: "06H2FSST3XFMJ0DAC53T", From: from, User: user, EnvID: envid, MessageID: msgid, RET: "HDRS",
			Arrival: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), SMTPUTF8: true, Body8Bit: true}
		for range int(n%8) + 1 {
			env.Recipients = append(env.Recipients, queue.Recipient{Addr: addr, ORCPT: orcpt, Notify: []string{queue.NotifySuccess, queue.NotifyDelay}, Status: queue.StatusPending})
		}
		worst, err := worstCaseSize(env)
		if err != nil {
			return
		}
		full := env.Clone()
		for i := range full.Recipients {
			r := &full.Recipients[i]
			r.Status, r.Attempts, r.LastAttempt = queue.StatusFailed, math.MaxInt32, worstTime
			// Padded with characters JSON escapes: the largest the worker
			// records, so that little slack hides a miscount elsewhere.
			r.Reply = &queue.Reply{Code: 554, Enhanced: "5.999.999", Lines: []string{truncUTF8(reply+strings.Repeat("\x01", queue.MaxReplyText), queue.MaxReplyText)}}
			r.RemoteMTA = truncUTF8(mta+strings.Repeat("\x01", queue.MaxRemoteMTA), queue.MaxRemoteMTA)
			r.Reported, r.DelayReported = true, true
		}
		full.Size, full.Attempts, full.NextAttempt, full.DelayWarned = math.MaxInt64, math.MaxInt32, worstTime, true
		full.Route, full.Hold, full.Operator = truncUTF8(route, maxRouteLen), true, queue.OperatorDelete
		data, err := marshalSQS(full)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > worst {
			t.Fatalf("stored form %d bytes, over the worst case %d computed at enqueue", len(data), worst)
		}
	})
}
