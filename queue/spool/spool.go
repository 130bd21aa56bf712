// Package spool is the local, file-based backend of queue.Queue: the
// embedded default. It owns the spool directory (the layout below), the
// write order that makes an Enqueue durable, the leases of the process
// that holds the spool open, the rescan at start-up (orphans removed, what
// cannot be read quarantined) and its readiness check (Ready).
//
// Write order: the body file is written and fsync'd, its directory is
// fsync'd, then the envelope is written to a temporary name, fsync'd and
// linked (or renamed) into place: the envelope's name is the commit. The
// helpers that keep that order are in internal/safefile; the
// invariants, each tried at every file operation by crash_test.go, are
// listed on Spool.
package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// Spool layout under the spool directory:
//
//	msg/<id>.eml         the message body, exactly as received
//	msg/<id>.env         the envelope, JSON; its presence is the commit
//	tmp/                 temporary files, removed at startup
//	quarantine/          messages set aside: envelopes that cannot be used
//	                     (unparseable, or failing Envelope.Validate) and
//	                     messages whose deliveries crashed the process
//	                     MaxDeliveryCrashes times; the body is moved first.
//	                     Kept for an operator, never deleted by edgerelay
//	lock                 flock'd while a process has the spool open
const (
	spoolMsgDir        = "msg"
	spoolTmpDir        = "tmp"
	spoolQuarantineDir = "quarantine"
	spoolLockFile      = "lock"

	bodyExt     = ".eml"
	envelopeExt = ".env"
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

	// fs replaces the real file system in tests (crash points).
	fs safefile.FS
}

// Spool is the local, file-based Queue backend: the embedded default. Every
// message is two files in one directory; an Enqueue commits with the link
// of its envelope file, after the body is durable.
//
// Invariants, each tried at every file operation by crash_test.go:
//   - a message whose Enqueue returned nil survives any crash, and is
//     removed only by Complete; an envelope is never deleted, only moved
//     to quarantine (body first) when it cannot be used;
//   - an envelope in msg/ always has its whole body beside it;
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
	kick      chan struct{}            // closed (and replaced) when due may change
	closed    bool
	done      chan struct{}
}

// spoolLease is the Token of a Message leased from a Spool.
type spoolLease struct {
	id  string
	seq uint64
}

// Open opens (creating it if needed) the spool in dir. It takes the
// spool's lock, removes temporary files and orphan bodies left by an
// interrupted Enqueue (never a body whose ID is in quarantine: that move is
// completed instead), moves envelopes that cannot be used (unparseable,
// failing Envelope.Validate, or without body) to dir/quarantine, and
// indexes the remaining messages; each becomes due at its NextAttempt, or
// when the lease of an interrupted claim ends, whichever is later.
func Open(dir string, o Options) (*Spool, error) {
	s := &Spool{
		dir:       dir,
		msgDir:    filepath.Join(dir, spoolMsgDir),
		tmpDir:    filepath.Join(dir, spoolTmpDir),
		qDir:      filepath.Join(dir, spoolQuarantineDir),
		log:       o.Logger,
		now:       o.Now,
		poll:      o.PollInterval,
		fs:        o.fs,
		entries:   make(map[string]*spoolEntry),
		enqueuing: make(map[string]chan struct{}),
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
	for _, d := range []string{dir, s.msgDir, s.tmpDir, s.qDir} {
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

func (s *Spool) bodyPath(id string) string     { return filepath.Join(s.msgDir, id+bodyExt) }
func (s *Spool) envelopePath(id string) string { return filepath.Join(s.msgDir, id+envelopeExt) }

// Enqueue stores a message durably: the body is streamed to a temporary
// file, fsync'd and linked into place, the directory is fsync'd, and then
// the envelope is written the same way; the envelope's link is the commit.
// On error everything this call wrote is removed again, and nothing that
// another Enqueue committed is ever replaced or removed.
//
// Enqueue refuses an envelope that fails Envelope.Validate
// (ErrInvalidEnvelope), and reports a full file system or exhausted quota
// as ErrInsufficientStorage (the next Enqueue tries again: nothing to
// reset).
//
// Enqueue sets env.ID (a NewID when empty), env.Size and env.Arrival (when
// zero). A zero NextAttempt makes the message due at once. When env.ID is
// preset and that message is already in the spool, Enqueue writes nothing
// and returns the ID, so that a retried Enqueue (of an NDR, say) after a
// crash does not store the message twice; while another Enqueue of the same
// ID is in flight, it waits for that one's outcome (issue 8 item 29).
func (s *Spool) Enqueue(ctx context.Context, env *queue.Envelope, body io.Reader) (string, error) {
	if env == nil {
		return "", errors.New("spool: enqueue: nil envelope")
	}
	if err := env.Validate(); err != nil {
		return "", fmt.Errorf("spool: enqueue: %w", err)
	}
	if env.ID == "" {
		env.ID = queue.NewID()
	} else if !queue.ValidID(env.ID) {
		return "", fmt.Errorf("spool: enqueue: invalid message ID %q", env.ID)
	}
	id := env.ID

	var mine chan struct{}
	for mine == nil {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return "", queue.ErrClosed
		}
		if s.entries[id] != nil {
			s.mu.Unlock()
			s.log.Info("spool: message already queued; enqueue skipped", "id", id)
			return id, nil
		}
		if other := s.enqueuing[id]; other != nil {
			s.mu.Unlock()
			select {
			case <-other: // look again: committed (no-op) or failed (our turn)
			case <-ctx.Done():
				return "", fmt.Errorf("spool: enqueue %s: %w", id, ctx.Err())
			}
			continue
		}
		mine = make(chan struct{})
		s.enqueuing[id] = mine
		s.mu.Unlock()
	}
	defer func() {
		s.mu.Lock()
		delete(s.enqueuing, id)
		close(mine)
		s.mu.Unlock()
	}()

	if env.Arrival.IsZero() {
		env.Arrival = s.now()
	}
	if err := s.write(ctx, env, body); err != nil {
		if safefile.IsNoSpace(err) {
			s.stats.noSpace.Add(1)
			err = fmt.Errorf("%w: %w", queue.ErrInsufficientStorage, err)
		}
		return "", fmt.Errorf("spool: enqueue %s: %w", id, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[id] = &spoolEntry{id: id, next: dueAt(env)}
	s.release(s.entries[id])
	s.log.Debug("spool: enqueued", "id", id, "size", env.Size, "recipients", len(env.Recipients))
	return id, nil
}

// write stores body and then env. It leaves nothing of its own behind on
// error, and never touches a file it did not create. The caller holds the
// in-process claim on env.ID (s.enqueuing).
func (s *Spool) write(ctx context.Context, env *queue.Envelope, body io.Reader) error {
	bodyPath, envPath := s.bodyPath(env.ID), s.envelopePath(env.ID)
	f, err := s.fs.CreateTemp(s.tmpDir, env.ID+bodyExt+".*.tmp")
	if err != nil {
		return err
	}
	n, err := io.Copy(f, ctxReader{ctx, body})
	if err != nil {
		f.Close()
		s.fs.Remove(f.Name())
		return fmt.Errorf("write body: %w", err)
	}
	// Body first, durable, under its final name: an envelope must never
	// point at a body that a crash could lose.
	if err := s.commitBody(f, bodyPath, envPath); err != nil {
		return fmt.Errorf("commit body: %w", err)
	}
	env.Size = n
	rec := spoolRecord{Envelope: env}
	data, err := json.Marshal(rec)
	var created bool
	if err == nil {
		var tf safefile.TempFile
		if tf, err = safefile.WriteTemp(s.fs, s.tmpDir, filepath.Base(envPath), append(data, '\n')); err == nil {
			created, err = safefile.CommitNew(s.fs, &s.dirs, tf, envPath)
		}
	}
	if err != nil {
		// The link may have happened before the failing directory fsync;
		// remove what this call made so that nothing half-committed stays.
		if created {
			s.fs.Remove(envPath)
		}
		s.fs.Remove(bodyPath)
		s.dirs.Sync(s.msgDir)
		return fmt.Errorf("commit envelope: %w", err)
	}
	return nil
}

// commitBody links the written body f to bodyPath. A body already there
// without an envelope is the leftover of an Enqueue whose cleanup failed
// (only one Enqueue of an ID runs at a time): it is replaced. With an
// envelope it belongs to a committed message and is never touched.
func (s *Spool) commitBody(f safefile.TempFile, bodyPath, envPath string) error {
	tmp := f.Name()
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Link(tmp, bodyPath)
		if errors.Is(err, fs.ErrExist) {
			if _, serr := s.fs.Lstat(envPath); errors.Is(serr, fs.ErrNotExist) {
				s.log.Warn("spool: replacing a leftover body without envelope", "file", bodyPath)
				err = s.fs.Rename(tmp, bodyPath)
			}
		}
	}
	s.fs.Remove(tmp)
	if err != nil {
		return err
	}
	if err := s.dirs.Sync(s.msgDir); err != nil {
		s.fs.Remove(bodyPath)
		return err
	}
	return nil
}

// Body opens the body of m for reading.
func (s *Spool) Body(ctx context.Context, m *queue.Message) (io.ReadCloser, error) {
	id, err := messageID(m)
	if err != nil {
		return nil, err
	}
	f, err := s.fs.Open(s.bodyPath(id))
	if err != nil {
		return nil, fmt.Errorf("spool: body of %s: %w", id, err)
	}
	return f, nil
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
	s.mu.Unlock()
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

// ctxReader stops a body copy once ctx is done, so that a client that went
// away does not keep the spool writing.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
