package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// Spool layout under the spool directory:
//
//	msg/<id>.msg         the message: header, two lease slots, the body
//	                     exactly as received, the envelope as enqueued
//	                     (record.go); its link into msg/ is the commit
//	msg/<id>.env         the envelope written by the last Reschedule (JSON,
//	                     replaced atomically); it supersedes the one in
//	                     <id>.msg when it names that file's instance
//	msg/<id>.eml         a body of the layout before issue 10 (beside its
//	                     <id>.env): Open migrates such a message to <id>.msg
//	tmp/                 temporary files, removed at startup
//	quarantine/          messages set aside: envelopes that cannot be used
//	                     (unparseable, or failing Envelope.Validate) and
//	                     messages whose deliveries crashed the process
//	                     MaxDeliveryCrashes times; <id>.msg is moved first.
//	                     Kept for an operator, never deleted by edgerelay
//	journal/<n>.log      the journal (journal.go): segments of records (MSG,
//	                     CLAIM, END) appended with group commit; the
//	                     messages up to JournalMaxBytes live there until
//	                     Complete, or a Reschedule moves them to msg/
//	quarantine/journal@<n>.log.at-<offset>
//	                     the unreadable rest of a damaged segment
//	lock                 flock'd while a process has the spool open
const (
	spoolMsgDir        = "msg"
	spoolTmpDir        = "tmp"
	spoolQuarantineDir = "quarantine"
	spoolLockFile      = "lock"
	spoolJournalDir    = "journal"

	msgExt      = ".msg"
	envelopeExt = ".env"
	bodyExt     = ".eml" // the layout before issue 10
)

// DefaultPollInterval is the longest an idle Lease sleeps before it
// looks at the due times again when no Enqueue or Reschedule woke it.
const DefaultPollInterval = 30 * time.Second

// DefaultLeaseTimeout is how long a claimed message stays hidden after
// a crash of the process that claimed it: a restarted spool makes it due
// again only once this has passed since the claim (as an SQS visibility
// timeout), so that a message whose delivery kills the process is not
// retried in a tight crash loop.
const DefaultLeaseTimeout = time.Minute

// spoolErrorRetry is how long a message whose Reschedule or Complete could
// not be written waits before it is handed out again.
const spoolErrorRetry = time.Minute

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives the spool's log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock that decides whether a message is due and stamps
	// Arrival; nil means time.Now. Tests pass a fake clock.
	Now func() time.Time
	// PollInterval bounds how long an idle Lease sleeps before it re-checks
	// the due times by itself. Enqueue and Reschedule wake waiting Lease
	// calls at once, so this only matters when the clock jumps (or a fake
	// clock is advanced). Zero means DefaultPollInterval.
	PollInterval time.Duration
	// LeaseTimeout is written with every claim: after a crash the message
	// is due again only when it has passed. Zero means
	// DefaultLeaseTimeout. A live process holds its leases until
	// Reschedule or Complete, however long the delivery takes.
	LeaseTimeout time.Duration
	// MaxDeliveryCrashes is how many claims of a message in a row may end
	// without Reschedule or Complete (crashed deliveries; a Reschedule
	// starts the count again) before the message is
	// moved to quarantine instead of being leased again, with an ERROR log
	// and Stats.CrashQuarantined counted. Zero means
	// queue.DefaultMaxDeliveryCrashes.
	MaxDeliveryCrashes int

	// JournalMaxBytes is the largest message (body, envelope and record
	// header) that Enqueue appends to the journal (group commit) instead
	// of writing it as one file in msg/. Zero means DefaultJournalMaxBytes;
	// a negative value turns the journal off for new messages (those
	// already in it are still delivered); at most 16 MiB. Either way
	// Enqueue returns nil only once the message is on stable storage.
	JournalMaxBytes int
	// JournalSegmentBytes is the size at which the journal starts a new
	// segment file. Zero means DefaultJournalSegmentBytes.
	JournalSegmentBytes int64

	// fs replaces the real file system in tests (crash points).
	fs safefile.FS
}

// Spool is the local, file-based Queue backend: the embedded default. A
// message up to JournalMaxBytes is a record in the journal (group commit)
// until its Complete, or until a Reschedule moves it to msg/; a larger one
// is one file (body and envelope) in one directory, plus an envelope file
// once it has been rescheduled, and an Enqueue commits with the link of its
// message file, after its data is durable.
//
// Invariants, each tried at every file operation by crash_test.go:
//   - a message whose Enqueue returned nil survives any crash, and is
//     removed only by Complete; a message file is never deleted otherwise,
//     only moved to quarantine (before its envelope file) when it cannot
//     be used;
//   - a message file in msg/ always holds its whole body and envelope;
//   - leases live in the memory of the process that holds the spool open
//     (a lock file keeps a second process out), and every claim writes its
//     lease deadline, so after a crash a message whose delivery was under
//     way is due again when that lease ends (at-least-once, never twice at
//     once, no crash loop); a message whose deliveries crashed the process
//     MaxDeliveryCrashes times is quarantined;
//   - only read errors about the content quarantine; transient ones (EIO,
//     EMFILE, EACCES) leave the message in place to be retried.
//
// A Spool is safe for concurrent use. Enqueues of different messages write
// and fsync their own files in parallel; the mutex guards only the
// in-memory index.
type Spool struct {
	dir, msgDir, tmpDir, qDir string
	jDir                      string
	j                         *journal  // the append-only log (journal.go)
	jmax                      int       // JournalMaxBytes; 0: journal off for Enqueue
	bufs                      sync.Pool // *[]byte of jmax+1 bytes
	log                       *slog.Logger
	now                       func() time.Time
	poll                      time.Duration
	leaseTimeout              time.Duration
	maxCrashes                int
	unlock                    func() error
	fs                        safefile.FS
	dirs                      safefile.DirSyncer // group commit of directory fsyncs
	stats                     spoolStats

	mu        sync.Mutex
	entries   map[string]*spoolEntry   // every committed message, leased or not
	due       entryHeap                // the messages that are not leased
	enqueuing map[string]chan struct{} // IDs with an Enqueue in flight; closed when it ends
	ends      map[endKey]*pendingEnd   // ENDs of MSGs moved out of the journal, not yet written
	endMu     sync.Mutex               // one flushEnds at a time
	endTimer  *time.Timer              // runs flushEnds while ENDs are pending
	endRetry  time.Duration            // its delay: spoolErrorRetry (tests shorten it)
	started   bool                     // Open has succeeded
	kick      chan struct{}            // closed (and replaced) when due may change
	adminMu   sync.Mutex               // one operator action at a time (admin.go)
	closed    bool
	done      chan struct{}
}

// spoolLease is the Token of a Message leased from a Spool.
type spoolLease struct {
	id  string
	seq uint64
}

// Open opens (creating it if needed) the spool in dir. It takes the
// spool's lock, removes temporary files and the leftovers of interrupted
// writes (never a file whose ID is in quarantine: that move is completed
// instead), migrates messages of the layout before issue 10, moves
// messages that cannot be used (unparseable, failing Envelope.Validate, or
// cut short) to dir/quarantine, and indexes the remaining messages; each
// becomes due at its NextAttempt, or when the lease of an interrupted claim
// ends, whichever is later.
func Open(dir string, o Options) (*Spool, error) {
	s := &Spool{
		dir:       dir,
		msgDir:    filepath.Join(dir, spoolMsgDir),
		tmpDir:    filepath.Join(dir, spoolTmpDir),
		qDir:      filepath.Join(dir, spoolQuarantineDir),
		jDir:      filepath.Join(dir, spoolJournalDir),
		log:       o.Logger,
		now:       o.Now,
		poll:      o.PollInterval,
		fs:        o.fs,
		entries:   make(map[string]*spoolEntry),
		enqueuing: make(map[string]chan struct{}),
		ends:      make(map[endKey]*pendingEnd),
		endRetry:  spoolErrorRetry,
		kick:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	s.leaseTimeout = o.LeaseTimeout
	if s.leaseTimeout <= 0 {
		s.leaseTimeout = DefaultLeaseTimeout
	}
	s.maxCrashes = o.MaxDeliveryCrashes
	if s.maxCrashes <= 0 {
		s.maxCrashes = queue.DefaultMaxDeliveryCrashes
	}
	if s.fs == nil {
		s.fs = safefile.OS{}
	}
	s.dirs.FS = s.fs
	s.jmax = o.JournalMaxBytes
	switch {
	case s.jmax == 0:
		s.jmax = DefaultJournalMaxBytes
	case s.jmax < 0:
		s.jmax = 0
	case s.jmax > maxJournalMaxBytes:
		s.jmax = maxJournalMaxBytes
	}
	segBytes := o.JournalSegmentBytes
	if segBytes <= 0 {
		segBytes = DefaultJournalSegmentBytes
	}
	s.j = newJournal(s.fs, s.jDir, s.log, segBytes)
	s.j.now = s.now // the clean-up's back-off follows Options.Now
	for _, d := range []string{dir, s.msgDir, s.tmpDir, s.qDir, s.jDir} {
		if err := s.fs.MkdirAll(d); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	unlock, err := lockSpool(filepath.Join(dir, spoolLockFile))
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s.unlock = unlock
	if err := s.scan(); err != nil {
		unlock()
		return nil, fmt.Errorf("spool %s: %w", dir, err)
	}
	s.mu.Lock()
	s.started = true
	s.endRetryLocked() // ENDs that Open could not write
	s.mu.Unlock()
	s.log.Info("spool opened", "dir", dir, "messages", len(s.entries))
	return s, nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Len returns the number of messages in the spool, leased ones included.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *Spool) msgPath(id string) string      { return filepath.Join(s.msgDir, id+msgExt) }
func (s *Spool) envelopePath(id string) string { return filepath.Join(s.msgDir, id+envelopeExt) }
func (s *Spool) bodyPath(id string) string     { return filepath.Join(s.msgDir, id+bodyExt) }

// Body opens the body of m for reading: a reader over the body section of
// its message file, streamed from the file.
func (s *Spool) Body(ctx context.Context, m *queue.Message) (io.ReadCloser, error) {
	id, err := messageID(m)
	if err != nil {
		return nil, err
	}
	if jm := s.journalOf(id); jm != nil {
		return s.journalBody(id, jm)
	}
	f, err := s.fs.Open(s.msgPath(id))
	if err != nil {
		return nil, fmt.Errorf("spool: body of %s: %w", id, err)
	}
	size, err := f.Size()
	if err == nil {
		b := make([]byte, bodyOffset)
		var h msgHeader
		if _, err = f.ReadAt(b, 0); err == nil {
			if h, err = decodeHeader(b, size); err == nil {
				return bodyReader{io.NewSectionReader(f, h.bodyOff, h.bodyLen), f}, nil
			}
		}
	}
	f.Close()
	return nil, fmt.Errorf("spool: body of %s: %w", id, err)
}

// bodyReader reads the body section of an open message file.
type bodyReader struct {
	*io.SectionReader
	io.Closer
}

// Close makes Lease calls in progress, and later Lease and Enqueue calls,
// return ErrClosed, and releases the spool's lock. Reschedule and Complete
// still work after Close, so that deliveries in flight during a shutdown
// can record their outcome.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	if s.endTimer != nil {
		s.endTimer.Stop()
		s.endTimer = nil
	}
	s.mu.Unlock()
	s.j.closeIdle()
	return s.unlock()
}

// messageID returns the spool ID that m's lease token refers to.
func messageID(m *queue.Message) (string, error) {
	if m == nil {
		return "", errors.New("spool: nil message")
	}
	tok, ok := m.Token.(*spoolLease)
	if !ok || tok == nil {
		return "", errors.New("spool: message was not leased from a spool")
	}
	return tok.id, nil
}
