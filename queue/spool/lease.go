package spool

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// errLeaseLost is returned by Reschedule and Complete for a Message whose
// lease has already ended (it was rescheduled or completed before).
var errLeaseLost = errors.New("spool: message is not leased (lease already ended)")

// errCorruptEnvelope marks an envelope file that was read but cannot be
// used; such a message is quarantined.
var errCorruptEnvelope = errors.New("corrupt envelope")

// spoolRecord is what an envelope file holds: the Envelope, and the
// spool's own bookkeeping of claims next to it (never shown to the holder
// of a lease, so a Reschedule cannot change it).
type spoolRecord struct {
	*queue.Envelope
	// LeaseUntil is written by a claim and cleared by Reschedule: found set
	// at Open, the claim never ended (the process died during the
	// delivery), and the message is due no earlier than this.
	LeaseUntil time.Time `json:"lease_until,omitzero"`
	// Crashes counts the claims of this message that never ended since
	// its last Reschedule (crashed deliveries in a row).
	Crashes int `json:"crashes,omitempty"`
}

// spoolEntry is the in-memory index record of one committed message.
type spoolEntry struct {
	id     string
	next   time.Time // due time, see dueAt
	leased bool
	// crashed: Open found a claim of this message that never ended;
	// the next claim counts it in spoolRecord.Crashes.
	crashed bool
	seq     uint64 // lease generation; a Token is valid while it matches
	index   int    // position in the due heap, -1 when not in it
}

// entryHeap orders the messages that are not leased by due time (see
// dueAt), oldest first, and by ID (which sorts by arrival) among equals.
type entryHeap []*spoolEntry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].id < h[j].id
}
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *entryHeap) Push(x any) {
	e := x.(*spoolEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*h = old[:len(old)-1]
	return e
}

// release puts e back among the messages that can be leased and wakes the
// Lease calls that wait. s.mu is held.
func (s *Spool) release(e *spoolEntry) {
	e.leased = false
	heap.Push(&s.due, e)
	close(s.kick)
	s.kick = make(chan struct{})
}

// Lease blocks until a message is due and not leased, then claims it: the
// envelope is rewritten with Attempts incremented before Lease returns
// (claim before deliver), so that a crash during delivery is counted.
// Due messages are handed out oldest first, by NextAttempt (by Arrival for
// a message never rescheduled).
//
// Lease returns ctx.Err() when ctx is done and ErrClosed once the spool is
// closed. An error writing the claim is returned as is and the message stays
// due; the caller should pause before it leases again. A full file system
// is the exception: the message is handed out with its lease in memory
// only, so that deliveries can free space.
func (s *Spool) Lease(ctx context.Context) (*queue.Message, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, wait, kick, err := s.nextDue()
		if err != nil {
			return nil, err
		}
		if e != nil {
			m, err := s.claim(e)
			if m == nil && err == nil {
				continue // the message was unreadable and is gone; next one
			}
			return m, err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-s.done:
			timer.Stop()
			return nil, queue.ErrClosed
		case <-kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// nextDue takes the first due message off the heap and marks it leased, or
// says how long to wait and which channel announces a change.
func (s *Spool) nextDue() (e *spoolEntry, wait time.Duration, kick chan struct{}, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, nil, queue.ErrClosed
	}
	wait = s.poll
	if len(s.due) > 0 {
		top := s.due[0]
		until := top.next.Sub(s.now())
		if until <= 0 {
			heap.Pop(&s.due)
			top.leased = true
			top.seq++
			return top, 0, nil, nil
		}
		wait = min(wait, until)
	}
	return nil, wait, s.kick, nil
}

// claim reads e's envelope, increments Attempts, writes the lease deadline
// and, when Open found an unfinished earlier claim, the crash count,
// and writes it back before the message is handed out (claim before
// deliver). It returns (nil, nil) when the message was set aside instead
// (unusable envelope, too many crashed deliveries, or vanished) and left
// the index.
func (s *Spool) claim(e *spoolEntry) (*queue.Message, error) {
	rec, err := s.readRecord(e.id)
	switch {
	case errors.Is(err, errCorruptEnvelope):
		return nil, s.setAside(e, err, false)
	case errors.Is(err, fs.ErrNotExist):
		s.log.Error("spool: envelope vanished from the spool", "id", e.id, "err", err)
		s.mu.Lock()
		delete(s.entries, e.id)
		s.mu.Unlock()
		return nil, nil
	case err != nil:
		// Perhaps transient (EMFILE, EIO, EACCES): keep the message, retry
		// later.
		s.retryLater(e)
		return nil, fmt.Errorf("spool: claim %s: %w", e.id, err)
	}
	s.mu.Lock()
	crashed := e.crashed
	s.mu.Unlock()
	if crashed {
		rec.Crashes++
		if rec.Crashes >= s.maxCrashes {
			return nil, s.setAside(e, fmt.Errorf("%d deliveries of this message ended in a crash of the process (limit %d)",
				rec.Crashes, s.maxCrashes), true)
		}
	}
	rec.Attempts++
	rec.LeaseUntil = s.now().Add(s.leaseTimeout)
	if err := s.writeRecord(rec); err != nil {
		if !safefile.IsNoSpace(err) {
			s.mu.Lock()
			s.release(e)
			s.mu.Unlock()
			return nil, fmt.Errorf("spool: claim %s: %w", e.id, err)
		}
		// A full file system: delivering and completing messages is what
		// frees space, so the message is handed out with its lease held
		// in memory only (a crash now makes it due at once after the
		// restart, with this claim uncounted). Refusing would leave the
		// relay neither accepting nor delivering until an operator acts.
		s.log.Warn("spool: file system full; claim not written, message handed out with its lease in memory only", "id", e.id, "err", err)
	}
	s.mu.Lock()
	e.crashed = false // counted (on disk unless the file system is full)
	seq := e.seq
	s.mu.Unlock()
	s.log.Debug("spool: leased", "id", e.id, "attempts", rec.Attempts)
	return &queue.Message{Envelope: rec.Envelope, Token: &spoolLease{id: e.id, seq: seq}}, nil
}

// setAside quarantines the leased entry e and drops it from the index; when
// the files cannot be moved (a transient error) the message stays and is
// retried later. It returns nil when Lease should go on with the next
// message.
func (s *Spool) setAside(e *spoolEntry, reason error, crashes bool) error {
	if err := s.quarantine(e.id, reason); err != nil {
		s.retryLater(e)
		return fmt.Errorf("spool: quarantine %s: %w", e.id, err)
	}
	if crashes {
		s.stats.crashQuarantined.Add(1)
	}
	s.mu.Lock()
	delete(s.entries, e.id)
	s.mu.Unlock()
	return nil
}

// retryLater makes the leased entry e due again after spoolErrorRetry.
func (s *Spool) retryLater(e *spoolEntry) {
	s.mu.Lock()
	e.next = s.now().Add(spoolErrorRetry)
	s.release(e)
	s.mu.Unlock()
}

// readRecord loads and checks the envelope file of message id. An error
// wrapping errCorruptEnvelope means the file was read and cannot be used
// (not JSON, another ID, or an envelope failing Envelope.Validate); any
// other error is the file system's and may be transient.
func (s *Spool) readRecord(id string) (*spoolRecord, error) {
	data, err := s.fs.ReadFile(s.envelopePath(id))
	if err != nil {
		return nil, err
	}
	return decodeRecord(id, data)
}

// decodeRecord decodes the envelope file of message id; every error wraps
// errCorruptEnvelope.
func decodeRecord(id string, data []byte) (*spoolRecord, error) {
	rec := spoolRecord{Envelope: new(queue.Envelope)}
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptEnvelope, err)
	}
	if rec.ID != id {
		return nil, fmt.Errorf("%w: ID %q does not match its file name", errCorruptEnvelope, rec.ID)
	}
	if err := rec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", errCorruptEnvelope, err)
	}
	return &rec, nil
}

// dueAt is when env is due: its NextAttempt, or for a message never
// rescheduled its Arrival, so that due messages go out first come, first
// served and fresh mail does not overtake retries that are already due.
func dueAt(env *queue.Envelope) time.Time {
	if env.NextAttempt.IsZero() {
		return env.Arrival
	}
	return env.NextAttempt
}

// writeRecord replaces the envelope file of rec.ID atomically.
func (s *Spool) writeRecord(rec *spoolRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return safefile.WriteFileAtomic(s.fs, &s.dirs, s.tmpDir, s.envelopePath(rec.ID), append(data, '\n'))
}

// endLease checks that m still holds its lease and ends the lease's token,
// so that a second Reschedule or Complete with the same Message fails. The
// entry stays marked leased until the caller releases or removes it.
func (s *Spool) endLease(m *queue.Message) (*spoolEntry, error) {
	id, err := messageID(m)
	if err != nil {
		return nil, err
	}
	seq := m.Token.(*spoolLease).seq
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || !e.leased || e.seq != seq {
		return nil, fmt.Errorf("%w: %s", errLeaseLost, id)
	}
	e.seq++
	return e, nil
}

// Reschedule persists m.Envelope (per-recipient state included) with
// NextAttempt set to at, and ends the lease: the message is due again at
// at. If the envelope cannot be written, the lease ends all the same and
// the message is due at at with the envelope last written (the claim), so
// it is retried rather than lost; the error is returned.
func (s *Spool) Reschedule(ctx context.Context, m *queue.Message, at time.Time) error {
	if m == nil || m.Envelope == nil {
		return errors.New("spool: reschedule: nil message or envelope")
	}
	e, err := s.endLease(m)
	if err != nil {
		return err
	}
	if at.IsZero() {
		at = s.now()
	}
	env := m.Envelope.Clone()
	env.ID = e.id
	env.NextAttempt = at
	// The claim ends: LeaseUntil is cleared, and so is the crash count: a
	// delivery that ended shows the message does not kill the process, and
	// MaxDeliveryCrashes counts crashed deliveries in a row (as the SQS
	// backend, whose Reschedule sends a new message), lest crashes or
	// shutdowns spread over a message's life quarantine it.
	werr := s.writeRecord(&spoolRecord{Envelope: env})

	s.mu.Lock()
	e.next = at
	s.release(e)
	s.mu.Unlock()
	if werr != nil {
		return fmt.Errorf("spool: reschedule %s: %w", e.id, werr)
	}
	return nil
}

// Complete removes m from the spool: the envelope first (the commit point:
// without it the message no longer exists), then the body, then the
// directory is fsync'd. If the envelope cannot be removed, the message
// stays queued and is due again after a minute.
func (s *Spool) Complete(ctx context.Context, m *queue.Message) error {
	e, err := s.endLease(m)
	if err != nil {
		return err
	}
	if err := safefile.RemoveIfExists(s.fs, s.envelopePath(e.id)); err != nil {
		s.mu.Lock()
		e.next = s.now().Add(spoolErrorRetry)
		s.release(e)
		s.mu.Unlock()
		return fmt.Errorf("spool: complete %s: %w", e.id, err)
	}
	// Until the body is gone, an Enqueue of the same ID (a report queued
	// again) waits as for another Enqueue: its new body must not be the
	// one removed below.
	removing := make(chan struct{})
	s.mu.Lock()
	delete(s.entries, e.id)
	s.enqueuing[e.id] = removing
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.enqueuing, e.id)
		close(removing)
		s.mu.Unlock()
	}()
	if err := safefile.RemoveIfExists(s.fs, s.bodyPath(e.id)); err != nil {
		// Harmless: the next Open removes it as an orphan.
		s.log.Warn("spool: cannot remove body of completed message", "id", e.id, "err", err)
	}
	if err := s.dirs.Sync(s.msgDir); err != nil {
		return fmt.Errorf("spool: complete %s: %w", e.id, err)
	}
	return nil
}
