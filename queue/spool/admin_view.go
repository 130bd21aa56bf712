package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/edgerelay/edgerelay/queue"
)

// List returns every message in the spool, journal and msg/ alike, leased
// or not, oldest first (by arrival, then ID). Each envelope is read from
// disk as Show reads it; a message that leaves the spool meanwhile is
// left out, and one that cannot be read now is logged and left out.
func (s *Spool) List(ctx context.Context) ([]queue.Entry, error) {
	ids := s.sortedIDs()
	out := make([]queue.Entry, 0, len(ids))
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		en, err := s.Show(ctx, id)
		switch {
		case errors.Is(err, queue.ErrNotFound):
			continue
		case err != nil:
			s.log.Warn("spool: list: cannot read message; left out", "id", id, "err", err)
			continue
		}
		out = append(out, *en)
	}
	slices.SortStableFunc(out, func(a, b queue.Entry) int { return a.Envelope.Arrival.Compare(b.Envelope.Arrival) })
	return out, nil
}

// Show returns message id as the operator sees it: its envelope as last
// written (a leased message's as its delivery started), with the due time
// and hold of the index and the actions waiting for the worker's
// Reschedule (marks) applied.
func (s *Spool) Show(ctx context.Context, id string) (*queue.Entry, error) {
	if !queue.ValidID(id) {
		return nil, fmt.Errorf("%w: %q", queue.ErrNotFound, id)
	}
	// A journal message moved to msg/ between the look-up and the read
	// may have lost its segment: look again once.
	for try := 0; ; try++ {
		s.mu.Lock()
		e := s.entries[id]
		if e == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
		}
		jm, leased, held, next := e.j, e.leased, e.held, e.next
		var mk adminMarks
		if e.marks != nil {
			mk = *e.marks
		}
		s.mu.Unlock()
		var env *queue.Envelope
		var err error
		if jm != nil {
			env, err = s.readJournalEnvelope(id, jm)
		} else {
			var rec *spoolRecord
			if rec, err = s.readRecord(id); err == nil {
				env = rec.Envelope
			}
		}
		if errors.Is(err, fs.ErrNotExist) && try == 0 {
			continue
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
		}
		if err != nil {
			return nil, fmt.Errorf("spool: read %s: %w", id, err)
		}
		if !leased {
			env.NextAttempt, env.Hold = next, held
		}
		if mk.hold != nil {
			env.Hold = *mk.hold
		}
		if mk.operator != "" {
			env.Operator, env.Hold = mk.operator, false
		}
		return &queue.Entry{Envelope: *env, Leased: leased, AsOf: s.now()}, nil
	}
}

// OpenBody opens the body of message id as it was submitted.
func (s *Spool) OpenBody(ctx context.Context, id string) (io.ReadCloser, error) {
	if !queue.ValidID(id) {
		return nil, fmt.Errorf("%w: %q", queue.ErrNotFound, id)
	}
	s.mu.Lock()
	e := s.entries[id]
	s.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	rc, err := s.Body(ctx, &queue.Message{Token: &spoolLease{id: id}})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", queue.ErrNotFound, id)
	}
	return rc, err
}
