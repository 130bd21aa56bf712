package spool

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	smtp "github.com/emersion/go-smtp"
)

// cutReader returns its bytes, then the error a dropped connection gives
// (go-smtp's dataReader turns the connection's io.EOF mid-DATA into
// io.ErrUnexpectedEOF, third_party/go-smtp/data.go).
type cutReader struct {
	r   io.Reader
	err error
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, c.err
	}
	return n, err
}

// TestJournalBodyReaderUnexpectedEOFFailsEnqueue: a body reader that fails with
// io.ErrUnexpectedEOF (a client that drops the connection in the middle of
// DATA) must fail the Enqueue, as the one-file path does (io.Copy returns
// the error). The journal path read with io.ReadFull, which cannot tell
// the reader's own io.ErrUnexpectedEOF from a body shorter than its
// buffer: the truncated message was stored, acknowledged and delivered.
func TestJournalBodyReaderUnexpectedEOFFailsEnqueue(t *testing.T) {
	for _, jmax := range []int{-1, 0} {
		t.Run(fmt.Sprintf("JournalMaxBytes=%d", jmax), func(t *testing.T) {
			dir := t.TempDir()
			s, err := Open(dir, Options{JournalMaxBytes: jmax})
			must(t, err)
			defer s.Close()
			body := &cutReader{r: strings.NewReader("Subject: half\r\n\r\nthe first half of"), err: io.ErrUnexpectedEOF}
			_, err = s.Enqueue(t.Context(), jenv("T"), body)
			if err == nil || s.Len() != 0 {
				t.Fatalf("Enqueue of a body cut by io.ErrUnexpectedEOF = %v, Len %d: a truncated message is queued", err, s.Len())
			}
		})
	}
}

type dropSession struct {
	s   *Spool
	res chan error
}

func (a *dropSession) Reset()                               {}
func (a *dropSession) Logout() error                        { return nil }
func (a *dropSession) Mail(string, *smtp.MailOptions) error { return nil }
func (a *dropSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (a *dropSession) Data(r io.Reader) error {
	_, err := a.s.Enqueue(context.Background(), &queue.Envelope{From: "alice@example.com",
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}}}, r)
	a.res <- err
	return err
}

// TestJournalClientDropMidDataNotQueued: the same defect as
// TestJournalBodyReaderUnexpectedEOFFailsEnqueue through edgerelay's go-smtp
// (third_party, replace directive): a client that sends half a message and
// closes the connection (no final dot, so no 250 can be sent) must not have its
// half message queued, whether it fits the journal or not.
func TestJournalClientDropMidDataNotQueued(t *testing.T) {
	for _, jmax := range []int{-1, 0} {
		t.Run(fmt.Sprintf("JournalMaxBytes=%d", jmax), func(t *testing.T) {
			s, err := Open(t.TempDir(), Options{JournalMaxBytes: jmax})
			must(t, err)
			defer s.Close()
			res := make(chan error, 1)
			srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
				return &dropSession{s: s, res: res}, nil
			}))
			srv.Domain = "localhost"
			l, err := net.Listen("tcp", "127.0.0.1:0")
			must(t, err)
			go srv.Serve(l)
			defer srv.Close()
			c, err := net.Dial("tcp", l.Addr().String())
			must(t, err)
			br := bufio.NewReader(c)
			line := func() string { s, _ := br.ReadString('\n'); return s }
			line()
			for _, cmd := range []string{"HELO x", "MAIL FROM:<alice@example.com>", "RCPT TO:<bob@example.net>", "DATA"} {
				fmt.Fprintf(c, "%s\r\n", cmd)
				if r := line(); !strings.HasPrefix(r, "2") && !strings.HasPrefix(r, "3") {
					t.Fatalf("%s: %q", cmd, r)
				}
			}
			fmt.Fprintf(c, "Subject: half\r\n\r\nthe first half of the")
			c.Close() // the connection drops mid-DATA
			select {
			case err := <-res:
				if err == nil || s.Len() != 0 {
					t.Fatalf("Enqueue of a message cut by a dropped connection = %v, Len %d: the half message is queued", err, s.Len())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Data never ended")
			}
		})
	}
}
