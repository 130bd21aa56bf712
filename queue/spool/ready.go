package spool

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

var probeSeq atomic.Uint64

// Ready reports whether the spool can take messages now: not while its
// journal is broken (a failed write could not be cut back; Ready retries
// that clean-up, with a back-off, and passes once it succeeds); a probe
// file is created in its tmp/ directory, written, fsync'd and removed (a
// read-only or failing file system shows here), and the file system must
// have at least safefile.MinFreeBytes and a free inode. It is what /readyz
// asks; it holds no lock of the spool's and changes nothing the spool uses
// but that clean-up (tmp/ is swept at start).
func (s *Spool) Ready(ctx context.Context) error {
	if err := s.j.ready(); err != nil {
		return fmt.Errorf("%w: %w", errJournalBroken, err)
	}
	if err := safefile.ProbeDir(ctx, s.tmpDir, "ready-probe."+strconv.Itoa(os.Getpid())+"."+strconv.FormatUint(probeSeq.Add(1), 10)+".tmp", safefile.MinFreeBytes); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}
