package bounce

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// Ready reports whether reports can be stored now: a probe file is
// created, fsync'd and removed in tmp/ (named as edgerelay names its own
// tmp files, so the "dedicated and empty" check never takes a leftover for
// a foreign file, and the stale-tmp sweep removes one), and the file
// system must have at least safefile.MinFreeBytes free. /readyz asks it.
func (m *maildirStore) Ready(ctx context.Context) error {
	name := fmt.Sprintf("%d.%d_%d.readyprobe%s", time.Now().UnixNano(), m.pid, m.seq.Add(1), msgSuffix)
	if err := safefile.ProbeDir(ctx, filepath.Join(m.dir, "tmp"), name, safefile.MinFreeBytes); err != nil {
		return fmt.Errorf("%s: %w", m, err)
	}
	return nil
}
