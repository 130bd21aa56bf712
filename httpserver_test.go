package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// startHTTP serves a tiny handler on 127.0.0.1 with lim.
func startHTTP(t *testing.T, lim httpLimits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	srv, l := newHTTPServer(mux, ln, lim)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// get sends one keep-alive request on c and reads the response.
func get(c net.Conn, br *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// closedByServer reports whether the server closes c (EOF or reset) before
// a generous bound.
func closedByServer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestHTTPIdleKeepAliveClosed: an idle keep-alive connection is closed by
// the server after the idle timeout; before, it was held forever.
func TestHTTPIdleKeepAliveClosed(t *testing.T) {
	lim := defaultHTTPLimits
	lim.idle = 200 * time.Millisecond
	addr := startHTTP(t, lim)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	if err := get(c, br); err != nil {
		t.Fatal(err)
	}
	if !closedByServer(c) {
		t.Fatal("idle keep-alive connection still open 10 s after its request (idle timeout 200 ms)")
	}
}

// TestHTTPSilentConnectionClosed: a connection that never sends a request
// line is closed (header read timeout), not held.
func TestHTTPSilentConnectionClosed(t *testing.T) {
	lim := defaultHTTPLimits
	lim.readHeader = 200 * time.Millisecond
	addr := startHTTP(t, lim)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !closedByServer(c) {
		t.Fatal("silent connection still open after 10 s")
	}
}

// TestHTTPConnectionCap: past maxConns open connections, a new one is
// closed at once; when one closes, a new one is served again.
func TestHTTPConnectionCap(t *testing.T) {
	lim := defaultHTTPLimits
	lim.maxConns = 2
	addr := startHTTP(t, lim)
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := get(c, bufio.NewReader(c)); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := get(c3, bufio.NewReader(c3)); err == nil {
		t.Fatal("a third connection was served with a cap of 2")
	}
	held[0].Close()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		err = get(c, bufio.NewReader(c))
		c.Close()
		if err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("no connection served after one of two closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
