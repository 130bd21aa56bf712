package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/queue"
)

// txn is one mail transaction, from MAIL to the reply to its final dot or
// BDAT LAST (RFC 5321 §3.3), and it belongs to that transaction only.
//
// go-smtp runs Data in a goroutine of its own for BDAT (RFC 3030) and does
// not wait for it when RSET, a new EHLO or an oversized chunk aborts the
// transaction: that Data can still be running while the connection's
// goroutine starts the next transaction. So Data works only on the *txn it
// captured when it started, never on the session's current fields; ending
// it touches the session only if it is still the current transaction; and a
// txn that was aborted is never queued (abortGuard).
//
// Invariant: a 250 to a final dot or BDAT LAST stores exactly one message,
// with the sender and recipients of the transaction that sent its data.
type txn struct {
	// Set at MAIL, on the connection's goroutine, before any Data starts.
	from string
	opts smtp.MailOptions
	id   *auth.Identity
	helo string
	tls  *tls.ConnectionState
	log  *slog.Logger

	// rcpts grows with RCPT, on the connection's goroutine; Data reads it
	// once, after go-smtp started it (which happens after the last RCPT:
	// go-smtp refuses RCPT during message transfer).
	rcpts []queue.Recipient

	aborted atomic.Bool

	// For BDAT only: the pipe go-smtp feeds Data from, and closed when
	// Data returns. See txnState.settle.
	pipe     *io.PipeReader
	dataDone chan struct{}
}

// errTxnAborted is what an aborted transaction's Data sees; the client
// already had its reply (to RSET, EHLO or the chunk) and never sees this.
var errTxnAborted = errors.New("relay: transaction aborted")

// txnState holds the session's current transaction. go-smtp calls Mail,
// Rcpt and Reset on the connection's goroutine and Data, for BDAT, on
// another one: the mutex orders them.
type txnState struct {
	mu  sync.Mutex
	cur *txn
	// bdat is the last transaction whose Data go-smtp started on a
	// goroutine of its own (BDAT), until settle saw it finish.
	bdat *txn
}

// dataStarted records that Data is running for t, and returns the function
// that Data defers to say it has returned.
func (s *txnState) dataStarted(t *txn, r io.Reader) (done func()) {
	pr, ok := r.(*io.PipeReader)
	if !ok {
		return func() {} // DATA: go-smtp waits for Data itself
	}
	s.mu.Lock()
	t.pipe, t.dataDone = pr, make(chan struct{})
	s.bdat = t
	s.mu.Unlock()
	return func() { close(t.dataDone) }
}

// settle waits, for at most timeout, until the goroutine that go-smtp
// v0.25.1 started for the previous BDAT transaction has finished, and
// reports whether it has.
//
// That goroutine, after Data returns, sends Data's result to the channel
// in go-smtp's Conn.dataResult field — a field that the next BDAT
// replaces. go-smtp does not wait for the goroutine when RSET, EHLO or an
// oversized chunk aborts the transaction, so without settle a pipelined
// MAIL, RCPT, BDAT can make the aborted transaction's result the reply to
// the next transaction's BDAT LAST (a data race, and a wrong reply). The
// goroutine's last act is to close its pipe for reading, which a read of
// the pipe observes (io.ErrClosedPipe instead of the writer's error):
// settle waits for Data to return and then for that close. Called on the
// connection's goroutine before a new transaction begins, it orders the
// old goroutine's last steps before anything the next BDAT does.
func (s *txnState) settle(timeout time.Duration) bool {
	s.mu.Lock()
	prev := s.bdat
	s.mu.Unlock()
	if prev == nil {
		return true
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	select {
	case <-prev.dataDone:
	case <-deadline.C:
		return false
	}
	// When Data has returned, the pipe's writer or go-smtp's goroutine
	// has closed the pipe, so a read returns at once.
	for wait := time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		if _, err := prev.pipe.Read(nil); err == io.ErrClosedPipe {
			break
		}
		select {
		case <-time.After(wait):
		case <-deadline.C:
			return false
		}
	}
	s.mu.Lock()
	if s.bdat == prev {
		s.bdat = nil
	}
	s.mu.Unlock()
	return true
}

// begin makes t the current transaction; it reports false when one is
// already open (RFC 5321 §4.1.4: MAIL must not be sent inside a
// transaction).
func (s *txnState) begin(t *txn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return false
	}
	s.cur = t
	return true
}

// current returns the open transaction, or nil.
func (s *txnState) current() *txn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// abort ends the current transaction, whatever it is, and marks it aborted
// so that a Data still reading it never queues it.
func (s *txnState) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.aborted.Store(true)
		s.cur = nil
	}
}

// end ends t if it is still the current transaction, and reports whether
// it was. A Data that finishes after its transaction was aborted leaves the
// next one alone.
func (s *txnState) end(t *txn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != t {
		return false
	}
	s.cur = nil
	return true
}

// abortGuard passes the message data through and turns its end into
// errTxnAborted when the transaction was aborted meanwhile, so that the
// queue, which commits only after reading to the end, commits nothing.
type abortGuard struct {
	r io.Reader
	t *txn
}

func (g abortGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if g.t.aborted.Load() {
		return 0, errTxnAborted
	}
	return n, err
}
