// Package queuetest is the contract test suite that every queue.Queue
// backend must pass (the spool, SQS + S3). It checks the rules written on
// queue.Queue through the interface only: durable Enqueue with a streamed
// body, exclusive Lease with the claim counted, Reschedule keeping
// per-recipient state, Complete removing the body, at-least-once after a
// restart, and the context and Close behaviour of Lease.
//
// A backend's test calls Run (or RunConfig) with an Opener:
//
//	func TestContract(t *testing.T) {
//		queuetest.Run(t, func(t *testing.T) (queue.Queue, func() queue.Queue) {
//			dir := t.TempDir()
//			q := open(t, dir)
//			return q, func() queue.Queue { q.Close(); return open(t, dir) }
//		})
//	}
package queuetest

import (
	"context"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// Opener opens a new, empty queue for one test case and registers the
// closing of whatever it opens with t.Cleanup (the suite closes q itself only
// in the Close case, so Close must tolerate a second call).
//
// reopen simulates a restart of the process: the leases held through q end
// as they would when the process dies (without Reschedule or Complete), and
// a new Queue on the same storage is returned. A backend whose leases end by
// timeout (SQS visibility) may wait for that in reopen, or configure a short
// timeout for the test.
type Opener func(t *testing.T) (q queue.Queue, reopen func() queue.Queue)

// Config tunes the suite for a backend.
type Config struct {
	Open Opener
	// BodySize is the size of the large body used to check streaming and
	// byte-exact round trips. Zero means 3 MiB.
	BodySize int64
	// QuietWait is how long a Lease must find nothing before the suite
	// concludes that no message is due. Zero means 300ms. It is the lower
	// bound of a negative check, never an assertion about speed.
	QuietWait time.Duration
	// DueWait is how long the suite waits for a message that must be due
	// (a generous upper bound). Zero means 10s.
	DueWait time.Duration
}

// Run runs the contract suite with the default Config.
func Run(t *testing.T, open Opener) {
	t.Helper()
	RunConfig(t, Config{Open: open})
}

// RunConfig runs the contract suite; each case is a subtest with a fresh
// queue from c.Open.
func RunConfig(t *testing.T, c Config) {
	t.Helper()
	if c.Open == nil {
		t.Fatal("queuetest: Config.Open is nil")
	}
	if c.BodySize <= 0 {
		c.BodySize = 3 << 20
	}
	if c.QuietWait <= 0 {
		c.QuietWait = 300 * time.Millisecond
	}
	if c.DueWait <= 0 {
		c.DueWait = 10 * time.Second
	}
	s := &suite{Config: c}
	cases := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"EnqueueLeaseRoundTrip", s.testRoundTrip},
		{"LeaseHidesMessage", s.testLeaseHides},
		{"EachMessageLeasedOnce", s.testLeasedOnce},
		{"RescheduleFutureNotDue", s.testRescheduleFuture},
		{"RescheduleKeepsRecipientState", s.testReschedulePartial},
		{"CompleteRemoves", s.testComplete},
		{"CrashMidDeliveryIsDueAgain", s.testCrash},
		{"LeaseRespectsContext", s.testLeaseContext},
		{"CloseUnblocksLease", s.testClose},
		{"FailedBodyLeavesNothing", s.testFailedBody},
		{"RefusesInvalidEnvelope", s.testInvalidEnvelope},
	}
	for _, tc := range cases {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct{ Config }

// ctx returns a context for one step that must succeed.
func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), s.DueWait)
	t.Cleanup(cancel)
	return ctx
}
