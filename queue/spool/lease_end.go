package spool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// Reschedule persists m.Envelope (per-recipient state included) with
// NextAttempt set to at, and ends the lease: the message is due again at
// at. If the envelope cannot be written, the lease ends all the same and
// the message is due at at with the envelope last written (and the claim
// unfinished), so it is retried rather than lost; the error is returned.
func (s *Spool) Reschedule(ctx context.Context, m *queue.Message, at time.Time) error {
	if m == nil || m.Envelope == nil {
		return errors.New("spool: reschedule: nil message or envelope")
	}
	e, err := s.endLease(m)
	if err != nil {
		return err
	}
	if at.IsZero() {
		at = s.now()
	}
	s.flushEnds()
	env := m.Envelope.Clone()
	env.ID = e.id
	at, marks := s.applyMarks(e, env, at) // operator actions asked during the lease
	env.NextAttempt = at
	// The claim ends (the envelope file names it: its lease slot no longer
	// counts), and so does the crash count: a delivery that ended shows
	// the message does not kill the process, and MaxDeliveryCrashes counts
	// crashed deliveries in a row (as the SQS backend, whose Reschedule
	// sends a new message), lest crashes or shutdowns spread over a
	// message's life quarantine it.
	s.mu.Lock()
	instance, leaseSeq := e.instance, e.diskSeq
	s.mu.Unlock()
	var werr error
	if jm := s.journalOf(e.id); jm != nil {
		werr = s.rescheduleJournal(ctx, e, jm, env)
	} else {
		werr = s.writeEnvelope(env, instance, leaseSeq)
	}

	if werr != nil {
		s.keepMarks(e, marks)
	}
	s.mu.Lock()
	e.next = at
	if werr == nil {
		// The hold in memory follows the disk: a hold whose write failed
		// is not one the next start would keep; kept as a mark, it goes
		// out with the next claim and that worker writes it.
		e.held = env.Hold
	}
	s.release(e)
	s.mu.Unlock()
	if werr != nil {
		return fmt.Errorf("spool: reschedule %s: %w", e.id, werr)
	}
	return nil
}

// Complete removes m from the spool: the message file first (the commit
// point: without it the message no longer exists), then its envelope file
// if there is one, then the directory is fsync'd (shared with concurrent
// writers). If the message file cannot be removed, the message stays
// queued and is due again after a minute.
//
// The message file goes first so that a crash can never leave it without
// the envelope file that superseded its embedded envelope (the message
// would come back with the recipients' state of its Enqueue); an envelope
// file left alone is a leftover that Open removes, and it is ignored
// meanwhile (it names the instance of the removed message file).
func (s *Spool) Complete(ctx context.Context, m *queue.Message) error {
	e, err := s.endLease(m)
	if err != nil {
		return err
	}
	s.mu.Lock()
	jm, p := e.j, e.end
	if p != nil {
		p.complete = e
	}
	s.mu.Unlock()
	s.flushEnds()
	if jm != nil {
		return s.completeJournal(e, jm)
	}
	if p != nil {
		// Moved out of the journal, its END pending: its file may go only
		// once that END is synced (else the MSG would come back after a
		// restart). flushEnds finished the Complete if it wrote the END;
		// if not, the message was delivered all the same and stays out of
		// the due heap (no duplicate delivery every minute) until a later
		// flushEnds writes the END and removes it (errEndPending).
		// A flushEnds that wrote it (this one, or another that took p
		// before) finishes the Complete under endMu: wait for it, and
		// return its outcome (the file may have stayed: due again).
		s.endMu.Lock()
		s.mu.Lock()
		pending, err := e.end == p, p.err
		s.mu.Unlock()
		s.endMu.Unlock()
		if pending {
			return fmt.Errorf("spool: complete %s: %w", e.id, errEndPending)
		}
		return err
	}
	return s.completeFile(e)
}

// completeFile is Complete for a message in msg/ (e leased, its lease
// token ended).
func (s *Spool) completeFile(e *spoolEntry) error {
	// A message rescheduled before has an envelope file that supersedes the
	// one in its message file. The message file goes first, and its removal
	// is made durable before the envelope file's, so that no file system
	// that reorders the two can bring the message back after a crash with
	// the recipients' state of its Enqueue (duplicate deliveries, reports).
	_, serr := s.fs.Lstat(s.envelopePath(e.id))
	hasEnv := serr == nil
	if err := safefile.RemoveIfExists(s.fs, s.msgPath(e.id)); err != nil {
		s.mu.Lock()
		e.next = s.now().Add(spoolErrorRetry)
		s.release(e)
		s.mu.Unlock()
		return fmt.Errorf("spool: complete %s: %w", e.id, err)
	}
	// Until the envelope file is gone, an Enqueue of the same ID (a report
	// queued again) waits as for another Enqueue.
	removing := make(chan struct{})
	s.mu.Lock()
	delete(s.entries, e.id)
	s.enqueuing[e.id] = removing
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.enqueuing, e.id)
		close(removing)
		s.mu.Unlock()
	}()
	if hasEnv {
		if err := s.dirs.Sync(s.msgDir); err != nil {
			// The envelope file stays: after a crash it is either with its
			// message file again (due, with its recipients' state) or an
			// orphan that the next Open removes.
			return fmt.Errorf("spool: complete %s: %w", e.id, err)
		}
	}
	if err := safefile.RemoveIfExists(s.fs, s.envelopePath(e.id)); err != nil {
		// Harmless: it names this instance only, and the next Open removes
		// it as a leftover.
		s.log.Warn("spool: cannot remove envelope file of completed message", "id", e.id, "err", err)
	}
	if err := s.dirs.Sync(s.msgDir); err != nil {
		return fmt.Errorf("spool: complete %s: %w", e.id, err)
	}
	return nil
}
