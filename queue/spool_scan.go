package queue

import (
	"container/heap"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// scan rebuilds the index from the files at OpenSpool. It never deletes an
// envelope: what cannot be read goes to quarantine for an operator. It
// deletes only temporary files and bodies without an envelope (an Enqueue
// that was interrupted before its commit, so never acknowledged).
func (s *Spool) scan() error {
	if err := s.cleanTmp(); err != nil {
		return err
	}
	names, err := readDirNames(s.msgDir)
	if err != nil {
		return err
	}
	bodies := make(map[string]bool)
	envelopes := make(map[string]bool)
	for _, name := range names {
		id, ext := splitName(name)
		switch {
		case !ValidID(id):
			s.log.Warn("spool: unexpected file in the message directory; left alone", "file", name)
		case ext == bodyExt:
			bodies[id] = true
		case ext == envelopeExt:
			envelopes[id] = true
		default:
			s.log.Warn("spool: unexpected file in the message directory; left alone", "file", name)
		}
	}

	changed := false
	for id := range bodies {
		if envelopes[id] {
			continue
		}
		// Body committed, envelope not: the Enqueue never returned success.
		if err := os.Remove(s.bodyPath(id)); err != nil {
			return fmt.Errorf("remove orphan body: %w", err)
		}
		s.log.Info("spool: removed orphan body of an interrupted enqueue", "id", id)
		changed = true
	}
	for id := range envelopes {
		if !bodies[id] {
			s.quarantine(id, errors.New("body file is missing"))
			continue
		}
		env, err := s.readEnvelope(id)
		if err != nil {
			s.quarantine(id, err)
			continue
		}
		s.entries[id] = &spoolEntry{id: id, next: dueAt(env), index: -1}
	}
	for _, e := range s.entries {
		s.due = append(s.due, e)
		e.index = len(s.due) - 1
	}
	heap.Init(&s.due)
	if changed {
		return syncDir(s.msgDir)
	}
	return nil
}

// cleanTmp removes everything in the temporary directory: files of writes
// that never reached their rename.
func (s *Spool) cleanTmp() error {
	names, err := readDirNames(s.tmpDir)
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := os.RemoveAll(filepath.Join(s.tmpDir, name)); err != nil {
			return fmt.Errorf("remove temporary file: %w", err)
		}
	}
	if len(names) > 0 {
		s.log.Info("spool: removed temporary files of interrupted writes", "count", len(names))
	}
	return nil
}

// quarantine moves the envelope of id, and its body when there is one, to
// the quarantine directory and logs why. It never deletes them.
func (s *Spool) quarantine(id string, reason error) {
	moved := 0
	for _, src := range []string{s.envelopePath(id), s.bodyPath(id)} {
		dst := filepath.Join(s.qDir, filepath.Base(src))
		if _, err := os.Lstat(dst); err == nil {
			dst += "." + time.Now().UTC().Format("20060102T150405.000000000")
		}
		err := os.Rename(src, dst)
		switch {
		case err == nil:
			moved++
		case !errors.Is(err, os.ErrNotExist):
			s.log.Error("spool: cannot move file to quarantine", "id", id, "file", src, "err", err)
		}
	}
	if moved > 0 {
		syncDir(s.qDir)
		syncDir(s.msgDir)
	}
	s.log.Error("spool: message quarantined: its envelope cannot be used",
		"id", id, "reason", reason.Error(), "quarantine", s.qDir)
}

// splitName splits "<id>.<ext>" at the first dot.
func splitName(name string) (id, ext string) {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		return name[:i], name[i:]
	}
	return name, ""
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}
