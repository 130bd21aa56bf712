package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

const (
	// DefaultJournalMaxBytes is the largest journal record (body, envelope
	// and record header) when Options.JournalMaxBytes is 0: a larger
	// message goes to msg/ as one file.
	DefaultJournalMaxBytes = 128 << 10
	// DefaultJournalSegmentBytes is the size at which the journal starts a
	// new segment when Options.JournalSegmentBytes is 0.
	DefaultJournalSegmentBytes = 64 << 20
	// maxJournalMaxBytes caps Options.JournalMaxBytes (and so what replay
	// reads into memory for one record).
	maxJournalMaxBytes = 16 << 20
)

// jmsg is where a message that arrived through the journal lives: its MSG
// record's body and envelope sections in a segment, and its last claim.
type jmsg struct {
	seg              *segment
	instance         uint64
	bodyOff, bodyLen int64 // in the segment file
	envOff, envLen   int64
	claim            leaseRec  // the last CLAIM (seq 0: none)
	due              time.Time // at replay: when it is due
}

// journalBuf returns a buffer of the journal's bound (plus one byte, to
// tell a body that ends at the bound from a longer one) from the pool.
func (s *Spool) journalBuf() *[]byte {
	if p, ok := s.bufs.Get().(*[]byte); ok {
		return p
	}
	b := make([]byte, s.jmax+1)
	return &b
}

// enqueueJournal reads the body into buf up to the journal's bound. When
// the body and envelope fit, it appends one MSG record and waits for the
// fdatasync that covers it (done true, err its outcome). Otherwise (done
// false) rest is the whole body again, the part read first included, for
// the one-file path; so is a broken journal's.
func (s *Spool) enqueueJournal(ctx context.Context, env *queue.Envelope, body io.Reader, buf []byte) (done bool, rest io.Reader, err error) {
	bo := msgBodyOffset(env.ID)
	room := s.jmax - bo
	if room < 0 {
		return false, body, nil
	}
	n, eof, err := readBody(ctxReader{ctx, body}, buf[bo:bo+room+1])
	switch {
	case err != nil:
		return true, nil, fmt.Errorf("read body: %w", err)
	case !eof: // more than room: the one-file path
		return false, io.MultiReader(bytes.NewReader(buf[bo:bo+n]), body), nil
	}
	rest = bytes.NewReader(buf[bo : bo+n])
	env.Size = int64(n)
	data, err := marshalEnvelope(env)
	if err != nil {
		return true, nil, err
	}
	if bo+n+len(data) > s.jmax {
		return false, rest, nil
	}
	s.flushEnds()
	instance := newInstance()
	rec := encodeMsgRecord(buf[:s.jmax+1], env.ID, instance, n, data)
	seg, off, err := s.j.append(rec, true)
	if errors.Is(err, errJournalBroken) {
		return false, rest, nil
	}
	if err != nil {
		return true, nil, fmt.Errorf("journal: %w", err)
	}
	jm := &jmsg{seg: seg, instance: instance, bodyOff: off + int64(bo), bodyLen: int64(n),
		envOff: off + int64(bo+n), envLen: int64(len(data))}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries[env.ID] = &spoolEntry{id: env.ID, next: dueAt(env), j: jm}
	s.release(s.entries[env.ID])
	return true, nil, nil
}

// readBody reads r into buf until buf is full or r ends. Only io.EOF
// ends a body (eof true): any other error, io.ErrUnexpectedEOF included
// (go-smtp's DATA reader returns it when the client drops the connection
// mid-message), is returned, so that half a message is never stored.
// io.ReadFull cannot be used: it turns a short read ending in io.EOF into
// io.ErrUnexpectedEOF, the same error a dropped connection gives.
func readBody(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for empty := 0; n < len(buf); {
		m, err := r.Read(buf[n:])
		n += m
		switch {
		case err == io.EOF:
			return n, true, nil
		case err != nil:
			return n, false, err
		case m > 0:
			empty = 0
		default:
			if empty++; empty >= 100 {
				return n, false, io.ErrNoProgress
			}
		}
	}
	return n, false, nil
}

// journalOf returns the journal place of message id when its state is in
// the journal (not moved to msg/), else nil.
func (s *Spool) journalOf(id string) *jmsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil && e.j != nil {
		return e.j
	}
	return nil
}

// readJournalEnvelope reads and decodes the envelope of a journal
// message; an error wrapping errCorruptEnvelope means it cannot be used.
func (s *Spool) readJournalEnvelope(id string, jm *jmsg) (*queue.Envelope, error) {
	f, err := s.fs.Open(jm.seg.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, jm.envLen)
	if _, err := f.ReadAt(data, jm.envOff); err != nil {
		return nil, err
	}
	env, err := decodeEnvFile(id, data)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	claim := jm.claim // written by claims, under s.mu
	s.mu.Unlock()
	if claim.seq != 0 {
		env.Attempts = claim.attempts
	}
	return env.Envelope, nil
}

// journalBody opens the body section of a journal message. Segment files
// are never written again below their tail, and a deleted one stays
// readable through an open descriptor.
func (s *Spool) journalBody(id string, jm *jmsg) (io.ReadCloser, error) {
	f, err := s.fs.Open(jm.seg.path)
	if err != nil {
		return nil, fmt.Errorf("spool: body of %s: %w", id, err)
	}
	return bodyReader{io.NewSectionReader(f, jm.bodyOff, jm.bodyLen), f}, nil
}
