package outbound

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/queue"
)

// tlsOnlyListener accepts TLS connections on loopback with cfg, runs the
// handshake (which fails as cfg makes it) and closes them.
func tlsOnlyListener(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if err := c.(*tls.Conn).Handshake(); err == nil {
				_, _ = c.Write([]byte("220 gw.test ESMTP\r\n"))
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// Real handshakes that fail are TLS failures (4.7.5) without any look at
// the error's text: a server that only speaks a protocol version the
// client refuses (its alert ends the handshake), and a TLS 1.3 server that
// wants a client certificate (its alert arrives after the client's side of
// the handshake is done, at the greeting, as crypto/tls's *net.OpError
// "remote error": before issue 9 only the text "tls:" caught it).
func TestRealTLSFailuresAreTLSVerdicts(t *testing.T) {
	tests := []struct {
		name string
		edit func(*tls.Config)
	}{
		{"old protocol version", func(c *tls.Config) { c.MaxVersion = tls.VersionTLS11 }},
		{"client certificate required after handshake", func(c *tls.Config) {
			c.MinVersion = tls.VersionTLS13
			c.ClientAuth = tls.RequireAnyClientCert
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, pool := selfSigned(t)
			tt.edit(cfg)
			addr := tlsOnlyListener(t, cfg)
			h := newHarness(t, func(o *Options) {
				o.Gateway, o.GatewayTLS = addr, GatewayTLSImplicit
				o.GatewayRootCAs, o.GatewayTLSVerify = pool, true
			})
			h.enqueue(nil, bob)
			r := rcpt(t, h.attempt(), bob)
			if r.Status != queue.StatusPending || r.Reply.Code != 451 || r.Reply.Enhanced != "4.7.5" ||
				!strings.HasPrefix(strings.Join(r.Reply.Lines, " "), "TLS handshake with host failed: ") {
				t.Fatalf("status %s reply %q, want pending with 451 4.7.5 TLS handshake with host failed", r.Status, r.Reply)
			}
		})
	}
}
