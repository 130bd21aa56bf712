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
	// held: the operator put the message on hold (Envelope.Hold, durable
	// in its envelope); nextDue drops it from the due heap, Release puts
	// it back (admin.go).
	held bool
	// marks are operator actions asked while a worker holds the lease;
	// Reschedule writes them into the envelope it persists (admin.go).
	marks *adminMarks
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
	for len(s.due) > 0 && s.due[0].held {
		heap.Pop(&s.due) // on hold: out of the heap until Release
	}
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
	s.withMarks(e, rec.Envelope)
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
