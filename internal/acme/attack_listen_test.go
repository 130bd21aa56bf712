package acme

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestAttackHTTP01ListenerServesNothingElse: the http-01 listener answers
// 404 for anything but a pending challenge: other paths, traversal in the
// path or the Host, absolute-form (proxy) requests, CONNECT, methods other
// than GET; headers are bounded, and a client that never finishes its
// header is cut off.
func TestAttackHTTP01ListenerServesNothingElse(t *testing.T) {
	var logs syncBuffer
	m := testManager(t, nil, &certmagic.FileStorage{Path: t.TempDir()}, &logs, func(o *Options) { o.Challenge = HTTP01 })
	addr := m.ChallengeAddr().String()
	for _, req := range []string{
		"GET / HTTP/1.1\r\nHost: smtp.acme.test\r\n\r\n",
		"GET /.well-known/acme-challenge/../../../../etc/passwd HTTP/1.1\r\nHost: smtp.acme.test\r\n\r\n",
		"GET /.well-known/acme-challenge/x HTTP/1.1\r\nHost: ../../../../etc\r\n\r\n",
		"GET /.well-known/acme-challenge/x HTTP/1.1\r\nHost: smtp.acme.test\r\n\r\n",
		"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
		"GET http://127.0.0.1:1/.well-known/acme-challenge/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
		"POST /.well-known/acme-challenge/x HTTP/1.1\r\nHost: smtp.acme.test\r\nContent-Length: 0\r\n\r\n",
		"CONNECT smtp.gmail.com:25 HTTP/1.1\r\nHost: smtp.gmail.com:25\r\n\r\n",
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		c.Close()
		if resp.StatusCode/100 == 2 || resp.StatusCode/100 == 3 {
			t.Errorf("%q: %s %q", strings.SplitN(req, "\r\n", 2)[0], resp.Status, body)
		}
	}
	// A header over the bound.
	c, _ := net.Dial("tcp", addr)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil && resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a 64 KiB header: %s", resp.Status)
	}
	c.Close()
	// Slowloris: a header never finished is cut off (ReadHeaderTimeout 10 s).
	c, _ = net.Dial("tcp", addr)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	begin := time.Now()
	io.Copy(io.Discard, c)
	if d := time.Since(begin); d > 12*time.Second {
		t.Errorf("an unfinished header held the connection for %v", d)
	}
}

// TestAttackTLSALPNListenerOnlyACME: the tls-alpn-01 listener completes
// no handshake that offers another protocol, and never carries
// application data.
func TestAttackTLSALPNListenerOnlyACME(t *testing.T) {
	var logs syncBuffer
	m := testManager(t, nil, &certmagic.FileStorage{Path: t.TempDir()}, &logs, nil)
	addr := m.ChallengeAddr().String()
	_, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "smtp.acme.test", NextProtos: []string{"h2", "http/1.1"}})
	if err == nil {
		t.Fatal("a handshake offering h2 and http/1.1 completed on the tls-alpn-01 listener")
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "smtp.acme.test"})
	if err == nil {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "EHLO x\r\n")
		if b, _ := io.ReadAll(c); len(b) > 0 {
			t.Fatalf("the tls-alpn-01 listener answered data: %q", b)
		}
		c.Close()
	}
}
