package spool

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// The operator's actions (queue.Admin; edgerelay queue …). One runs at a
// time (adminMu). On a message that no worker holds, an action takes the
// message out of the due heap as a claim would (in memory only: nothing
// is written for it, so no attempt is counted) and ends with the path the
// worker's own end takes:
//   - Hold, Release, Bounce: Reschedule with the changed envelope (Hold,
//     Operator): the same crash-safe write as after a delivery attempt
//     (msg/<id>.env, or a journal message moved to msg/). Durable on
//     return; when the write fails, the error is returned and nothing
//     changes, in memory either (the hold in memory follows the disk).
//   - Delete: Complete. Durable on return.
//   - Retry: the due time, in memory only (now); after a restart the
//     message is due at its NextAttempt again, which loses nothing. Retry
//     of a held message releases it (durable), as Postfix's postsuper -r
//     requeues from the hold queue.
//
// A message a worker holds (a delivery in progress) cannot be written
// beside it: its Reschedule would overwrite what the action wrote. The
// action is recorded on the entry (adminMarks) and Reschedule writes it
// into the envelope it persists (immediate false); if that write fails,
// the marks stay on the entry (keepMarks) and the next claim hands the
// message out with them (withMarks). A Complete (delivered, or every
// recipient reported) makes it moot. Bounce and Delete on such a
// message mark it (Operator) and make it due at that Reschedule: the
// worker that leases it next acts (outbound/operator.go).
//
// The envelope file an action writes names the message file's instance
// and ends no claim (LeaseSeq stays the last one ended): a claim that a
// crash interrupted is still counted as one by the next claim.

var _ queue.Admin = (*Spool)(nil)

// adminMarks are operator actions asked while a worker held the message.
type adminMarks struct {
	hold     *bool  // set Envelope.Hold
	operator string // set Envelope.Operator
	retry    bool   // due at once
}

// applyMarks writes e's marks into env (the envelope Reschedule persists)
// and returns the due time (at, or now when an action asked for it) and
// the marks it took: if the write fails, keepMarks puts them back.
func (s *Spool) applyMarks(e *spoolEntry, env *queue.Envelope, at time.Time) (time.Time, *adminMarks) {
	s.mu.Lock()
	mk := e.marks
	e.marks = nil
	s.mu.Unlock()
	if mk == nil {
		return at, nil
	}
	mk.apply(env)
	if mk.retry {
		at = s.now()
	}
	return at, mk
}

// apply sets the envelope fields the marks stand for.
func (mk *adminMarks) apply(env *queue.Envelope) {
	if mk.hold != nil {
		env.Hold = *mk.hold
	}
	if mk.operator != "" {
		env.Operator = mk.operator
		env.Hold = false
	}
}

// keepMarks puts back on e the marks mk of a Reschedule whose write
// failed: they stay until an envelope holding them is written, and claim
// hands the message out with them (withMarks), so that the next worker
// carries out a delete or bounce the operator was told is recorded rather
// than deliver the envelope last written. Marks asked since win.
func (s *Spool) keepMarks(e *spoolEntry, mk *adminMarks) {
	if mk == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[e.id] != e {
		return
	}
	if n := e.marks; n != nil {
		if n.hold == nil {
			n.hold = mk.hold
		}
		if n.operator == "" {
			n.operator = mk.operator
		}
		n.retry = n.retry || mk.retry
		return
	}
	e.marks = mk
}

// withMarks applies the marks e still carries to env, a claim's envelope
// (a write that would have persisted them failed, or the claim came after
// them): the worker acts on them, and its Reschedule writes them.
func (s *Spool) withMarks(e *spoolEntry, env *queue.Envelope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.marks != nil {
		e.marks.apply(env)
	}
}

// take makes message id the operator's for one action. A message a worker
// holds is not taken: its entry is returned with worker true (s.mu is not
// held). Otherwise the message leaves the due heap and m is a lease of it
// for Reschedule or Complete, with its current envelope.
func (s *Spool) take(id string) (e *spoolEntry, m *queue.Message, worker bool, err error) {
	s.mu.Lock()
	e = s.entries[id]
	switch {
	case e == nil:
		s.mu.Unlock()
		return nil, nil, false, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	case e.leased:
		s.mu.Unlock()
		return e, nil, true, nil
	}
	if e.index >= 0 {
		heap.Remove(&s.due, e.index)
	}
	e.leased = true
	e.seq++
	seq, jm := e.seq, e.j
	s.mu.Unlock()

	var env *queue.Envelope
	var instance, leaseSeq uint64
	if jm != nil {
		env, err = s.readJournalEnvelope(id, jm)
	} else {
		var rec *spoolRecord
		if rec, err = s.readRecord(id); err == nil {
			env, instance, leaseSeq = rec.Envelope, rec.hdr.instance, rec.leaseSeq
		}
	}
	if err != nil {
		s.mu.Lock()
		s.release(e) // as it was, at its due time
		s.mu.Unlock()
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("%w: %s", queue.ErrNotFound, id)
		}
		return nil, nil, false, fmt.Errorf("spool: read %s: %w", id, err)
	}
	s.mu.Lock()
	if jm == nil {
		e.instance, e.diskSeq = instance, leaseSeq
	}
	s.mu.Unlock()
	return e, &queue.Message{Envelope: env, Token: &spoolLease{id: id, seq: seq}}, false, nil
}

// mark records marks on e for the Reschedule of the worker that holds it.
// If the lease ended meanwhile, it reports false: the caller tries again.
func (s *Spool) mark(e *spoolEntry, set func(*adminMarks)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !e.leased || s.entries[e.id] != e {
		return false
	}
	if e.marks == nil {
		e.marks = &adminMarks{}
	}
	set(e.marks)
	return true
}

// change runs one action on message id: mark when a worker holds it
// (immediate false), else edit the envelope and Reschedule it at the due
// time edit returns (immediate true).
func (s *Spool) change(ctx context.Context, id string, set func(*adminMarks), edit func(env *queue.Envelope, due time.Time) time.Time) (bool, error) {
	s.adminMu.Lock()
	defer s.adminMu.Unlock()
	for range 3 {
		e, m, worker, err := s.take(id)
		if err != nil {
			return false, err
		}
		if worker {
			if s.mark(e, set) {
				return false, nil
			}
			continue // the worker's lease just ended: take it now
		}
		s.mu.Lock()
		due := e.next
		if e.marks != nil {
			set(e.marks) // marks a failed write kept (keepMarks): this action wins
		}
		s.mu.Unlock()
		at := edit(m.Envelope, due)
		if err := s.Reschedule(ctx, m, at); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, fmt.Errorf("spool: %s: leased and released repeatedly; try again", id)
}

// Hold keeps message id without delivering it until Release (durable:
// Envelope.Hold). A held message is never leased.
func (s *Spool) Hold(ctx context.Context, id string) (bool, error) {
	t := true
	return s.change(ctx, id, func(mk *adminMarks) { mk.hold = &t },
		func(env *queue.Envelope, due time.Time) time.Time {
			env.Hold = true
			return due
		})
}

// Release ends the hold of message id and makes it due now. A message not
// on hold is left as it is.
func (s *Spool) Release(ctx context.Context, id string) (bool, error) {
	f := false
	if held, err := s.isHeld(id); err != nil || !held {
		s.mu.Lock()
		if e := s.entries[id]; e != nil && e.marks != nil && e.marks.hold != nil {
			e.marks.hold = &f // a hold asked during this lease
		}
		s.mu.Unlock()
		return err == nil, err
	}
	return s.change(ctx, id, func(mk *adminMarks) { mk.hold = &f; mk.retry = true },
		func(env *queue.Envelope, _ time.Time) time.Time {
			env.Hold = false
			return s.now()
		})
}

// Bounce marks message id OperatorBounce and makes it due now: the worker
// that leases it fails the pending recipients with 5.3.0 and reports them.
// A held message is released for it.
func (s *Spool) Bounce(ctx context.Context, id string) (bool, error) {
	return s.operator(ctx, id, queue.OperatorBounce)
}

func (s *Spool) operator(ctx context.Context, id, op string) (bool, error) {
	return s.change(ctx, id, func(mk *adminMarks) { mk.operator = op; mk.retry = true },
		func(env *queue.Envelope, _ time.Time) time.Time {
			env.Operator, env.Hold = op, false
			return s.now()
		})
}

// Delete removes message id, body included, without a report (Complete).
// A message a worker holds is marked OperatorDelete instead, and the
// worker that leases it next completes it (immediate false).
func (s *Spool) Delete(ctx context.Context, id string) (bool, error) {
	s.adminMu.Lock()
	for range 3 {
		e, m, worker, err := s.take(id)
		if err != nil {
			s.adminMu.Unlock()
			return false, err
		}
		if worker {
			if s.mark(e, func(mk *adminMarks) { mk.operator = queue.OperatorDelete; mk.retry = true }) {
				s.adminMu.Unlock()
				return false, nil
			}
			continue
		}
		err = s.Complete(ctx, m)
		s.adminMu.Unlock()
		if err != nil {
			return false, err
		}
		env := m.Envelope
		s.log.Warn("spool: message deleted by the operator", "id", id, "from", env.From,
			"rcpts", len(env.Recipients), "pending", len(env.Pending()))
		return true, nil
	}
	s.adminMu.Unlock()
	return false, fmt.Errorf("spool: %s: leased and released repeatedly; try again", id)
}

// Retry makes message id due now (in memory: see above). A held message
// is released (durably); one a worker holds is due at once when its
// Reschedule comes (immediate false).
func (s *Spool) Retry(ctx context.Context, id string) (bool, error) {
	s.mu.Lock()
	e := s.entries[id]
	switch {
	case e == nil:
		s.mu.Unlock()
		return false, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	case e.held:
		s.mu.Unlock()
		return s.Release(ctx, id)
	}
	if e.marks != nil && e.marks.hold != nil {
		f := false
		e.marks.hold = &f // a hold not written yet is released too
	}
	if e.leased {
		if e.marks == nil {
			e.marks = &adminMarks{}
		}
		e.marks.retry = true
		s.mu.Unlock()
		return false, nil
	}
	s.dueNowLocked(e)
	s.mu.Unlock()
	return true, nil
}

// RetryAll makes every message that is neither held nor being delivered
// due now, and returns how many were waiting.
func (s *Spool) RetryAll(ctx context.Context) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := s.now(), 0
	for _, e := range s.entries {
		if e.leased || e.held || e.index < 0 || !e.next.After(now) {
			continue
		}
		e.next = now
		heap.Fix(&s.due, e.index)
		n++
	}
	close(s.kick)
	s.kick = make(chan struct{})
	return n, nil
}

// dueNowLocked makes the entry e (not leased, not held) due now and wakes
// the Lease calls that wait. s.mu is held.
func (s *Spool) dueNowLocked(e *spoolEntry) {
	if now := s.now(); e.next.After(now) {
		e.next = now
	}
	if e.index >= 0 {
		heap.Fix(&s.due, e.index)
	} else {
		heap.Push(&s.due, e)
	}
	close(s.kick)
	s.kick = make(chan struct{})
}

// isHeld reports whether message id is on hold.
func (s *Spool) isHeld(id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		return false, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	return e.held, nil
}
