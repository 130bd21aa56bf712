package outbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// ndrNow is the fixed clock of the report tests.
var ndrNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

const ndrQueueID = "01KB4Z3QX8N2M5P7R9T1"

// ndrOriginal is the submitted message the reports are about.
const ndrOriginal = "From: Alice Example <alice@example.org>\r\n" +
	"To: Bob <bob@example.net>, Carol <carol@example.net>\r\n" +
	"Subject: Quarterly report\r\n" +
	"Date: Sun, 29 Nov 2026 09:58:00 +0100\r\n" +
	"Message-ID: <q4-report-7@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: text/plain; charset=us-ascii\r\n" +
	"\r\n" +
	"Hello Bob, hello Carol,\r\n" +
	"\r\n" +
	"the numbers are in.\r\n"

// ndrEnvelope is the envelope of ndrOriginal with three recipients in
// different states.
func ndrEnvelope() *queue.Envelope {
	arrival := ndrNow.Add(-2 * time.Hour)
	return &queue.Envelope{
		ID:        ndrQueueID,
		From:      "alice@example.org",
		User:      "alice",
		MessageID: "q4-report-7@example.org",
		Arrival:   arrival,
		Size:      int64(len(ndrOriginal)),
		Recipients: []queue.Recipient{
			{
				Addr: "bob@example.net", Status: queue.StatusFailed, Attempts: 1,
				LastAttempt: arrival.Add(time.Minute), RemoteMTA: "mx1.example.net [192.0.2.25]",
				Reply: &queue.Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"<bob@example.net>: Recipient address rejected: User unknown"}},
			},
			{
				Addr: "carol@example.net", Status: queue.StatusFailed, Attempts: 1,
				LastAttempt: arrival.Add(time.Minute), RemoteMTA: "mx1.example.net [192.0.2.25]",
				Reply: &queue.Reply{Code: 552, Lines: []string{
					"Requested mail action aborted: exceeded storage allocation.",
					"The mailbox of this user has been over its quota for more than thirty days and cannot accept any more mail until the user deletes some of it;",
					"please contact the user by other means.",
				}},
			},
			{
				Addr: "dave@example.com", Status: queue.StatusDelivered, Attempts: 1,
				LastAttempt: arrival.Add(time.Minute), RemoteMTA: "mx.example.com [198.51.100.7]",
				Reply: &queue.Reply{Code: 250, Enhanced: "2.0.0", Lines: []string{"Ok: queued as 4Xyz"}},
			},
		},
	}
}

// ndrBody returns a ReportRequest.Body that opens body.
func ndrBody(body string) func(context.Context) (io.ReadCloser, error) {
	return func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(body)), nil
	}
}

// ndrMemStore is a bounce.Store in memory that keeps the first report put
// under each key, as the real stores do.
type ndrMemStore struct {
	mu   sync.Mutex
	msgs map[string][]byte
	keys []string
	puts int
	err  error
}

func (s *ndrMemStore) Put(_ context.Context, key string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.puts++
	if s.err != nil {
		return s.err
	}
	if s.msgs == nil {
		s.msgs = map[string][]byte{}
	}
	if _, ok := s.msgs[key]; !ok {
		s.msgs[key] = b
		s.keys = append(s.keys, key)
	}
	return nil
}

func (s *ndrMemStore) String() string { return "memory" }

// only returns the single stored report, failing the test otherwise.
func (s *ndrMemStore) only(t *testing.T) (string, []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.keys) != 1 {
		t.Fatalf("store holds %d reports, want 1: %v", len(s.keys), s.keys)
	}
	return s.keys[0], s.msgs[s.keys[0]]
}

// ndrReporter returns a Reporter on the fixed clock that stores into a new
// ndrMemStore and queues into q (nil: store only).
func ndrReporter(t *testing.T, q queue.Queue, maxReturn int64) (*Reporter, *ndrMemStore) {
	t.Helper()
	st := &ndrMemStore{}
	r, err := NewReporter(ReporterOptions{
		Hostname:       "relay.example.org",
		Store:          st,
		Queue:          q,
		ToSender:       q != nil,
		MaxReturnBytes: maxReturn,
		Now:            func() time.Time { return ndrNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, st
}

// ndrQueue is a queue.Queue that records Enqueue calls; the other methods
// are not used by the Reporter.
type ndrQueue struct {
	mu     sync.Mutex
	envs   []*queue.Envelope
	bodies [][]byte
	err    error
}

func (q *ndrQueue) Enqueue(_ context.Context, env *queue.Envelope, body io.Reader) (string, error) {
	if q.err != nil {
		return "", q.err
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.envs = append(q.envs, env.Clone())
	q.bodies = append(q.bodies, b)
	return env.ID, nil
}

var errNDRQueueUnused = errors.New("not used by the reporter")

func (q *ndrQueue) Lease(context.Context) (*queue.Message, error) { return nil, errNDRQueueUnused }
func (q *ndrQueue) Body(context.Context, *queue.Message) (io.ReadCloser, error) {
	return nil, errNDRQueueUnused
}
func (q *ndrQueue) Reschedule(context.Context, *queue.Message, time.Time) error {
	return errNDRQueueUnused
}
func (q *ndrQueue) Complete(context.Context, *queue.Message) error { return errNDRQueueUnused }
func (q *ndrQueue) Close() error                                   { return nil }

// equalBytes reports a readable difference between two reports.
func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got:\n%s\n--- want:\n%s", what, got, want)
	}
}
