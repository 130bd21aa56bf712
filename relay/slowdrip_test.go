package relay

import (
	"io"
	"strings"
	"testing"
	"time"
)

// drip writes prefix, then one byte every 50 ms, up to max bytes, while a
// reader collects the server's replies. It returns the replies and whether
// the server closed the connection before the drip ended.
func drip(t *testing.T, c *client, prefix string, max int) (replies []string, closed bool) {
	t.Helper()
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		c.conn.SetReadDeadline(time.Now().Add(time.Minute))
		for {
			line, err := c.tp.ReadLine()
			if err != nil {
				return
			}
			lines <- line
		}
	}()
	if _, err := io.WriteString(c.conn, prefix); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < max; i++ {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Logf("closed by the server after %d bytes dripped", i-len(replies))
				return replies, true
			}
			replies = append(replies, line)
			continue
		case <-time.After(50 * time.Millisecond):
		}
		c.conn.Write([]byte{'x'}) // an error shows as the reader's end
	}
	return replies, false
}

// last is the last reply, or "".
func last(replies []string) string {
	if len(replies) == 0 {
		return ""
	}
	return replies[len(replies)-1]
}

// TestSlowDripCommandLine: a client that sends one byte at a time and never
// ends its line is disconnected with 421 4.4.2 once the command timeout has
// passed (RFC 5321 §4.5.3.2: the timeout is for the whole command), not
// kept for as long as each byte comes within the idle timeout.
func TestSlowDripCommandLine(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	for _, dial := range []func() *client{e.dial, e.dialTLS} {
		c := dial()
		replies, closed := drip(t, c, "EHLO ", 200)
		if !strings.HasPrefix(last(replies), "421 4.4.2") || !closed {
			t.Fatalf("after up to 200 bytes dripped 50 ms apart into one command line (command timeout 300 ms): replies %q, closed %v; want a final 421 4.4.2 and a closed connection", replies, closed)
		}
	}
}

// TestSlowDripDataLine: in DATA, each line must also complete within the
// command timeout; a client dripping one line forever gets 451 4.4.2 and
// is disconnected, and nothing is queued.
func TestSlowDripDataLine(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", bob)
	c.must(354, "", "DATA")
	replies, closed := drip(t, c, "From: <"+alice+">\r\nSubject: drip\r\n\r\n", 200)
	if len(replies) != 1 || !strings.HasPrefix(replies[0], "451 4.4.2") || !closed {
		t.Fatalf("after up to 200 bytes dripped 50 ms apart into one data line: replies %q, closed %v; want 451 4.4.2 and a closed connection", replies, closed)
	}
	if q := e.queued(); len(q) != 0 {
		t.Fatalf("%d messages queued, want none", len(q))
	}
}

// TestDataLinesKeepFlowing: a message whose data keeps coming is accepted
// even though the whole DATA phase lasts several times the command timeout
// (the timeout is for each stretch of data, not for the whole message).
func TestDataLinesKeepFlowing(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.IdleTimeout = 300 * time.Millisecond
		o.MaxMessageBytes = 1 << 20
	})
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", bob)
	c.must(354, "", "DATA")
	io.WriteString(c.conn, "From: <"+alice+">\r\nSubject: slow but steady\r\n\r\n")
	lines := strings.Repeat(strings.Repeat("y", 900)+"\r\n", 8) // 7.2 KB
	for i := 0; i < 20; i++ {
		time.Sleep(50 * time.Millisecond)
		io.WriteString(c.conn, lines)
	}
	io.WriteString(c.conn, ".\r\n")
	if code, msg := c.read(); code != 250 {
		t.Fatalf("steady message: got %d %s, want 250", code, msg)
	}
}

// TestPreAuthBudget: a session that has not authenticated gets a total
// budget for EHLO, STARTTLS and AUTH; well-formed, prompt commands (NOOP
// every 50 ms) do not extend it. After AUTH the budget no longer applies.
func TestPreAuthBudget(t *testing.T) {
	t.Run("not authenticated", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.PreAuthTimeout = 300 * time.Millisecond })
		c := e.dial()
		c.ehlo()
		for i := 0; i < 200; i++ {
			code, msg := c.cmd("NOOP")
			if code == 421 {
				if !strings.HasPrefix(msg, "4.4.2") {
					t.Fatalf("got 421 %s, want 421 4.4.2", msg)
				}
				c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.tp.ReadLine(); err == nil {
					t.Fatal("connection still open after the 421")
				}
				return
			}
			if code != 250 {
				t.Fatalf("NOOP: got %d %s", code, msg)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("200 NOOPs over 10 s without AUTH were all answered (pre-auth budget 300 ms)")
	})
	t.Run("authenticated", func(t *testing.T) {
		const budget = 3 * time.Second
		e := newEnv(t, func(o *Options) { o.PreAuthTimeout = budget })
		start := time.Now()
		c := e.authed(alice, alicePW)
		time.Sleep(time.Until(start.Add(budget + 500*time.Millisecond)))
		c.must(250, "", "NOOP")
		c.must(250, "", "MAIL FROM:<%s>", alice)
	})
}
