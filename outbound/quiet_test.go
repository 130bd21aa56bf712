package outbound

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// tcpPair is a connected loopback TCP pair: client side, server side.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// settle gives loopback bytes written by the peer time to arrive, so that
// the test asks about bytes that have arrived (quiet promises nothing about
// bytes in flight).
func settle() { time.Sleep(20 * time.Millisecond) }

// TestQuietAsksTheSocket: a pooled connection is quiet only when nothing
// was sent on it since its last reply: bytes in the socket, a close by the
// peer, or a reset make it not quiet, on plain TCP and under TLS, where
// the stale reply may already sit decrypted in the TLS layer.
func TestQuietAsksTheSocket(t *testing.T) {
	t.Run("plain idle", func(t *testing.T) {
		c, _ := tcpPair(t)
		if sent, known := arrived(c); sent || !known {
			t.Fatalf("arrived = %v, %v; want false, true", sent, known)
		}
		if !newReplyGuard(c).quiet(c) {
			t.Fatal("an idle connection is not quiet")
		}
	})
	t.Run("plain stale reply", func(t *testing.T) {
		c, s := tcpPair(t)
		s.Write([]byte("250 stale\r\n"))
		settle()
		g := newReplyGuard(c)
		if g.quiet(c) {
			t.Fatal("a connection with a stale reply is quiet")
		}
		// The bytes were only peeked at: the guard still sees them pending.
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if string(buf[:n]) != "250 stale\r\n" {
			t.Fatalf("after quiet the socket holds %q", buf[:n])
		}
	})
	t.Run("plain peer closed", func(t *testing.T) {
		c, s := tcpPair(t)
		s.Close()
		settle()
		if newReplyGuard(c).quiet(c) {
			t.Fatal("a connection the peer closed is quiet")
		}
	})
	t.Run("plain closed here", func(t *testing.T) {
		c, _ := tcpPair(t)
		c.Close()
		if newReplyGuard(c).quiet(c) {
			t.Fatal("a closed connection is quiet")
		}
	})
	tlsPair := func(t *testing.T) (raw net.Conn, tc *tls.Conn, ts *tls.Conn) {
		c, s := tcpPair(t)
		cfg, pool := selfSigned(t)
		ts = tls.Server(s, cfg)
		tc = tls.Client(c, &tls.Config{RootCAs: pool, ServerName: "gw.test"})
		done := make(chan error, 1)
		go func() { done <- ts.Handshake() }()
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// One exchange, so that the session tickets TLS 1.3 sends after
		// the handshake are read, as they are by a pooled connection's
		// earlier replies.
		go ts.Write([]byte("250 ok\r\n"))
		buf := make([]byte, 64)
		if _, err := tc.Read(buf); err != nil {
			t.Fatal(err)
		}
		return c, tc, ts
	}
	t.Run("tls idle", func(t *testing.T) {
		raw, tc, _ := tlsPair(t)
		if !newReplyGuard(tc).quiet(raw) {
			t.Fatal("an idle TLS connection is not quiet")
		}
		// And still usable after the look.
		if _, err := tc.Write([]byte("NOOP\r\n")); err != nil {
			t.Fatalf("write after quiet: %v", err)
		}
	})
	t.Run("tls stale reply in the socket", func(t *testing.T) {
		raw, tc, ts := tlsPair(t)
		ts.Write([]byte("250 stale\r\n"))
		settle()
		if newReplyGuard(tc).quiet(raw) {
			t.Fatal("a TLS connection with a stale reply in the socket is quiet")
		}
	})
	t.Run("tls stale reply already decrypted", func(t *testing.T) {
		raw, tc, ts := tlsPair(t)
		// Two replies in one record; reading one line leaves the other
		// decrypted in crypto/tls's buffer, none in the socket.
		ts.Write([]byte("250 one\r\n250 stale\r\n"))
		settle()
		buf := make([]byte, 9)
		if n, err := tc.Read(buf); err != nil || string(buf[:n]) != "250 one\r\n" {
			t.Fatalf("read %q, %v", buf[:n], err)
		}
		if sent, _ := arrived(raw); sent {
			t.Fatal("test setup: the socket still holds bytes")
		}
		g := newReplyGuard(tc)
		if g.quiet(raw) {
			t.Fatal("a TLS connection with a decrypted stale reply is quiet")
		}
		if !g.pending() {
			t.Fatal("the stale reply is not kept pending in the guard")
		}
	})
}
