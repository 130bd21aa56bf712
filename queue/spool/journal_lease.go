package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// claimJournal is claim for a message whose state is in the journal: a
// CLAIM record (Attempts incremented, the lease deadline, the crash count)
// is group-committed before the message is handed out.
func (s *Spool) claimJournal(e *spoolEntry, jm *jmsg) (*queue.Message, error) {
	env, err := s.readJournalEnvelope(e.id, jm)
	switch {
	case errors.Is(err, errCorruptEnvelope):
		return nil, s.setAsideJournal(e, jm, err, false)
	case err != nil:
		s.retryLater(e)
		return nil, fmt.Errorf("spool: claim %s: %w", e.id, err)
	}
	s.mu.Lock()
	crashed, last := e.crashed, jm.claim
	s.mu.Unlock()
	crashes := last.crashes
	if crashed {
		crashes++
		if crashes >= s.maxCrashes {
			return nil, s.setAsideJournal(e, jm, fmt.Errorf("%d deliveries of this message ended in a crash of the process (limit %d)",
				crashes, s.maxCrashes), true)
		}
	}
	l := leaseRec{seq: last.seq + 1, leaseUntil: s.now().Add(s.leaseTimeout), attempts: env.Attempts + 1, crashes: crashes}
	_, _, err = s.j.append(encodeClaimRecord(e.id, jm.instance, l), false)
	if err := s.claimNotWritten(e, err); err != nil {
		return nil, err
	}
	env.Attempts = l.attempts
	s.mu.Lock()
	jm.claim = l
	e.crashed = false
	seq := e.seq
	s.mu.Unlock()
	s.withMarks(e, env)
	s.log.Debug("spool: leased", "id", e.id, "attempts", env.Attempts, "journal", true)
	return &queue.Message{Envelope: env, Token: &spoolLease{id: e.id, seq: seq}}, nil
}

// rescheduleJournal moves a journal message to msg/ with env (its new
// state): msg/<id>.msg written by the Enqueue path (fsync, link, msg/
// fsync'd), keeping the MSG's instance, then an END record
// group-committed. A crash between the two leaves both; Open lets msg/
// win and writes the END. If the END cannot be written, the message is
// rescheduled all the same (msg/ holds it) and its END is pending
// (pendEnd): written before the next append, and before the message's
// Complete removes its file.
func (s *Spool) rescheduleJournal(ctx context.Context, e *spoolEntry, jm *jmsg, env *queue.Envelope) error {
	body, err := s.journalBody(e.id, jm)
	if err != nil {
		return err
	}
	err = s.writeAs(ctx, env, body, jm.instance)
	body.Close()
	if err != nil {
		return err
	}
	_, _, err = s.j.append(encodeEndRecord(e.id, jm.instance), false)
	s.mu.Lock()
	e.j = nil
	if err != nil {
		e.end = s.pendEnd(e.id, jm)
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("spool: message moved to msg/ but the END of its journal record could not be written; written later, before its Complete removes it",
			"id", e.id, "err", err)
		return nil
	}
	s.j.ended(jm.seg)
	return nil
}

// completeJournal is Complete for a message whose state is in the
// journal: its END record, group-committed.
func (s *Spool) completeJournal(e *spoolEntry, jm *jmsg) error {
	if _, _, err := s.j.append(encodeEndRecord(e.id, jm.instance), false); err != nil {
		// Delivered: not handed out again (a full disk would otherwise
		// deliver it every minute); the END is pending and the message
		// leaves the index once it is written. A crash before that brings
		// it back (at least once).
		s.mu.Lock()
		e.end = s.pendEnd(e.id, jm)
		e.end.complete = e
		s.mu.Unlock()
		return fmt.Errorf("spool: complete %s: %w: %w", e.id, errEndPending, err)
	}
	s.mu.Lock()
	e.j = nil
	delete(s.entries, e.id)
	s.mu.Unlock()
	s.j.ended(jm.seg)
	return nil
}

// setAsideJournal quarantines a journal message: quarantine/<id>.msg is
// written in the one-file format (fsync, link, quarantine/ fsync'd),
// keeping the MSG's instance, then an END record is written. When the END
// fails it is pending (pendEnd; the next Open writes it too, the instance
// being in quarantine). On a write error the message stays, retried
// later.
func (s *Spool) setAsideJournal(e *spoolEntry, jm *jmsg, reason error, crashes bool) error {
	if err := s.copyJournalMessage(e.id, jm); err != nil {
		s.log.Error("spool: cannot copy journal message to quarantine; left in place", "id", e.id, "err", err)
		s.retryLater(e)
		return fmt.Errorf("spool: quarantine %s: %w", e.id, err)
	}
	s.stats.quarantined.Add(1)
	if crashes {
		s.stats.crashQuarantined.Add(1)
	}
	s.log.Error("spool: message quarantined", "id", e.id, "reason", reason.Error(), "quarantine", s.qDir)
	s.mu.Lock()
	delete(s.entries, e.id)
	s.mu.Unlock()
	if _, _, err := s.j.append(encodeEndRecord(e.id, jm.instance), false); err != nil {
		s.mu.Lock()
		s.pendEnd(e.id, jm)
		s.mu.Unlock()
		s.log.Warn("spool: the END of a quarantined journal message could not be written; written later", "id", e.id, "err", err)
		return nil
	}
	s.j.ended(jm.seg)
	return nil
}

// errEndPending: Complete could not write the END of the message's
// journal record. The message was delivered and is not handed out again;
// it is removed once the END is written (flushEnds); a crash before that
// brings it back.
var errEndPending = errors.New("END of the journal record not written yet; the message is not handed out again and is removed once it is")

// endKey names one MSG record: a message ID and its instance.
type endKey struct {
	id       string
	instance uint64
}

// pendingEnd is the END of a MSG record whose message left the journal
// (moved to msg/ by a Reschedule, quarantined, or completed) but whose
// END could not be written: until it is, the MSG pins its segment and every later one,
// and would come back at a restart. flushEnds writes it before the next
// append of Enqueue, Lease, Reschedule or Complete.
type pendingEnd struct {
	id string
	jm *jmsg
	// complete is the entry of the message whose Complete waits for this
	// END: the message was delivered, so it stays out of the due heap, and
	// once the END is synced it leaves the index (a journal message) or
	// its files in msg/ are removed (a moved one).
	complete *spoolEntry
	// err is the outcome of that Complete, finished by flushEnds (s.mu).
	err error
}

// pendEnd records the pending END of jm (message id) and returns it. s.mu
// is held.
func (s *Spool) pendEnd(id string, jm *jmsg) *pendingEnd {
	p := &pendingEnd{id: id, jm: jm}
	s.ends[endKey{id, jm.instance}] = p
	s.endRetryLocked()
	return p
}

// endRetryLocked arms a timer that runs flushEnds after s.endRetry while
// ENDs are pending, so that they are written (and a Complete waiting for
// one finished) on a spool with no traffic too. Not before Open has
// succeeded, nor after Close. s.mu is held.
func (s *Spool) endRetryLocked() {
	if s.endTimer != nil || len(s.ends) == 0 || !s.started || s.closed {
		return
	}
	s.endTimer = time.AfterFunc(s.endRetry, func() {
		s.mu.Lock()
		s.endTimer = nil
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		s.flushEnds()
		s.mu.Lock()
		s.endRetryLocked()
		s.mu.Unlock()
	})
}

// endPendingFor reports whether an END of a message of ID id is pending.
// s.mu is held.
func (s *Spool) endPendingFor(id string) bool {
	for k := range s.ends {
		if k.id == id {
			return true
		}
	}
	return false
}

// flushEnds writes the pending ENDs, one at a time, and stops at the first
// that fails (the rest wait for the next call). The Complete waiting for
// one is finished after it (completeFile).
func (s *Spool) flushEnds() {
	s.mu.Lock()
	n := len(s.ends)
	s.mu.Unlock()
	if n == 0 {
		return
	}
	s.endMu.Lock()
	defer s.endMu.Unlock()
	s.mu.Lock()
	list := make([]*pendingEnd, 0, len(s.ends))
	for _, p := range s.ends {
		list = append(list, p)
	}
	s.mu.Unlock()
	for _, p := range list {
		if _, _, err := s.j.append(encodeEndRecord(p.id, p.jm.instance), false); err != nil {
			s.log.Debug("spool: pending END of a message moved out of the journal still not written; tried again later", "id", p.id, "err", err)
			return
		}
		s.mu.Lock()
		delete(s.ends, endKey{p.id, p.jm.instance})
		e := p.complete
		if e == nil {
			if e = s.entries[p.id]; e != nil && e.end == p {
				e.end = nil
			}
			e = nil
		} else {
			e.end = nil
			if e.j != nil {
				// A journal message whose Complete waited: the END was
				// all of it.
				e.j = nil
				if s.entries[e.id] == e {
					delete(s.entries, e.id)
				}
				e = nil
			}
		}
		s.mu.Unlock()
		s.j.ended(p.jm.seg)
		s.log.Info("spool: pending END of a journal record written", "id", p.id)
		if e != nil {
			err := s.completeFile(e)
			if err != nil {
				s.log.Warn("spool: Complete after its pending END failed", "id", p.id, "err", err)
			}
			s.mu.Lock()
			p.err = err
			s.mu.Unlock()
		}
	}
}

// copyJournalMessage writes the MSG of jm as quarantine/<id>.msg in the
// one-file format, its envelope bytes as they are in the journal.
func (s *Spool) copyJournalMessage(id string, jm *jmsg) error {
	src, err := s.fs.Open(jm.seg.path)
	if err != nil {
		return err
	}
	defer src.Close()
	envData := make([]byte, jm.envLen)
	if _, err := src.ReadAt(envData, jm.envOff); err != nil {
		return err
	}
	f, err := s.fs.CreateTemp(s.tmpDir, id+msgExt+".*.tmp")
	if err != nil {
		return err
	}
	if _, err := fillRaw(f, io.NewSectionReader(src, jm.bodyOff, jm.bodyLen), envData, jm.instance); err != nil {
		f.Close()
		s.fs.Remove(f.Name())
		return err
	}
	dst := filepath.Join(s.qDir, id+msgExt)
	if _, err := s.fs.Lstat(dst); err == nil {
		dst += "." + time.Now().UTC().Format("20060102T150405.000000000")
	} else if !errors.Is(err, fs.ErrNotExist) {
		f.Close()
		s.fs.Remove(f.Name())
		return err
	}
	_, err = safefile.CommitNew(s.fs, &s.dirs, f, dst)
	return err
}
