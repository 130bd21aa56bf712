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

// scan rebuilds the index from the files at Open. It never deletes a
// message file: what cannot be used goes to quarantine for an operator. It
// deletes only what was never acknowledged or is a leftover of a commit
// that happened: temporary files; an envelope file without its message file
// that names an instance (a Complete interrupted between its two removals);
// an envelope file of another instance beside a message file; a body of the
// layout before issue 10 without its envelope (an interrupted Enqueue of
// that layout) or beside a message file (a migration interrupted after its
// commit). Never a file whose ID has files in quarantine: that is a
// quarantine that was interrupted, and the file follows the others there.
//
// Messages of the layout before issue 10 (<id>.env and <id>.eml) are
// migrated to a message file (see migrate).
//
// A message file that cannot be read for a reason other than its content
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
	msgs := make(map[string]bool)
	envs := make(map[string]bool)
	bodies := make(map[string]bool)
	ids := make(map[string]bool)
	for _, name := range names {
		id, ext := splitName(name)
		switch {
		case !queue.ValidID(id):
			s.log.Warn("spool: unexpected file in the message directory; left alone", "file", name)
			continue
		case ext == msgExt:
			msgs[id] = true
		case ext == envelopeExt:
			envs[id] = true
		case ext == bodyExt:
			bodies[id] = true
		default:
			s.log.Warn("spool: unexpected file in the message directory; left alone", "file", name)
			continue
		}
		ids[id] = true
	}
	quarantined, err := s.quarantinedIDs()
	if err != nil {
		return err
	}

	changed := false
	remove := func(path, what, id string) error {
		if err := s.fs.Remove(path); err != nil {
			return fmt.Errorf("remove %s: %w", what, err)
		}
		s.log.Info("spool: removed "+what, "id", id)
		changed = true
		return nil
	}
	now := s.now()
	for id := range ids {
		switch {
		case !msgs[id] && envs[id] && bodies[id]:
			// A message of the layout before issue 10.
			err := s.migrate(id)
			switch {
			case errors.Is(err, errCorruptEnvelope):
				s.quarantine(id, err)
				continue
			case err != nil:
				s.log.Warn("spool: cannot migrate message of the previous spool layout; left in place, tried again at the next start", "id", id, "err", err)
				continue
			}
			msgs[id], envs[id], bodies[id] = true, false, false
			changed = true
		case !msgs[id] && quarantined[id]:
			// Its message file (or old envelope) went to quarantine and a
			// crash or an error stopped the rest from following: finish the
			// move. On error the files stay (logged), for the next start.
			s.quarantine(id, errors.New("completing an interrupted quarantine"))
			continue
		case !msgs[id] && bodies[id]:
			// Body committed, envelope not (layout before issue 10): that
			// Enqueue never returned success.
			if err := remove(s.bodyPath(id), "orphan body of an interrupted enqueue", id); err != nil {
				return err
			}
			continue
		case !msgs[id]:
			// An envelope file alone: the leftover of a Complete (it names
			// the instance of the message file removed), else an envelope of
			// the layout before issue 10 whose body is missing.
			if data, err := s.readEnvFile(s.envelopePath(id)); err == nil {
				if env, err := decodeEnvFile(id, data); err == nil && env.Instance != 0 {
					if err := remove(s.envelopePath(id), "envelope file of a completed message", id); err != nil {
						return err
					}
					continue
				}
			}
			// On error the envelope stays (logged), for the next start.
			s.quarantine(id, errors.New("message file is missing"))
			continue
		}
		if bodies[id] {
			// A migration interrupted after its commit: the message file
			// wins; the old envelope (it names no instance) and body are
			// leftovers, the envelope removed first as the migration does.
			if envs[id] {
				data, err := s.readEnvFile(s.envelopePath(id))
				var env *envFile
				if err == nil {
					env, err = decodeEnvFile(id, data)
				}
				if errors.Is(err, errCorruptEnvelope) || err == nil && env.Instance == 0 {
					if err := remove(s.envelopePath(id), "envelope of the previous spool layout, already migrated", id); err != nil {
						return err
					}
				}
			}
			if err := remove(s.bodyPath(id), "body of the previous spool layout, already migrated", id); err != nil {
				return err
			}
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
		if rec.stale {
			if err := remove(s.envelopePath(id), "envelope file of an earlier message with this ID", id); err != nil {
				return err
			}
		}
		e := &spoolEntry{id: id, next: dueAt(rec.Envelope), index: -1, held: rec.Hold}
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
	if err := s.replayJournal(quarantined, now); err != nil {
		return err
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
// logs why at ERROR. It never deletes them. The message file goes first,
// and is durable there before the envelope file moves: an envelope file in
// msg/ without its message file would otherwise be taken for the leftover of
// a Complete (Open finishes the move instead, as the ID is in quarantine).
// For the layout before issue 10 the body goes first, before its envelope,
// for the same reason. A missing file is skipped; any other error stops the
// move (the message stays where it is, to be tried again) and is returned.
func (s *Spool) quarantine(id string, reason error) error {
	for _, src := range []string{s.msgPath(id), s.bodyPath(id), s.envelopePath(id)} {
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
