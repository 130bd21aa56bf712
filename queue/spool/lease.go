package spool

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// errLeaseLost is returned by Reschedule and Complete for a Message whose
// lease has already ended (it was rescheduled or completed before).
var errLeaseLost = errors.New("spool: message is not leased (lease already ended)")

// spoolEntry is the in-memory index record of one committed message.
type spoolEntry struct {
	id     string
	next   time.Time // due time, see dueAt
	leased bool
	// crashed: Open found a claim of this message that never ended;
	// the next claim counts it in spoolRecord.Crashes.
	crashed bool
	seq     uint64 // lease generation; a Token is valid while it matches
	index   int    // position in the due heap, -1 when not in it
	// Of the current claim (set by claim, for Reschedule): the instance
	// of the message file and the sequence of the claim's lease slot.
	instance uint64
	diskSeq  uint64
	// j is set for a message whose state is in the journal: until it is
	// moved to msg/ or the END of its MSG record is synced
	// (journal_enqueue.go).
	j *jmsg
	// end is the pending END of the MSG record of a message moved to msg/
	// (journal_lease.go): its Complete waits for it.
	end *pendingEnd
}

// release puts e back among the messages that can be leased and wakes the
// Lease calls that wait. s.mu is held.
func (s *Spool) release(e *spoolEntry) {
	e.leased = false
	heap.Push(&s.due, e)
	close(s.kick)
	s.kick = make(chan struct{})
}

// Lease blocks until a message is due and not leased, then claims it: a
// lease record with Attempts incremented and the lease deadline is written
// in place in the message file and fdatasync'd before Lease returns (claim
// before deliver), so that a crash during delivery is counted.
// Due messages are handed out oldest first, by NextAttempt (by Arrival for
// a message never rescheduled).
//
// Lease returns ctx.Err() when ctx is done and ErrClosed once the spool is
// closed. An error writing the claim is returned as is and the message is
// due again after a minute (spoolErrorRetry), so that it does not stand
// before the others; the caller should pause before it leases again. A full file system
// is the exception: the message is handed out with its lease in memory
// only, so that deliveries can free space.
func (s *Spool) Lease(ctx context.Context) (*queue.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, wait, kick, err := s.nextDue()
		if err != nil {
			return nil, err
		}
		if e != nil {
			m, err := s.claim(e)
			if m == nil && err == nil {
				continue // the message was unreadable and is gone; next one
			}
			return m, err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-s.done:
			timer.Stop()
			return nil, queue.ErrClosed
		case <-kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// nextDue takes the first due message off the heap and marks it leased, or
// says how long to wait and which channel announces a change.
func (s *Spool) nextDue() (e *spoolEntry, wait time.Duration, kick chan struct{}, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, nil, queue.ErrClosed
	}
	wait = s.poll
	if len(s.due) > 0 {
		top := s.due[0]
		until := top.next.Sub(s.now())
		if until <= 0 {
			heap.Pop(&s.due)
			top.leased = true
			top.seq++
			return top, 0, nil, nil
		}
		wait = min(wait, until)
	}
	return nil, wait, s.kick, nil
}

// claim reads e's files, writes the claim in place in the message file
// (the next lease slot: Attempts incremented, the lease deadline and, when
// Open found an unfinished earlier claim, the crash count) and fdatasyncs
// it before the message is handed out (claim before deliver). No file is
// created. It returns (nil, nil) when the message was set aside instead
// (unusable envelope, too many crashed deliveries, or vanished) and left
// the index.
func (s *Spool) claim(e *spoolEntry) (*queue.Message, error) {
	s.flushEnds()
	if jm := s.journalOf(e.id); jm != nil {
		return s.claimJournal(e, jm)
	}
	f, err := s.fs.OpenRW(s.msgPath(e.id))
	var rec *spoolRecord
	if err == nil {
		rec, err = s.readRecordFrom(e.id, f)
		if err != nil {
			f.Close()
		}
	}
	switch {
	case errors.Is(err, errCorruptEnvelope):
		return nil, s.setAside(e, err, false)
	case errors.Is(err, fs.ErrNotExist):
		s.log.Error("spool: message file vanished from the spool", "id", e.id, "err", err)
		s.mu.Lock()
		delete(s.entries, e.id)
		s.mu.Unlock()
		return nil, nil
	case err != nil:
		// Perhaps transient (EMFILE, EIO, EACCES): keep the message, retry
		// later.
		s.retryLater(e)
		return nil, fmt.Errorf("spool: claim %s: %w", e.id, err)
	}
	s.mu.Lock()
	crashed := e.crashed
	s.mu.Unlock()
	crashes := rec.Crashes
	if crashed {
		crashes++
		if crashes >= s.maxCrashes {
			f.Close()
			return nil, s.setAside(e, fmt.Errorf("%d deliveries of this message ended in a crash of the process (limit %d)",
				crashes, s.maxCrashes), true)
		}
	}
	l := leaseRec{seq: rec.nextSeq(), leaseUntil: s.now().Add(s.leaseTimeout), attempts: rec.Attempts + 1, crashes: crashes}
	_, err = f.WriteAt(encodeSlot(l), slotOffset(l.seq))
	if err == nil {
		err = f.Datasync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err := s.claimNotWritten(e, err); err != nil {
		return nil, err
	}
	rec.Attempts = l.attempts
	s.mu.Lock()
	e.crashed = false // counted (on disk unless the file system is full)
	e.instance, e.diskSeq = rec.hdr.instance, l.seq
	seq := e.seq
	s.mu.Unlock()
	s.log.Debug("spool: leased", "id", e.id, "attempts", rec.Attempts)
	return &queue.Message{Envelope: rec.Envelope, Token: &spoolLease{id: e.id, seq: seq}}, nil
}

// claimNotWritten decides for a claim whose write failed with err (nil:
// it did not): the error to return, the message due again; or nil to
// hand it out all the same. A full file system: delivering and completing
// messages is what frees space, so the message is handed out with its
// lease held in memory only (a crash now makes it due at once after the
// restart, with this claim uncounted). Refusing would leave the relay
// neither accepting nor delivering until an operator acts.
func (s *Spool) claimNotWritten(e *spoolEntry, err error) error {
	if err == nil {
		return nil
	}
	if !safefile.IsNoSpace(err) {
		// Due again after spoolErrorRetry, not at once: released due now it
		// would be the top of the heap again, and every Lease would fail
		// on it while other messages (msg/ ones, with a broken journal)
		// could go out.
		s.retryLater(e)
		return fmt.Errorf("spool: claim %s: %w", e.id, err)
	}
	s.log.Warn("spool: file system full; claim not written, message handed out with its lease in memory only", "id", e.id, "err", err)
	return nil
}

// setAside quarantines the leased entry e and drops it from the index; when
// the files cannot be moved (a transient error) the message stays and is
// retried later. It returns nil when Lease should go on with the next
// message.
func (s *Spool) setAside(e *spoolEntry, reason error, crashes bool) error {
	if err := s.quarantine(e.id, reason); err != nil {
		s.retryLater(e)
		return fmt.Errorf("spool: quarantine %s: %w", e.id, err)
	}
	if crashes {
		s.stats.crashQuarantined.Add(1)
	}
	s.mu.Lock()
	delete(s.entries, e.id)
	s.mu.Unlock()
	return nil
}

// retryLater makes the leased entry e due again after spoolErrorRetry.
func (s *Spool) retryLater(e *spoolEntry) {
	s.mu.Lock()
	e.next = s.now().Add(spoolErrorRetry)
	s.release(e)
	s.mu.Unlock()
}

// writeEnvelope replaces the envelope file of env.ID atomically
// (temporary file, fsync, rename, directory fsync): it supersedes the
// envelope in message file instance, and ends the claim leaseSeq.
func (s *Spool) writeEnvelope(env *queue.Envelope, instance, leaseSeq uint64) error {
	data, err := marshalEnvelope(envFile{Envelope: env, Instance: instance, LeaseSeq: leaseSeq})
	if err != nil {
		return err
	}
	return safefile.WriteFileAtomic(s.fs, &s.dirs, s.tmpDir, s.envelopePath(env.ID), append(data, '\n'))
}

// endLease checks that m still holds its lease and ends the lease's token,
// so that a second Reschedule or Complete with the same Message fails. The
// entry stays marked leased until the caller releases or removes it.
func (s *Spool) endLease(m *queue.Message) (*spoolEntry, error) {
	id, err := messageID(m)
	if err != nil {
		return nil, err
	}
	seq := m.Token.(*spoolLease).seq
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || !e.leased || e.seq != seq {
		return nil, fmt.Errorf("%w: %s", errLeaseLost, id)
	}
	e.seq++
	return e, nil
}

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

	s.mu.Lock()
	e.next = at
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
