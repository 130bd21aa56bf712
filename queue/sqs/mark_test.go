package sqs

import (
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// TestMergeMark: the mark alone decides Hold and Operator; an action, or
// a retry asked after the copy was sent, hands the message out early; a
// held message is not forced by a retry asked before the hold.
func TestMergeMark(t *testing.T) {
	sent := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		wire      queue.Envelope
		mk        *markObject
		hold      bool
		op        string
		wantForce bool
	}{
		{"no mark clears the copy's fields", queue.Envelope{Hold: true, Operator: "delete"}, nil, false, "", false},
		{"hold", queue.Envelope{}, &markObject{Hold: true}, true, "", false},
		{"bounce forces", queue.Envelope{}, &markObject{Operator: "bounce"}, false, "bounce", true},
		{"unknown action ignored", queue.Envelope{}, &markObject{Operator: "explode"}, false, "", false},
		{"retry after send forces", queue.Envelope{}, &markObject{RetryAt: sent.Add(time.Minute)}, false, "", true},
		{"retry before send does not", queue.Envelope{}, &markObject{RetryAt: sent.Add(-time.Minute)}, false, "", false},
		{"retry of held does not", queue.Envelope{}, &markObject{Hold: true, RetryAt: sent.Add(time.Minute)}, true, "", false},
	} {
		env := c.wire
		force := mergeMark(&env, c.mk, sent)
		if env.Hold != c.hold || env.Operator != c.op || force != c.wantForce {
			t.Errorf("%s: hold=%v op=%q force=%v, want %v %q %v", c.name, env.Hold, env.Operator, force, c.hold, c.op, c.wantForce)
		}
	}
}
