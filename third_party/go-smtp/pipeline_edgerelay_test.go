package smtp

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Tests of edgerelay patch 5 (MailPipelined, RFC 2920).

// writesConn is a net.Conn whose reads come from a script of server bytes
// and whose writes are recorded one by one.
type writesConn struct {
	r      io.Reader
	writes []string
}

func (c *writesConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *writesConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, string(p))
	return len(p), nil
}
func (c *writesConn) Close() error                     { return nil }
func (c *writesConn) LocalAddr() net.Addr              { return nil }
func (c *writesConn) RemoteAddr() net.Addr             { return nil }
func (c *writesConn) SetDeadline(time.Time) error      { return nil }
func (c *writesConn) SetReadDeadline(time.Time) error  { return nil }
func (c *writesConn) SetWriteDeadline(time.Time) error { return nil }

const pipeGreeting = "220 mx.test ESMTP\r\n250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"

// pipelined runs MailPipelined for rcpts against a server that answers
// with replies (after the greeting and EHLO), and returns the client's
// writes after EHLO.
func pipelined(t *testing.T, replies string, rcpts ...string) (*PipelinedReplies, *DataCommand, []string) {
	t.Helper()
	// A byte per read, as from a slow network: the line limit counts
	// what each read returns.
	conn := &writesConn{r: iotest.OneByteReader(strings.NewReader(pipeGreeting + replies))}
	c := NewClient(conn)
	if err := c.Hello("relay.test"); err != nil {
		t.Fatal(err)
	}
	n := len(conn.writes)
	rep, dc, err := c.MailPipelined("a@example.org", nil, rcpts, nil)
	if err != nil {
		t.Fatalf("MailPipelined: %v", err)
	}
	if len(rep.Rcpt) != len(rcpts) {
		t.Fatalf("%d RCPT replies for %d recipients", len(rep.Rcpt), len(rcpts))
	}
	return rep, dc, conn.writes[n:]
}

func code(err error) int {
	var se *SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return -1
}

func TestMailPipelinedOneWrite(t *testing.T) {
	rep, dc, writes := pipelined(t, "250 ok\r\n250 ok\r\n251 ok\r\n354 go\r\n250 queued\r\n", "b@x.test", "c@x.test")
	const group = "MAIL FROM:<a@example.org> BODY=8BITMIME\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nDATA\r\n"
	if len(writes) != 1 || writes[0] != group {
		t.Fatalf("writes %q, want the group in one: %q", writes, group)
	}
	if rep.Mail != nil || rep.Rcpt[0] != nil || rep.Rcpt[1] != nil || rep.Data != nil || dc == nil {
		t.Fatalf("replies %+v, data %v", rep, dc)
	}
	if _, err := io.WriteString(dc, "Subject: x\r\n\r\nhi\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := dc.CloseWithResponse()
	if err != nil || resp.StatusText != "queued" {
		t.Fatalf("final reply %v %v", resp, err)
	}
}

func TestMailPipelinedRefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replies  string
		mail     int
		rcpt     []int // 0 accepted, -1 not a reply
		data     int   // 0: DataCommand returned
		lonedot  bool
		dataErrs error
	}{
		{name: "some recipients refused", replies: "250 ok\r\n550 5.1.1 no\r\n250 ok\r\n452 4.5.3 later\r\n354 go\r\n",
			rcpt: []int{550, 0, 452}},
		{name: "MAIL refused, the rest answered 503", replies: "550 5.7.1 no\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n554 5.5.1 no\r\n",
			mail: 550, rcpt: []int{503, 503, 503}, data: 554},
		{name: "every RCPT refused, DATA 554", replies: "250 ok\r\n550 no\r\n550 no\r\n550 no\r\n554 5.5.1 no valid recipients\r\n",
			rcpt: []int{550, 550, 550}, data: 554},
		{name: "every RCPT refused, DATA 354: a lone dot", replies: "250 ok\r\n550 no\r\n550 no\r\n550 no\r\n354 go\r\n554 no recipients\r\n",
			rcpt: []int{550, 550, 550}, lonedot: true, dataErrs: ErrDataWithoutRecipients},
		{name: "MAIL refused, DATA 354: a lone dot", replies: "451 later\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n",
			mail: 451, rcpt: []int{0, 0, 0}, lonedot: true, dataErrs: ErrDataWithoutRecipients},
		{name: "421 ends the exchange", replies: "250 ok\r\n250 ok\r\n421 4.3.2 bye\r\n",
			rcpt: []int{0, 421, 421}, data: 421},
		{name: "closed after MAIL", replies: "250 ok\r\n",
			rcpt: []int{-1, -1, -1}, data: -1},
		{name: "out of step: 354 to a RCPT", replies: "250 ok\r\n354 go\r\n250 ok\r\n250 ok\r\n354 go\r\n",
			rcpt: []int{354, 354, 354}, data: 354},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, dc, writes := pipelined(t, tc.replies, "b@x.test", "c@x.test", "d@x.test")
			if code(rep.Mail) != tc.mail && !(tc.mail == 0 && rep.Mail == nil) {
				t.Errorf("MAIL: %v, want %d", rep.Mail, tc.mail)
			}
			for i, want := range tc.rcpt {
				if got := rep.Rcpt[i]; (want == 0) != (got == nil) || (want != 0 && code(got) != want) {
					t.Errorf("RCPT %d: %v, want %d", i, got, want)
				}
			}
			switch {
			case tc.dataErrs != nil:
				if !errors.Is(rep.Data, tc.dataErrs) || dc != nil {
					t.Errorf("DATA: %v (command %v), want %v", rep.Data, dc, tc.dataErrs)
				}
			case tc.data == 0:
				if rep.Data != nil || dc == nil {
					t.Errorf("DATA: %v (command %v), want the data command", rep.Data, dc)
				}
			default:
				if code(rep.Data) != tc.data || dc != nil {
					t.Errorf("DATA: %v (command %v), want %d", rep.Data, dc, tc.data)
				}
			}
			want := 1
			if tc.lonedot {
				want = 2
			}
			if len(writes) != want || (tc.lonedot && writes[1] != ".\r\n") {
				t.Errorf("writes %q, want the group%s", writes, map[bool]string{true: " and a lone dot"}[tc.lonedot])
			}
		})
	}
}

func TestMailPipelinedNothingSent(t *testing.T) {
	conn := &writesConn{r: strings.NewReader("220 mx.test\r\n250-mx.test\r\n250 8BITMIME\r\n")}
	c := NewClient(conn)
	if err := c.Hello("relay.test"); err != nil {
		t.Fatal(err)
	}
	n := len(conn.writes)
	for name, call := range map[string]func() error{
		"not offered": func() error { _, _, err := c.MailPipelined("a@x", nil, []string{"b@x"}, nil); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	c.ext["PIPELINING"] = ""
	for name, call := range map[string]func() error{
		"no recipient": func() error { _, _, err := c.MailPipelined("a@x", nil, nil, nil); return err },
		"CRLF in RCPT": func() error { _, _, err := c.MailPipelined("a@x", nil, []string{"b@x\r\nDATA"}, nil); return err },
		"bad option": func() error {
			_, _, err := c.MailPipelined("a@x", &MailOptions{UTF8: true}, []string{"b@x"}, nil)
			return err
		},
		"options count": func() error { _, _, err := c.MailPipelined("a@x", nil, []string{"b@x"}, []*RcptOptions{}); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if len(conn.writes) != n {
		t.Fatalf("wrote %q", conn.writes[n:])
	}
}

// TestMailPipelinedGroups: commands longer than pipelineMaxGroup go in
// several groups, each written after the replies to the one before; DATA
// ends the last.
func TestMailPipelinedGroups(t *testing.T) {
	var rcpts []string
	replies := "250 ok\r\n"
	for i := 0; i < 600; i++ {
		rcpts = append(rcpts, strings.Repeat("r", 40)+string(rune('a'+i%26))+"@x.test")
		replies += "250 ok\r\n"
	}
	rep, dc, writes := pipelined(t, replies+"354 go\r\n", rcpts...)
	if dc == nil || rep.Data != nil {
		t.Fatalf("DATA %v", rep.Data)
	}
	if len(writes) < 2 {
		t.Fatalf("%d writes, want several groups", len(writes))
	}
	all := strings.Join(writes, "")
	for _, w := range writes {
		if len(w) > pipelineMaxGroup {
			t.Errorf("a group of %d bytes", len(w))
		}
	}
	if strings.Count(all, "RCPT TO:") != 600 || !strings.HasSuffix(all, "\r\nDATA\r\n") || strings.Count(all, "DATA") != 1 {
		t.Fatalf("commands sent: %q…", all[:200])
	}
}

// TestMailPipelinedReplyBounds: a reply line longer than the client's line
// limit ends the exchange with ErrTooLongLine, for every later command. (The
// first 2,000 bytes of the line are read as the reply, as in the
// sequential exchange: bufio hands textproto what it got before the
// error.)
func TestMailPipelinedReplyBounds(t *testing.T) {
	rep, dc, _ := pipelined(t, "250 ok\r\n550 "+strings.Repeat("x", 5000)+"\r\n250 ok\r\n354 go\r\n", "b@x.test", "c@x.test")
	if dc != nil || code(rep.Rcpt[0]) != 550 || !errors.Is(rep.Rcpt[1], ErrTooLongLine) || !errors.Is(rep.Data, ErrTooLongLine) {
		t.Fatalf("replies %.200v", rep)
	}
}
