package outbound

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// FuzzLMTPReplies drives the bytes an LMTP server sends after the final dot
// (RFC 2033 §4.2: one reply per accepted recipient, in RCPT order) through
// go-smtp's LMTP client, behind the reply guard, and lmtpVerdicts, for one
// to four recipients. Invariants:
//   - each case finishes within 2 s;
//   - every accepted recipient gets a result;
//   - recipient k is delivered exactly when the k-th reply, as
//     net/textproto reads the same bytes, is a 250 and the ones before it
//     were read whole; failed exactly when it is a 5xx; pending otherwise
//     (4xx, any other code, or no reply: never delivered without its 250).
func FuzzLMTPReplies(f *testing.F) {
	f.Add([]byte("250 2.0.0 ok\r\n452 4.2.2 full\r\n"), uint8(2))
	f.Add([]byte("250 2.0.0 ok\r\n550 5.1.1 unknown\r\n"), uint8(2))
	f.Add([]byte("250 2.0.0 ok\r\n"), uint8(2))
	f.Add([]byte("250-a\r\n250-b\r\n250 c\r\n421 4.3.0 bye\r\n250 ok\r\n"), uint8(3))
	f.Add([]byte("251 ok\r\n354 x\r\n250 ok\r\n250 ok\r\n"), uint8(4))
	f.Add([]byte("2500 ok\r\nabc\r\n250 ok\r\n"), uint8(2))
	f.Add([]byte("250-"+strings.Repeat("x", 900)+"\r\n250 ok\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, after []byte, n uint8) {
		rcpts := int(n%4) + 1
		if len(after) > 4000 || bytes.Contains(after, []byte("\r\n.\r\n")) {
			return
		}
		for _, l := range bytes.Split(after, []byte("\n")) {
			if len(l) > 1000 { // below go-smtp's line limit: textproto alone decides
				return
			}
		}
		start := time.Now()
		tr := lmtpFuzzRun(t, after, rcpts)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
		want := lmtpExpected(after, rcpts)
		for k := range rcpts {
			r, ok := tr.results[k]
			if !ok {
				t.Fatalf("recipient %d: no result", k)
			}
			if r.status != want[k] {
				t.Fatalf("recipient %d: %s (%v), want %s; replies %q", k, r.status, r.reply, want[k], after)
			}
		}
	})
}

// lmtpFuzzRun plays an LMTP session over a pipe in which the server
// accepts rcpts recipients and then sends after, and returns the verdicts.
func lmtpFuzzRun(t *testing.T, after []byte, rcpts int) txResult {
	cli, srv := net.Pipe()
	defer cli.Close()
	go func() {
		defer srv.Close()
		_ = srv.SetDeadline(time.Now().Add(3 * time.Second))
		tp := textproto.NewConn(srv)
		say := func(s string) { _ = tp.PrintfLine("%s", s) }
		say("220 fuzz LMTP")
		for {
			l, err := tp.ReadLine()
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(l, "LHLO"):
				say("250-fuzz\r\n250 8BITMIME")
			case strings.HasPrefix(l, "DATA"):
				say("354 go")
				if _, err := tp.ReadDotBytes(); err != nil {
					return
				}
				if len(after) > 0 {
					_, _ = srv.Write(after)
				}
				return
			default:
				say("250 ok")
			}
		}
	}()
	g := newReplyGuard(cli)
	c := smtp.NewClientLMTP(g)
	c.CommandTimeout, c.SubmissionTimeout = time.Second, time.Second
	tr := txResult{results: map[int]result{}}
	if err := c.Hello("relay.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	accepted := make([]int, rcpts)
	tos := make([]string, rcpts)
	for k := range rcpts {
		accepted[k], tos[k] = k, fmt.Sprintf("u%d@example.org", k)
		if err := c.Rcpt(tos[k], nil); err != nil {
			t.Fatal(err)
		}
	}
	wc, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(wc, "Subject: x\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := wc.CloseWithLMTPResponse()
	lmtpVerdicts(&tr, "fuzz", accepted, tos, resp, err, queue.StatusDelivered)
	return tr
}

// lmtpExpected reads after as rcpts replies with net/textproto on its own
// and says what each recipient's status must be.
func lmtpExpected(after []byte, rcpts int) []queue.RcptStatus {
	out := make([]queue.RcptStatus, rcpts)
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(after)))
	lost := false
	for k := range out {
		out[k] = queue.StatusPending
		if lost {
			continue
		}
		code, _, err := r.ReadResponse(0)
		if err != nil {
			lost = true
			continue
		}
		switch {
		case code == 250:
			out[k] = queue.StatusDelivered
		case code >= 500 && code < 600:
			out[k] = queue.StatusFailed
		}
	}
	return out
}
