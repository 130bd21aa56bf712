package spool

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// Enqueue stores a message durably, in one file: the body is streamed to a
// temporary file and the envelope appended, the header written in place,
// the file fsync'd and linked into msg/, and msg/ fsync'd (shared with
// concurrent Enqueues); the link is the commit, and Enqueue returns nil
// only after that directory fsync.
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
	flushed := false
	for mine == nil {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return "", queue.ErrClosed
		}
		if e := s.entries[id]; e != nil && (e.end == nil || e.end.complete == nil) {
			s.mu.Unlock()
			s.log.Info("spool: message already queued; enqueue skipped", "id", id)
			return id, nil
		}
		if s.endPendingFor(id) {
			// An earlier message of this ID left the journal without its
			// END (quarantined, or completed from msg/): a second MSG of
			// the ID must not be written before it (replay would pair
			// them wrongly), nor a file that its Complete would remove.
			s.mu.Unlock()
			if flushed {
				return "", fmt.Errorf("spool: enqueue %s: the END of an earlier message of this ID cannot be written yet; try again later", id)
			}
			flushed = true
			s.flushEnds()
			continue
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
	if s.jmax > 0 {
		bp := s.journalBuf()
		defer s.bufs.Put(bp)
		done, rest, err := s.enqueueJournal(ctx, env, body, *bp)
		if done && err == nil {
			// Indexed by enqueueJournal already; indexing it again here
			// could bring back a message that a Lease and Complete ended
			// meanwhile, and make a waiting Enqueue of its ID a no-op.
			s.log.Debug("spool: enqueued", "id", id, "size", env.Size, "recipients", len(env.Recipients), "journal", true)
			return id, nil
		}
		if done {
			return s.enqueued(id, env, err)
		}
		body = rest
	}
	return s.enqueued(id, env, s.write(ctx, env, body))
}

// enqueued finishes an Enqueue whose write ended with err: the error
// (ENOSPC as ErrInsufficientStorage), or the message indexed (a journal
// message is indexed by enqueueJournal, and does not come here).
func (s *Spool) enqueued(id string, env *queue.Envelope, err error) (string, error) {
	if err != nil {
		if safefile.IsNoSpace(err) {
			s.stats.noSpace.Add(1)
			err = fmt.Errorf("%w: %w", queue.ErrInsufficientStorage, err)
		}
		return "", fmt.Errorf("spool: enqueue %s: %w", id, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.entries[id] == nil {
		s.entries[id] = &spoolEntry{id: id, next: dueAt(env)}
		s.release(s.entries[id])
	}
	s.log.Debug("spool: enqueued", "id", id, "size", env.Size, "recipients", len(env.Recipients))
	return id, nil
}

// write stores the message in one file: a temporary file in tmp/ gets a
// blank header, the body (streamed), the envelope, then the header in
// place; it is fsync'd once and linked into msg/ (CommitNew: never over a
// file that exists), and msg/ is fsync'd (group commit). It leaves nothing
// of its own behind on error, and never touches a file it did not create.
// The caller holds the in-process claim on env.ID (s.enqueuing).
func (s *Spool) write(ctx context.Context, env *queue.Envelope, body io.Reader) error {
	return s.writeAs(ctx, env, body, newInstance())
}

// writeAs is write with the message file's instance given: a journal
// message moved to msg/ keeps its MSG's instance, so that Open can tell
// it (or its quarantine copy) from another message of the ID.
func (s *Spool) writeAs(ctx context.Context, env *queue.Envelope, body io.Reader, instance uint64) error {
	path := s.msgPath(env.ID)
	f, err := s.fs.CreateTemp(s.tmpDir, env.ID+msgExt+".*.tmp")
	if err != nil {
		return err
	}
	n, err := fillMessage(ctx, f, env, body, instance, leaseRec{})
	if err != nil {
		f.Close()
		s.fs.Remove(f.Name())
		return err
	}
	env.Size = n
	created, err := safefile.CommitNew(s.fs, &s.dirs, f, path)
	if err != nil {
		// The link may have happened before the failing directory fsync;
		// remove what this call made so that nothing half-committed stays.
		if created {
			s.fs.Remove(path)
			s.dirs.Sync(s.msgDir)
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// fillMessage writes a message file's content to f (not yet fsync'd) and
// returns the body's size: a blank header, the body, the envelope (with
// Size set), and the header in place. lease, when its seq is not 0, is
// written to its slot (a claim carried over by the migration of the layout
// before issue 10).
func fillMessage(ctx context.Context, f safefile.TempFile, env *queue.Envelope, body io.Reader, instance uint64, lease leaseRec) (int64, error) {
	if _, err := f.Write(make([]byte, bodyOffset)); err != nil {
		return 0, fmt.Errorf("write header: %w", err)
	}
	n, err := io.Copy(f, ctxReader{ctx, body})
	if err != nil {
		return 0, fmt.Errorf("write body: %w", err)
	}
	env.Size = n
	data, err := marshalEnvelope(env)
	if err != nil {
		return 0, err
	}
	return n, finishMessage(f, instance, n, data, lease)
}

// fillRaw is fillMessage with the envelope's bytes given as they are (a
// journal message copied to quarantine, its envelope perhaps unusable),
// keeping the journal record's instance.
func fillRaw(f safefile.TempFile, body io.Reader, envData []byte, instance uint64) (int64, error) {
	if _, err := f.Write(make([]byte, bodyOffset)); err != nil {
		return 0, fmt.Errorf("write header: %w", err)
	}
	n, err := io.Copy(f, body)
	if err != nil {
		return 0, fmt.Errorf("write body: %w", err)
	}
	return n, finishMessage(f, instance, n, envData, leaseRec{})
}

// finishMessage appends the envelope after a body of n bytes and writes
// the header (and lease, when its seq is not 0) in place.
func finishMessage(f safefile.TempFile, instance uint64, n int64, data []byte, lease leaseRec) error {
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write envelope: %w", err)
	}
	hdr := encodeHeader(msgHeader{instance: instance, bodyOff: bodyOffset, bodyLen: n,
		envOff: bodyOffset + n, envLen: int64(len(data))})
	if lease.seq != 0 {
		if _, err := f.WriteAt(encodeSlot(lease), slotOffset(lease.seq)); err != nil {
			return fmt.Errorf("write lease: %w", err)
		}
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return nil
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
