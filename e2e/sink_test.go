package e2e

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// sinkMsg is one message the sink accepted.
type sinkMsg struct {
	From string
	To   []string
	Data []byte
}

// sink is a real SMTP server on loopback standing in for the gateway. It
// accepts everything unless told otherwise.
type sink struct {
	t    *testing.T
	srv  *smtp.Server
	ln   net.Listener
	mu   sync.Mutex
	msgs []sinkMsg
	got  chan struct{}
	// reject, when set (setReject), answers RCPT for the addresses it
	// returns an error for. Under mu: the sink's sessions read it while
	// the test sets it (the race detector sees no order between the two:
	// the relay that connects is another process).
	reject func(rcpt string) error
	// delay, when set (setDelay), slows the reply to each message's
	// final dot. Under mu, as reject.
	delay time.Duration
}

func newSink(t *testing.T, addr string) *sink {
	t.Helper()
	s := &sink{t: t, got: make(chan struct{}, 10000)}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s}, nil
	}))
	s.srv.Domain = "sink.test"
	s.srv.AllowInsecureAuth = true
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

func (s *sink) addr() string { return s.ln.Addr().String() }

// setDelay sets the sink's delay before each final reply (see delay).
func (s *sink) setDelay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// setReject sets the sink's RCPT refusals (see reject).
func (s *sink) setReject(f func(rcpt string) error) {
	s.mu.Lock()
	s.reject = f
	s.mu.Unlock()
}

func (s *sink) messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMsg(nil), s.msgs...)
}

type sinkSession struct {
	s    *sink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	reject := ss.s.reject
	ss.s.mu.Unlock()
	if reject != nil {
		if err := reject(to); err != nil {
			return err
		}
	}
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	var b bytes.Buffer
	if _, err := io.Copy(&b, r); err != nil {
		return err
	}
	ss.s.mu.Lock()
	delay := ss.s.delay
	ss.s.mu.Unlock()
	time.Sleep(delay)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, sinkMsg{From: ss.from, To: ss.to, Data: b.Bytes()})
	ss.s.mu.Unlock()
	ss.s.got <- struct{}{}
	return nil
}
