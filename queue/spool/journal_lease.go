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
	s.log.Debug("spool: leased", "id", e.id, "attempts", env.Attempts, "journal", true)
	return &queue.Message{Envelope: env, Token: &spoolLease{id: e.id, seq: seq}}, nil
}

// rescheduleJournal moves a journal message to msg/ with env (its new
// state): msg/<id>.msg written by the Enqueue path (fsync, link, msg/
// fsync'd), then an END record group-committed. A crash between the two
// leaves both; Open lets msg/ win and writes the END. If the END cannot
// be written, the message is rescheduled all the same (msg/ holds it) and
// its END is written by its Complete, before anything else.
func (s *Spool) rescheduleJournal(ctx context.Context, e *spoolEntry, jm *jmsg, env *queue.Envelope) error {
	body, err := s.journalBody(e.id, jm)
	if err != nil {
		return err
	}
	err = s.write(ctx, env, body)
	body.Close()
	if err != nil {
		return err
	}
	_, _, err = s.j.append(encodeEndRecord(e.id, jm.instance), false)
	s.mu.Lock()
	if err != nil {
		jm.moved = true
	} else {
		e.j = nil
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Warn("spool: message moved to msg/ but the END of its journal record could not be written; its Complete writes it",
			"id", e.id, "err", err)
		return nil
	}
	s.j.ended(jm.seg)
	return nil
}

// completeJournal is Complete's first step for a message that came
// through the journal: its END record, group-committed. done reports that
// the message is gone; when it was moved to msg/ (done false), Complete
// goes on with its file.
func (s *Spool) completeJournal(e *spoolEntry, jm *jmsg) (done bool, err error) {
	if _, _, err := s.j.append(encodeEndRecord(e.id, jm.instance), false); err != nil {
		s.mu.Lock()
		e.next = s.now().Add(spoolErrorRetry)
		s.release(e)
		s.mu.Unlock()
		return true, fmt.Errorf("spool: complete %s: %w", e.id, err)
	}
	s.mu.Lock()
	e.j = nil
	if !jm.moved {
		delete(s.entries, e.id)
	}
	s.mu.Unlock()
	s.j.ended(jm.seg)
	return !jm.moved, nil
}

// setAsideJournal quarantines a journal message: quarantine/<id>.msg is
// written in the one-file format (fsync, link, quarantine/ fsync'd), then
// an END record is written. When the END fails, the next Open writes it
// (the ID is in quarantine). On a write error the message stays, retried
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
		s.log.Warn("spool: the END of a quarantined journal message could not be written; the next start writes it", "id", e.id, "err", err)
		return nil
	}
	s.j.ended(jm.seg)
	return nil
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
