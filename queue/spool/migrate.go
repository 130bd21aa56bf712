package spool

import (
	"context"
	"errors"
	"fmt"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// migrate turns message id of the layout before issue 10 (msg/<id>.env,
// JSON with the claim's lease_until and crashes, beside msg/<id>.eml) into
// a message file, crash-safely: the message file is written to tmp/ with
// the body, the envelope and the old claim (as lease slot 1), fsync'd,
// linked into msg/ and msg/ fsync'd; only then are the old envelope and
// body removed (the caller fsyncs msg/ at the end of the scan). A crash
// before the link's directory fsync leaves the old message, which the next
// Open migrates again; after it, the message file exists and wins, and the
// old files are leftovers that the next Open removes: the message is never
// there twice, and never missing.
//
// An error wrapping errCorruptEnvelope means the old envelope cannot be
// used (the caller quarantines the message); any other error leaves the old
// files in place.
func (s *Spool) migrate(id string) error {
	data, err := s.readEnvFile(s.envelopePath(id))
	if err != nil {
		return err
	}
	old, err := decodeEnvFile(id, data)
	if err != nil {
		return err
	}
	body, err := s.fs.Open(s.bodyPath(id))
	if err != nil {
		return err
	}
	defer body.Close()
	var lease leaseRec
	if !old.LeaseUntil.IsZero() {
		lease = leaseRec{seq: 1, leaseUntil: old.LeaseUntil, attempts: old.Attempts, crashes: old.Crashes}
	}
	f, err := s.fs.CreateTemp(s.tmpDir, id+msgExt+".*.tmp")
	if err != nil {
		return err
	}
	if _, err := fillMessage(context.Background(), f, old.Envelope, body, newInstance(), lease); err != nil {
		f.Close()
		s.fs.Remove(f.Name())
		if errors.Is(err, queue.ErrInvalidEnvelope) {
			err = fmt.Errorf("%w: %w", errCorruptEnvelope, err) // too large to store
		}
		return err
	}
	created, err := safefile.CommitNew(s.fs, &s.dirs, f, s.msgPath(id))
	if err != nil {
		if created {
			s.fs.Remove(s.msgPath(id))
		}
		return fmt.Errorf("migrate: %w", err)
	}
	// The old envelope first: an old body left alone is a leftover either
	// way, and the old envelope never stands beside the message file
	// without its body (which tells a migration's leftover from an envelope
	// file of a Reschedule).
	if err := s.fs.Remove(s.envelopePath(id)); err == nil {
		err = s.fs.Remove(s.bodyPath(id))
		if err != nil {
			s.log.Warn("spool: cannot remove body of the previous layout; removed at the next start", "id", id, "err", err)
		}
	} else {
		s.log.Warn("spool: cannot remove envelope of the previous layout; removed at the next start", "id", id, "err", err)
	}
	s.log.Info("spool: message migrated to the one-file layout", "id", id)
	return nil
}
