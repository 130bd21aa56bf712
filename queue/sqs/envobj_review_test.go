package sqs

import (
	"errors"
	"math"
	"strings"
	"testing"

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
