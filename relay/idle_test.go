package relay

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// An idle session waits for its next command on the socket (idle.go):
// nothing a client sees may change.

// TestIdleWaitTLSBuffered: more pipelined commands in one TLS record than
// go-smtp's 4 KiB read buffer takes leave the rest decrypted in crypto/tls
// with the socket empty; the wait must not sit on the socket then (it
// would until the idle timeout, a minute here: the client's reads give up
// after 10 s).
func TestIdleWaitTLSBuffered(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleTimeout = time.Minute })
	for name, c := range map[string]*client{"587": e.authed(alice, alicePW), "465": func() *client {
		c := e.dialTLS()
		c.ehlo()
		c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
		return c
	}()} {
		const n = 1500 // 9,000 bytes: one TLS record
		if _, err := io.WriteString(c.conn, strings.Repeat("NOOP\r\n", n)); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			if code, msg := c.read(); code != 250 {
				t.Fatalf("%s: NOOP %d: %d %s", name, i, code, msg)
			}
		}
		c.must(250, "2.", "MAIL FROM:<%s>", alice)
	}
}

// TestIdleWaitPlaintextPipelined: the same before STARTTLS, with the
// commands arriving in pieces.
func TestIdleWaitPlaintextPipelined(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	io.WriteString(c.conn, "EH")
	time.Sleep(20 * time.Millisecond)
	io.WriteString(c.conn, "LO client.test\r\nNOOP\r\n")
	c.expect(250)
	c.expect(250)
	c.must(220, "", "STARTTLS")
}

// TestIdleWaitTimeoutAndShutdown: an idle authenticated session still gets
// 421 4.4.2 at the idle timeout, and 421 4.3.2 at once on shutdown.
func TestIdleWaitTimeoutAndShutdown(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.IdleTimeout = time.Second })
	c := e.authed(alice, alicePW)
	start := time.Now()
	if code, msg := c.read(); code != 421 || !strings.HasPrefix(msg, "4.4.2") {
		t.Fatalf("idle timeout: got %d %s", code, msg)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}

	e2 := newEnv(t)
	c2 := e2.authed(alice, alicePW)
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e2.srv.Shutdown(ctx) }()
	if code, msg := c2.read(); code != 421 || !strings.HasPrefix(msg, "4.3.2") {
		t.Fatalf("shutdown: got %d %s", code, msg)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("shutdown waited for the grace period: the idle session was not seen as idle")
	}
}
