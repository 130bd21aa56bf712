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
	// reject, when set, answers RCPT for the addresses it returns an error for.
	reject func(rcpt string) error
	// delay, when set, slows the reply to each message's final dot.
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
	if ss.s.reject != nil {
		if err := ss.s.reject(to); err != nil {
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
	time.Sleep(ss.s.delay)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, sinkMsg{From: ss.from, To: ss.to, Data: b.Bytes()})
	ss.s.mu.Unlock()
	ss.s.got <- struct{}{}
	return nil
}
