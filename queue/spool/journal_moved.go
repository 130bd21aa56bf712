package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
)

// inQuarantine reports whether quarantine/ holds message id of the given
// journal instance (copied there by setAsideJournal, which keeps it).
func (s *Spool) inQuarantine(id string, instance uint64) (bool, error) {
	names, err := s.fs.ReadDirNames(s.qDir)
	if err != nil {
		return false, err
	}
	for _, name := range names {
		if !strings.HasPrefix(name, id+msgExt) {
			continue
		}
		got, ok, err := s.fileInstance(filepath.Join(s.qDir, name))
		if err != nil {
			return false, err
		}
		if ok && got == instance {
			return true, nil
		}
	}
	return false, nil
}

// fileInstance reads the instance in the header of the message file at
// path; ok is false when there is no such file or no valid header.
func (s *Spool) fileInstance(path string) (instance uint64, ok bool, err error) {
	f, err := s.fs.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	b := make([]byte, headerLen)
	n, err := f.ReadAt(b, 0)
	if n == len(b) && string(b[:8]) == msgMagic {
		return binary.LittleEndian.Uint64(b[16:]), true, nil
	}
	if err != nil && err != io.EOF {
		return 0, false, err
	}
	return 0, false, nil
}

// movedCopy reports whether msg/<id>.msg is what a move of jm wrote: the
// same instance, or (a move by an older version, which gave the file a
// new one) the same body. A file that cannot be decoded is not.
func (s *Spool) movedCopy(id string, jm *jmsg) (bool, error) {
	f, err := s.fs.Open(s.msgPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false, err
	}
	b := make([]byte, bodyOffset)
	if _, err := f.ReadAt(b, 0); err != nil {
		return false, nil
	}
	h, err := decodeHeader(b, size)
	switch {
	case err != nil || h.bodyLen != jm.bodyLen:
		return false, nil
	case h.instance == jm.instance:
		return true, nil
	}
	g, err := s.fs.Open(jm.seg.path)
	if err != nil {
		return false, err
	}
	defer g.Close()
	mine, theirs := make([]byte, jm.bodyLen), make([]byte, h.bodyLen)
	if _, err := g.ReadAt(mine, jm.bodyOff); err != nil {
		return false, err
	}
	if _, err := f.ReadAt(theirs, h.bodyOff); err != nil {
		return false, nil
	}
	return bytes.Equal(mine, theirs), nil
}

// keepOtherInstance copies the live MSG jm of id to quarantine (ERROR)
// when msg/<id>.msg is not the file a move of it wrote (movedCopy): an
// Enqueue of the same preset ID after a Complete whose removal was not
// durable. Its END follows (endMoved): it must not be dropped silently.
func (s *Spool) keepOtherInstance(id string, jm *jmsg) error {
	if same, err := s.movedCopy(id, jm); err != nil || same {
		return err
	}
	if in, err := s.inQuarantine(id, jm.instance); err != nil || in {
		return err
	}
	if err := s.copyJournalMessage(id, jm); err != nil {
		return fmt.Errorf("journal: quarantine of a MSG of %s superseded by msg/: %w", id, err)
	}
	s.stats.quarantined.Add(1)
	s.log.Error("spool: message quarantined", "id", id,
		"reason", "msg/ holds another message of this ID (another instance) than the journal's, which has no END", "quarantine", s.qDir)
	return nil
}
