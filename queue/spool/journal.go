package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// errJournalBroken is returned by appends once a failed write or
// fdatasync could not be cleaned up (the tail truncated and synced, a new
// segment created): the journal takes nothing more until the next Open,
// and Enqueue falls back to the one-file path.
var errJournalBroken = errors.New("spool: journal broken after a failed write could not be cleaned up")

// segment is one journal file, <spool>/journal/<16 hex digits>.log.
type segment struct {
	num  uint64
	path string
	f    safefile.File // open for appending while it is the active segment
	// live counts the MSG records in it that have no synced END (written
	// or acknowledged; a failed one is taken back): the segment may be
	// deleted only when it is 0 and every older segment is gone.
	live int
}

// failRange is a run of records that a failed write or fdatasync took
// with it: tickets in (lo, hi] fail with err.
type failRange struct {
	lo, hi uint64
	err    error
}

// journal is the append-only log with group commit (doc.go). Appends are
// serialized under mu, one WriteAt at the tail per record; a record is
// acknowledged once an fdatasync that started after its write succeeded.
// One waiter at a time (the leader) runs the fdatasync, outside mu, for
// every record written before it started; the others wait on cond.
type journal struct {
	fs       safefile.FS
	dir      string
	log      *slog.Logger
	segBytes int64

	gcMu sync.Mutex // one segment deletion at a time

	mu        sync.Mutex
	cond      *sync.Cond
	segs      []*segment // oldest first; the active one (if any) last
	active    *segment   // nil until the first append (or after Close)
	next      uint64     // number of the next segment
	tail      int64      // where the next record goes in active
	written   uint64     // tickets handed out (one per record written)
	synced    uint64     // every ticket up to this is settled (synced, or failed)
	syncedOff int64      // the durable length of active
	syncing   bool       // a leader's fdatasync is running
	fails     []failRange
	broken    error
}

func newJournal(fsys safefile.FS, dir string, log *slog.Logger, segBytes int64) *journal {
	j := &journal{fs: fsys, dir: dir, log: log, segBytes: segBytes, next: 1}
	j.cond = sync.NewCond(&j.mu)
	return j
}

func segmentName(num uint64) string { return fmt.Sprintf("%016x.log", num) }

// append writes record b at the tail and waits for the fdatasync that
// covers it. msg says b is a MSG record: its segment counts it live from
// the write on (so that no deletion can race its acknowledgement). It
// returns the segment and offset the record went to.
func (j *journal) append(b []byte, msg bool) (*segment, int64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		if j.broken != nil {
			return nil, 0, errJournalBroken
		}
		if j.active != nil && (j.tail == 0 || j.tail+int64(len(b)) <= j.segBytes) {
			break
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		if err := j.rotateLocked(); err != nil {
			return nil, 0, err
		}
	}
	seg, off := j.active, j.tail
	if _, err := seg.f.WriteAt(b, off); err != nil {
		// Part of b may be on disk: nothing after the durable length may
		// stay. A leader's fdatasync under way settles first.
		for j.syncing {
			j.cond.Wait()
		}
		if j.active == seg && j.broken == nil {
			j.failLocked(err)
		}
		return nil, 0, err
	}
	j.tail += int64(len(b))
	j.written++
	t := j.written
	if msg {
		seg.live++
	}
	if err := j.waitLocked(t); err != nil {
		if msg {
			seg.live--
		}
		return nil, 0, err
	}
	return seg, off, nil
}

// waitLocked waits until ticket t is settled: nil once an fdatasync that
// started after its write succeeded, the error if a failure took it.
func (j *journal) waitLocked(t uint64) error {
	for {
		for _, f := range j.fails {
			if t > f.lo && t <= f.hi {
				return f.err
			}
		}
		if t <= j.synced {
			return nil
		}
		if j.syncing {
			j.cond.Wait()
			continue
		}
		// Lead: one fdatasync for every record written so far. No
		// rotation or clean-up runs while syncing is set.
		j.syncing = true
		target, off, seg := j.written, j.tail, j.active
		j.mu.Unlock()
		err := seg.f.Datasync()
		j.mu.Lock()
		j.syncing = false
		if err == nil {
			j.synced = max(j.synced, target)
			j.syncedOff = max(j.syncedOff, off)
		} else if j.broken == nil {
			j.failLocked(err)
		}
		j.cond.Broadcast()
	}
}

// failLocked settles every record not covered by a successful fdatasync
// as failed with err, truncates the active segment back to its durable
// length, fdatasyncs it and rotates to a new segment, so that nothing of
// a failed record can replay; if that clean-up fails, the journal is
// broken. No leader is syncing.
func (j *journal) failLocked(err error) {
	if j.written > j.synced {
		j.fails = append(j.fails, failRange{lo: j.synced, hi: j.written, err: err})
		j.synced = j.written
	}
	j.log.Error("spool: journal write or fdatasync failed; records not yet synced fail, the tail is cut back",
		"segment", j.active.path, "durable_bytes", j.syncedOff, "lost_bytes", j.tail-j.syncedOff, "err", err)
	a := j.active
	cerr := a.f.Truncate(j.syncedOff)
	if cerr == nil {
		cerr = a.f.Datasync()
	}
	if cerr == nil {
		j.tail = j.syncedOff
		cerr = j.rotateLocked()
	}
	if cerr != nil {
		j.broken = cerr
		j.log.Error("spool: journal broken: the failed tail could not be cut back; new messages go to msg/ until a restart",
			"segment", a.path, "err", cerr)
	}
	j.cond.Broadcast()
}

// rotateLocked makes a new segment the active one: the active one is
// fdatasync'd completely first (if anything in it is not yet), then the new
// file is created and the journal directory fsync'd, before any record is
// written to it. On error the active segment stays (and may be broken by
// the caller). No leader is syncing.
func (j *journal) rotateLocked() error {
	if a := j.active; a != nil && j.synced < j.written {
		if err := a.f.Datasync(); err != nil {
			j.failLocked(err) // rotates, or breaks the journal
			return err
		}
		j.synced, j.syncedOff = j.written, j.tail
	}
	num := j.next
	j.next++
	path := filepath.Join(j.dir, segmentName(num))
	f, err := j.fs.Create(path)
	if err != nil {
		return fmt.Errorf("journal: new segment: %w", err)
	}
	if err := j.fs.SyncDir(j.dir); err != nil {
		f.Close()
		j.fs.Remove(path) // an empty segment; replay skips one left by a crash
		return fmt.Errorf("journal: new segment: %w", err)
	}
	if a := j.active; a != nil {
		a.f.Close()
		a.f = nil
	}
	seg := &segment{num: num, path: path, f: f}
	j.segs = append(j.segs, seg)
	j.active, j.tail, j.syncedOff = seg, 0, 0
	return nil
}

// ended records that the END of a MSG in seg is synced, and deletes the
// segments that no longer hold a live message.
func (j *journal) ended(seg *segment) {
	j.mu.Lock()
	seg.live--
	j.mu.Unlock()
	j.collect()
}

// collect deletes the oldest segments while the oldest one is not the
// active one and holds no live MSG: unlink, then fsync the journal
// directory. Only the oldest: an END in a newer segment must not outlive
// ... the segment of its MSG (doc.go).
func (j *journal) collect() {
	j.gcMu.Lock()
	defer j.gcMu.Unlock()
	for {
		j.mu.Lock()
		if len(j.segs) == 0 || j.segs[0] == j.active || j.segs[0].live > 0 {
			j.mu.Unlock()
			return
		}
		seg := j.segs[0]
		j.mu.Unlock()
		if err := j.fs.Remove(seg.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			j.log.Warn("spool: cannot delete a journal segment; tried again later", "segment", seg.path, "err", err)
			return
		}
		if err := j.fs.SyncDir(j.dir); err != nil {
			j.log.Warn("spool: cannot fsync the journal directory after deleting a segment; tried again later", "segment", seg.path, "err", err)
			return
		}
		j.mu.Lock()
		j.segs = j.segs[1:]
		j.mu.Unlock()
	}
}

// brokenErr is the error that broke the journal, nil while it works.
func (j *journal) brokenErr() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.broken
}

// closeIdle closes the active segment's descriptor when nothing is in
// flight (Spool.Close); a later append (a Complete during a shutdown)
// starts a new segment.
func (j *journal) closeIdle() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if a := j.active; a != nil && !j.syncing && j.synced == j.written {
		a.f.Close()
		a.f = nil
		j.active = nil
	}
}
