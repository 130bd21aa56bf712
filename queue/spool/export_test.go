package spool

import (
	"path/filepath"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// ReadEnvelope reads the current envelope of message id from the spool in
// dir (its envelope file, else the one in its message file, with Attempts
// as the last claim left it), for tests that check what is on disk.
func ReadEnvelope(dir, id string) (*queue.Envelope, error) {
	s := &Spool{msgDir: filepath.Join(dir, spoolMsgDir), fs: safefile.OS{}}
	rec, err := s.readRecord(id)
	if err != nil {
		return nil, err
	}
	return rec.Envelope, nil
}
