package spool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

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
