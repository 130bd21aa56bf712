package spool

import (
	"container/heap"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// scan rebuilds the index from the files at Open. It never deletes an
// envelope: what cannot be used goes to quarantine for an operator. It
// deletes only temporary files and bodies without an envelope (an Enqueue
// that was interrupted before its commit, so never acknowledged) — but
// never a body whose ID has files in quarantine: that is a quarantine that
// was interrupted, and the body follows its envelope there.
//
// An envelope that cannot be read for a reason other than its content
// (EIO, EMFILE, EACCES…) is left in place and indexed as due now: the
// claim reads it again, and retries later if it still fails.
//
// A claim found unfinished (LeaseUntil set: the process died during the
// delivery) makes the message due no earlier than LeaseUntil, and is
// counted by the next claim (see MaxDeliveryCrashes).
func (s *Spool) scan() error {
	if err := s.cleanTmp(); err != nil {
		return err
	}
	names, err := s.fs.ReadDirNames(s.msgDir)
	if err != nil {
		return err
	}
	bodies := make(map[string]bool)
	envelopes := make(map[string]bool)
	for _, name := range names {
		id, ext := splitName(name)
		switch {
		case !queue.ValidID(id):
			s.log.Warn("spool: unexpected file in the message directory; left alone", "file", name)
		case ext == bodyExt:
			bodies[id] = true
		case ext == envelopeExt:
			envelopes[id] = true
		default:
			s.log.Warn("spool: unexpected file in the message directory; left alone", "file", name)
		}
	}
	quarantined, err := s.quarantinedIDs()
	if err != nil {
		return err
	}

	changed := false
	for id := range bodies {
		if envelopes[id] {
			continue
		}
		if quarantined[id] {
			// Its envelope went to quarantine and a crash (or an error)
			// stopped the body from following: finish the move.
			// On error the body stays where it is (logged), for the next start.
			s.quarantine(id, errors.New("completing an interrupted quarantine"))
			continue
		}
		// Body committed, envelope not: the Enqueue never returned success.
		if err := s.fs.Remove(s.bodyPath(id)); err != nil {
			return fmt.Errorf("remove orphan body: %w", err)
		}
		s.log.Info("spool: removed orphan body of an interrupted enqueue", "id", id)
		changed = true
	}
	now := s.now()
	for id := range envelopes {
		if !bodies[id] {
			// On error the envelope stays (logged), for the next start.
			s.quarantine(id, errors.New("body file is missing"))
			continue
		}
		rec, err := s.readRecord(id)
		switch {
		case errors.Is(err, errCorruptEnvelope):
			if s.quarantine(id, err) != nil {
				// Left in place; its claim finds it corrupt and tries again.
				s.entries[id] = &spoolEntry{id: id, next: now.Add(spoolErrorRetry), index: -1}
			}
			continue
		case err != nil:
			s.log.Warn("spool: cannot read envelope; left in place, retried at its claim", "id", id, "err", err)
			s.entries[id] = &spoolEntry{id: id, next: now, index: -1}
			continue
		}
		e := &spoolEntry{id: id, next: dueAt(rec.Envelope), index: -1}
		if !rec.LeaseUntil.IsZero() {
			e.crashed = true
			s.stats.crashedClaims.Add(1)
			if rec.LeaseUntil.After(e.next) {
				e.next = rec.LeaseUntil
			}
			s.log.Warn("spool: a delivery of this message was interrupted by a crash; due again when its lease ends",
				"id", id, "lease_until", rec.LeaseUntil, "earlier_crashes", rec.Crashes)
		}
		s.entries[id] = e
	}
	for _, e := range s.entries {
		s.due = append(s.due, e)
		e.index = len(s.due) - 1
	}
	heap.Init(&s.due)
	if changed {
		return s.fs.SyncDir(s.msgDir)
	}
	return nil
}

// quarantinedIDs returns the IDs that have a file in quarantine.
func (s *Spool) quarantinedIDs() (map[string]bool, error) {
	names, err := s.fs.ReadDirNames(s.qDir)
	if err != nil {
		return nil, err
	}
	ids := make(map[string]bool, len(names))
	for _, name := range names {
		if id, _ := splitName(name); queue.ValidID(id) {
			ids[id] = true
		}
	}
	return ids, nil
}

// cleanTmp removes everything in the temporary directory: files of writes
// that never reached their rename.
func (s *Spool) cleanTmp() error {
	names, err := s.fs.ReadDirNames(s.tmpDir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := s.fs.RemoveAll(filepath.Join(s.tmpDir, name)); err != nil {
			return fmt.Errorf("remove temporary file: %w", err)
		}
	}
	if len(names) > 0 {
		s.log.Info("spool: removed temporary files of interrupted writes", "count", len(names))
	}
	return nil
}

// quarantine moves the files of message id to the quarantine directory and
// logs why at ERROR. It never deletes them. The body goes first, and is
// durable there before the envelope moves: while the envelope is in msg/
// the message is still queued, and a body in msg/ without its envelope
// would be taken for the orphan of an interrupted Enqueue. A missing file is
// skipped; any other error stops the move (the message stays where it is,
// to be tried again) and is returned.
func (s *Spool) quarantine(id string, reason error) error {
	for _, src := range []string{s.bodyPath(id), s.envelopePath(id)} {
		dst := filepath.Join(s.qDir, filepath.Base(src))
		if _, err := s.fs.Lstat(dst); err == nil {
			dst += "." + time.Now().UTC().Format("20060102T150405.000000000")
		}
		err := s.fs.Rename(src, dst)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			// The new name first, then the old one's removal.
			if err = s.dirs.Sync(s.qDir); err == nil {
				err = s.dirs.Sync(s.msgDir)
			}
		}
		if err != nil {
			s.log.Error("spool: cannot move file to quarantine; left in place", "id", id, "file", src, "err", err)
			return err
		}
	}
	s.stats.quarantined.Add(1)
	s.log.Error("spool: message quarantined",
		"id", id, "reason", reason.Error(), "quarantine", s.qDir)
	return nil
}

// splitName splits "<id>.<ext>" at the first dot.
func splitName(name string) (id, ext string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i:]
	}
	return name, ""
}
