package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// errJournalBroken is returned by appends while a failed write or
// fdatasync could not be cleaned up (the tail cut back to the durable
// length and fdatasync'd): the journal takes nothing until a later append
// or Ready retries the clean-up and it succeeds, and Enqueue falls back to
// the one-file path meanwhile.
var errJournalBroken = errors.New("spool: journal broken after a failed write could not be cleaned up")

// The clean-up of a broken journal is retried at most this often, the
// interval doubling from the first to the second bound while it keeps
// failing.
const (
	journalRetryMin = time.Second
	journalRetryMax = 30 * time.Second
)

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

// batch is the outcome shared by the records of one group commit: the
// records written since the previous fdatasync started. Each waiter holds
// its batch, so a failure's outcome lives as long as its waiters and no
// longer (no list of failed ranges to keep or scan).
type batch struct {
	done bool
	err  error // nil: covered by a successful fdatasync
}

// journal is the append-only log with group commit (doc.go). Appends are
// serialized under mu, one WriteAt at the tail per record; a record is
// acknowledged once an fdatasync that started after its write succeeded.
// One waiter at a time (the leader) runs the fdatasync, outside mu, for
// every record written before it started; the others wait on cond.
//
// Nothing past tail may ever become durable or be written over: a failed
// write sets cutting, and no record is written, no fdatasync started and
// no segment rotated until its bytes past tail are truncated and the cut
// fdatasync'd (or the journal is broken, which blocks the same until the
// clean-up succeeds).
type journal struct {
	fs       safefile.FS
	dir      string
	log      *slog.Logger
	segBytes int64
	now      func() time.Time // for the clean-up's back-off (tests set it before use)

	gcMu sync.Mutex // one segment deletion at a time

	mu        sync.Mutex
	cond      *sync.Cond
	segs      []*segment // oldest first; the active one (if any) last
	active    *segment   // nil until the first append (or after Close)
	next      uint64     // number of the next segment
	tail      int64      // where the next record goes in active
	syncedOff int64      // the durable length of active
	open      *batch     // records written since the last fdatasync started; nil: none
	inflight  *batch     // the records a leader's fdatasync covers
	syncing   bool       // a leader's fdatasync is running
	cutting   bool       // a failed write's bytes past tail are not cut back yet
	broken    error      // the clean-up's last error; nil while the journal works
	retryAt   time.Time  // when a broken journal's clean-up may run again
	backoff   time.Duration
}

func newJournal(fsys safefile.FS, dir string, log *slog.Logger, segBytes int64) *journal {
	j := &journal{fs: fsys, dir: dir, log: log, segBytes: segBytes, next: 1, now: time.Now}
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
		if j.cutting {
			j.cond.Wait()
			continue
		}
		if j.broken != nil && !j.retryLocked() {
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
		j.writeFailedLocked(seg, err)
		return nil, 0, err
	}
	j.tail += int64(len(b))
	if j.open == nil {
		j.open = &batch{}
	}
	bt := j.open
	if msg {
		seg.live++
	}
	if err := j.waitLocked(bt); err != nil {
		if msg {
			seg.live--
		}
		return nil, 0, err
	}
	return seg, off, nil
}

// writeFailedLocked cuts back what a failed WriteAt to seg at the tail
// may have left past it (part of the record: a short write on a full
// disk). Until the cut is done nothing else is written, synced or
// rotated: a record written at the same tail over the first bytes of this
// one would leave the rest of them after its end, where a crafted body
// would read as records. A leader's fdatasync under way settles first (it
// may fail and cut back further itself). The cut keeps the segment: a
// disk that stays full costs no new file per failed Enqueue.
func (j *journal) writeFailedLocked(seg *segment, err error) {
	j.cutting = true
	for j.syncing {
		j.cond.Wait()
	}
	j.cutting = false
	defer j.cond.Broadcast()
	if j.broken != nil || j.active != seg {
		return // a failure meanwhile: the clean-up cuts to the durable length
	}
	j.log.Warn("spool: journal write failed; its bytes past the tail are cut back",
		"segment", seg.path, "tail", j.tail, "err", err)
	cerr := seg.f.Truncate(j.tail)
	if cerr == nil {
		cerr = seg.f.Datasync()
	}
	if cerr != nil {
		j.failLocked(cerr)
		return
	}
	// That fdatasync covered every record written before the failed one.
	if j.open != nil {
		j.open.done = true
		j.open = nil
	}
	j.syncedOff = j.tail
}

// waitLocked waits until bt is settled: nil once an fdatasync that
// started after its records were written succeeded, the error if a
// failure took them.
func (j *journal) waitLocked(bt *batch) error {
	for !bt.done {
		if j.syncing || j.cutting {
			j.cond.Wait()
			continue
		}
		// Lead: one fdatasync for every record written so far (bt is the
		// open batch: nothing else is unsettled with no leader). No
		// write's cut-back, rotation or clean-up runs while syncing is set.
		j.syncing = true
		j.inflight, j.open = j.open, nil
		off, seg := j.tail, j.active
		j.mu.Unlock()
		err := seg.f.Datasync()
		j.mu.Lock()
		j.syncing = false
		if err == nil {
			j.inflight.done = true
			j.inflight = nil
			j.syncedOff = max(j.syncedOff, off)
		} else {
			j.failLocked(err)
		}
		j.cond.Broadcast()
	}
	return bt.err
}

// settleLocked fails every record not covered by a successful fdatasync
// with err.
func (j *journal) settleLocked(err error) {
	for _, bt := range []*batch{j.inflight, j.open} {
		if bt != nil {
			bt.done, bt.err = true, err
		}
	}
	j.inflight, j.open = nil, nil
}

// failLocked settles every record not covered by a successful fdatasync
// as failed with err, and cuts the active segment back to its durable
// length (truncate, fdatasync), so that nothing of a failed record can
// replay. The segment stays the active one: what is below its durable
// length was fdatasync'd before. If the cut fails, the journal is broken
// until a retry succeeds (retryLocked). No leader is syncing.
func (j *journal) failLocked(err error) {
	j.settleLocked(err)
	j.log.Error("spool: journal write or fdatasync failed; records not yet synced fail, the tail is cut back",
		"segment", j.active.path, "durable_bytes", j.syncedOff, "lost_bytes", j.tail-j.syncedOff, "err", err)
	j.tail = j.syncedOff
	if cerr := j.cutLocked(); cerr != nil {
		j.broken = cerr
		j.backoff = journalRetryMin
		j.retryAt = j.now().Add(j.backoff)
		j.log.Error("spool: journal broken: the failed tail could not be cut back; new messages go to msg/ until a retry succeeds",
			"segment", j.active.path, "retry_in", j.backoff, "err", cerr)
	}
	j.cond.Broadcast()
}

// cutLocked truncates the active segment to its durable length and
// fdatasyncs it.
func (j *journal) cutLocked() error {
	a := j.active
	if err := a.f.Truncate(j.syncedOff); err != nil {
		return err
	}
	return a.f.Datasync()
}

// retryLocked runs the clean-up of a broken journal again when its
// back-off has passed, and says whether the journal works now. Nothing is
// unsettled while it is broken (failLocked failed it all), and nothing
// has been written since.
func (j *journal) retryLocked() bool {
	if j.broken == nil {
		return true
	}
	if j.active == nil { // not reached: closeIdle keeps a broken journal's segment
		j.broken = nil
		return true
	}
	if j.syncing || j.cutting || j.now().Before(j.retryAt) {
		return false
	}
	if err := j.cutLocked(); err != nil {
		j.broken = err
		j.backoff = min(2*j.backoff, journalRetryMax)
		j.retryAt = j.now().Add(j.backoff)
		j.log.Warn("spool: journal clean-up failed again; the journal stays broken",
			"segment", j.active.path, "retry_in", j.backoff, "err", err)
		return false
	}
	j.broken = nil
	j.log.Info("spool: journal clean-up done; the journal takes messages again",
		"segment", j.active.path, "durable_bytes", j.syncedOff)
	j.cond.Broadcast()
	return true
}

// rotateLocked makes a new segment the active one: the active one is cut
// to its tail and fdatasync'd completely first (if anything in it is not
// yet), then the new file is created and the journal directory fsync'd,
// before any record is written to it. On error the active segment stays
// (and may be broken: failLocked). No leader is syncing, no cut is
// pending, the journal is not broken.
func (j *journal) rotateLocked() error {
	if a := j.active; a != nil && j.open != nil {
		// The truncate is belt and braces: nothing is past the tail
		// (writeFailedLocked), and nothing past it may become durable.
		err := a.f.Truncate(j.tail)
		if err == nil {
			err = a.f.Datasync()
		}
		if err != nil {
			j.failLocked(err) // cuts back, or breaks the journal
			return err
		}
		j.open.done = true
		j.open = nil
		j.syncedOff = j.tail
	}
	num := j.next
	if num == 0 || num > maxSegmentNum {
		// Replay takes no name above maxSegmentNum: a segment made with
		// one would be skipped at the next Open, and what it held lost.
		return fmt.Errorf("%w: segment number %d above %d", errJournalBroken, num, uint64(maxSegmentNum))
	}
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

// ready is brokenErr after a retry of the clean-up if its back-off has
// passed (Ready): a journal that a transient fault broke is in service
// again once the fault is gone, with or without appends.
func (j *journal) ready() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.retryLocked()
	return j.broken
}

// closeIdle closes the active segment's descriptor when nothing is in
// flight (Spool.Close); a later append (a Complete during a shutdown)
// starts a new segment. A broken journal keeps it: its tail is still to
// be cut back, and the segment must not be left with it.
func (j *journal) closeIdle() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if a := j.active; a != nil && !j.syncing && !j.cutting && j.open == nil && j.broken == nil {
		a.f.Close()
		a.f = nil
		j.active = nil
	}
}
