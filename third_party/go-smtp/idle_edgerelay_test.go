package smtp_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// edgerelay patch: an idle connection holds no read or write buffer, and
// the wait for the next command changes nothing a client can see.

// waitReadersHeld waits for at most want connections to hold a read buffer
// (connections of other tests may hold some).
func waitReadersHeld(t *testing.T, want int64) {
	t.Helper()
	for i := 0; i < 500 && smtp.ReadersHeld() > want; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if got := smtp.ReadersHeld(); got > want {
		t.Fatalf("%d connections hold a read buffer, want at most %d", got, want)
	}
}

func TestIdleConnectionsHoldNoReadBuffer(t *testing.T) {
	base := smtp.ReadersHeld()
	_, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	var more []net.Conn
	for i := 0; i < 3; i++ {
		cc, err := net.Dial("tcp", c.RemoteAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		sc := bufio.NewScanner(cc)
		sc.Scan()
		io.WriteString(cc, "EHLO localhost\r\n")
		for sc.Scan() && !strings.HasPrefix(sc.Text(), "250 ") {
		}
		more = append(more, cc)
	}
	waitReadersHeld(t, base)

	// Pipelined commands after the wait: all answered, in order.
	io.WriteString(c, "NOOP\r\nMAIL FROM:<root@nsa.gov>\r\nRCPT TO:<root@gchq.gov.uk>\r\nRSET\r\n")
	for _, want := range []string{"250 ", "250 ", "250 ", "250 "} {
		if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), want) {
			t.Fatalf("got %q, want %q...", scanner.Text(), want)
		}
	}
	waitReadersHeld(t, base)
	for _, cc := range more {
		cc.Close()
	}
	c.Close()
	waitReadersHeld(t, base)
}

func TestIdleWaitByteByByte(t *testing.T) {
	_, s, c, scanner := testServerGreeted(t)
	defer s.Close()
	defer c.Close()
	for _, b := range []byte("EHLO localhost\r\n") {
		c.Write([]byte{b})
		time.Sleep(2 * time.Millisecond)
	}
	if !scanner.Scan() || scanner.Text() != "250-Hello localhost" {
		t.Fatalf("EHLO sent byte by byte: got %q", scanner.Text())
	}
}

func TestIdleWaitLoneLineEnding(t *testing.T) {
	_, s, c, scanner := testServerGreeted(t)
	defer s.Close()
	defer c.Close()
	// A lone LF is an (empty) line: it is answered without more input.
	io.WriteString(c, "\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), "500 ") {
		t.Fatalf("lone LF: got %q (err %v)", scanner.Text(), scanner.Err())
	}
}

func TestIdleWaitTooLongLineSplit(t *testing.T) {
	_, s, c, scanner := testServerAuthenticated(t)
	defer s.Close()
	defer c.Close()
	// The line's first byte ends the wait; the rest, too long, is refused
	// with the line as one read, as without the wait.
	io.WriteString(c, "MAIL FROM:<"+strings.Repeat("a", s.MaxLineLength)+">\r\n")
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), "500 5.4.0 ") {
		t.Fatalf("too long line: got %q", scanner.Text())
	}
}

// A SASL response longer than the line limit: handleAuth drops the read's
// error and the next line read fails at once, as the line limit is still
// exceeded: "500 Too long line", not a wait for input that the client,
// waiting for a reply, will not send (review of patch 3: the wait was made
// before the line limit was asked).
func TestIdleWaitAfterTooLongSASLResponse(t *testing.T) {
	_, s, c, scanner, _ := testServerEhlo(t)
	defer s.Close()
	defer c.Close()
	io.WriteString(c, "AUTH PLAIN\r\n")
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), "334") {
		t.Fatalf("AUTH PLAIN: got %q", scanner.Text())
	}
	// The whole line, limit and line ending, in one write: nothing of it
	// is left in the socket once the limit is reached.
	io.WriteString(c, strings.Repeat("A", s.MaxLineLength+10)+"\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), "500 5.4.0 ") {
		t.Fatalf("too long SASL response: got %q (err %v)", scanner.Text(), scanner.Err())
	}
}
