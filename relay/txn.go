package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// started is when MAIL opened the transaction (for Accept.Duration;
	// monotonic, not Options.Now).
	started time.Time

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
	// w is the connection's, shared with the session before STARTTLS
	// and the one after it: go-smtp's result channel outlives a session.
	w *bdatWatch
}

// bdatWatch follows go-smtp's BDAT goroutines on one connection, across
// its sessions (STARTTLS starts a new one without waiting for the
// goroutine of a transaction that it ended, possible only with
// InsecureAuth).
type bdatWatch struct {
	mu sync.Mutex
	// bdat is the last transaction whose Data go-smtp started on a
	// goroutine of its own (BDAT), until settle saw that goroutine finish.
	bdat *txn
	// settled is the go-smtp result channel (see bdatResult) whose
	// goroutine settle last saw finish; only the connection's goroutine
	// uses it.
	settled chan error
}

// dataStarted records that Data is running for t, and returns the function
// that Data defers to say it has returned.
func (s *txnState) dataStarted(t *txn, r io.Reader) (done func()) {
	pr, ok := r.(*io.PipeReader)
	if !ok {
		return func() {} // DATA: go-smtp waits for Data itself
	}
	s.w.mu.Lock()
	t.pipe, t.dataDone = pr, make(chan struct{})
	s.w.bdat = t
	s.w.mu.Unlock()
	return func() { close(t.dataDone) }
}

// settle waits, for at most timeout, until the goroutine that go-smtp
// v0.25.1 started for the last BDAT transaction has delivered its result,
// and reports whether it has. ch is that goroutine's result channel
// (bdatResult), nil when there was no BDAT.
//
// The goroutine, after Data returns, sends Data's result to the channel
// in go-smtp's Conn.dataResult field — a field that the next BDAT
// replaces. go-smtp does not wait for the goroutine when RSET, EHLO or an
// oversized chunk aborts the transaction (after an empty chunk, "BDAT 0",
// the goroutine may not even have called Data yet), so without settle a
// pipelined MAIL, RCPT, BDAT … LAST could get the aborted transaction's
// result as its reply (a data race, and a wrong reply: a stored message
// answered 530, a refused one 250).
//
// Called on the connection's goroutine at MAIL, before the next BDAT can
// replace the field, it waits until the goroutine has sent: its result is
// in ch (settle takes it out: go-smtp never reads an aborted
// transaction's result), or go-smtp already took it (BDAT LAST) and the
// goroutine has closed its pipe for reading, its last act. Either way what
// the goroutine did happens before the next transaction begins.
func (s *txnState) settle(ch chan error, timeout time.Duration) bool {
	if ch == nil || ch == s.w.settled {
		return true
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		if len(ch) > 0 {
			<-ch // sent, and never to be read by go-smtp
			break
		}
		if s.bdatFinished() {
			break // sent, and taken by go-smtp's BDAT LAST
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(wait)
	}
	s.w.mu.Lock()
	s.w.settled, s.w.bdat = ch, nil
	s.w.mu.Unlock()
	return true
}

// bdatFinished reports whether the goroutine of the last BDAT Data that
// started has closed its pipe for reading, which it does after sending
// Data's result. Reading an empty slice from the pipe returns at once
// here: by MAIL, go-smtp has closed the pipe's writing end (BDAT LAST, or
// the abort), and Data has returned.
func (s *txnState) bdatFinished() bool {
	s.w.mu.Lock()
	prev := s.w.bdat
	s.w.mu.Unlock()
	if prev == nil {
		return false
	}
	select {
	case <-prev.dataDone:
	default:
		return false
	}
	_, err := prev.pipe.Read(nil)
	return err == io.ErrClosedPipe
}

// bdatResult returns the channel in go-smtp's unexported Conn.dataResult
// field (v0.25.1, pinned in go.mod): the one the last BDAT goroutine sends
// Data's result to. go-smtp offers no other way to know that a BDAT
// goroutine exists before it has called Data. Read only on the
// connection's goroutine, which is the only one that writes the field. If
// a go-smtp upgrade renames or retypes it, bdatResult returns nil and the
// seeds of FuzzSession (bdat0-aborted-before-data-starts) fail.
func bdatResult(c *smtp.Conn) chan error {
	if c == nil {
		return nil
	}
	f := reflect.ValueOf(c).Elem().FieldByName("dataResult")
	if !f.IsValid() || f.Type() != reflect.TypeFor[chan error]() {
		return nil
	}
	return *(*chan error)(unsafe.Pointer(f.UnsafeAddr()))
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
