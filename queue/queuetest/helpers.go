package queuetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// testEnvelope returns an envelope with two pending recipients and every
// DSN field set, so that a round trip that drops a field is noticed.
func testEnvelope() *queue.Envelope {
	return &queue.Envelope{
		From: "alice@example.com",
		Recipients: []queue.Recipient{
			{Addr: "bob@example.net", ORCPT: "rfc822;bob@example.net", Notify: []string{queue.NotifySuccess, queue.NotifyFailure}, Status: queue.StatusPending},
			{Addr: "carol@example.org", Status: queue.StatusPending},
		},
		User:      "alice",
		RET:       "HDRS",
		EnvID:     "QQ314159",
		SMTPUTF8:  true,
		Body8Bit:  true,
		MessageID: "<test.1@example.com>",
	}
}

// body is a deterministic pseudo-random body of n bytes, generated while it
// is read (never held whole), that also hashes what it hands out.
type body struct {
	rng  *rand.ChaCha8
	left int64
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
	failAfter int64 // when > 0, Read fails once this many bytes were read
	read      int64
}

var errBodyRead = errors.New("queuetest: injected body read error")

func newBody(n int64, seed byte) *body {
	var s [32]byte
	s[0] = seed
	return &body{rng: rand.NewChaCha8(s), left: n, h: sha256.New()}
}

func (b *body) Read(p []byte) (int, error) {
	if b.failAfter > 0 && b.read >= b.failAfter {
		return 0, errBodyRead
	}
	if b.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, _ := b.rng.Read(p)
	b.h.Write(p[:n])
	b.left -= int64(n)
	b.read += int64(n)
	return n, nil
}

// digest is the SHA-256 of everything read so far.
func (b *body) digest() []byte { return b.h.Sum(nil) }

// enqueue stores env with a body of size n and returns the ID and the
// body's digest.
func (s *suite) enqueue(t *testing.T, q queue.Queue, env *queue.Envelope, n int64) (string, []byte) {
	t.Helper()
	b := newBody(n, byte(n))
	id, err := q.Enqueue(s.ctx(t), env, b)
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	return id, b.digest()
}

// lease leases a message that must be due.
func (s *suite) lease(t *testing.T, q queue.Queue) *queue.Message {
	t.Helper()
	m, err := q.Lease(s.ctx(t))
	if err != nil {
		t.Fatalf("Lease: %v (a due message was expected within %v)", err, s.DueWait)
	}
	if m == nil || m.Envelope == nil {
		t.Fatalf("Lease returned %#v, want a message with an envelope", m)
	}
	return m
}

// noneDue checks that no message can be leased within QuietWait.
func (s *suite) noneDue(t *testing.T, q queue.Queue, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), s.QuietWait)
	defer cancel()
	m, err := q.Lease(ctx)
	if err == nil {
		t.Fatalf("%s: Lease returned message %s, want none due", why, m.Envelope.ID)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%s: Lease error = %v, want context.DeadlineExceeded", why, err)
	}
}

// bodyDigest reads m's body and returns its SHA-256 and length.
func (s *suite) bodyDigest(t *testing.T, q queue.Queue, m *queue.Message) ([]byte, int64) {
	t.Helper()
	rc, err := q.Body(s.ctx(t), m)
	if err != nil {
		t.Fatalf("Body: %v", err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return h.Sum(nil), n
}

func (s *suite) checkBody(t *testing.T, q queue.Queue, m *queue.Message, want []byte, size int64) {
	t.Helper()
	got, n := s.bodyDigest(t, q, m)
	if n != size || !bytes.Equal(got, want) {
		t.Fatalf("body: got %d bytes sha256 %x, want %d bytes sha256 %x", n, got, size, want)
	}
}

// sameEnvelope compares envelopes by their JSON form, which is what the
// backends store; times compare by instant through their RFC 3339 text.
func sameEnvelope(t *testing.T, got, want *queue.Envelope) {
	t.Helper()
	g, err := json.Marshal(normalize(got))
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(normalize(want))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Fatalf("envelope differs:\n got: %s\nwant: %s", g, w)
	}
}

func normalize(e *queue.Envelope) *queue.Envelope {
	c := e.Clone()
	c.Arrival = c.Arrival.UTC()
	c.NextAttempt = c.NextAttempt.UTC()
	for i := range c.Recipients {
		c.Recipients[i].LastAttempt = c.Recipients[i].LastAttempt.UTC()
	}
	return c
}

// complete completes m and fails the test on error.
func (s *suite) complete(t *testing.T, q queue.Queue, m *queue.Message) {
	t.Helper()
	if err := q.Complete(s.ctx(t), m); err != nil {
		t.Fatalf("Complete(%s): %v", m.Envelope.ID, err)
	}
}

func describe(m *queue.Message) string {
	if m == nil || m.Envelope == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s (attempts %d)", m.Envelope.ID, m.Envelope.Attempts)
}

// now is the time used for Reschedule "now" (a second in the past, so that
// a backend whose clock is a little behind still finds the message due).
func now() time.Time { return time.Now().Add(-time.Second) }
