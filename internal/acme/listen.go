package acme

import (
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/mholt/acmez/v3"
)

// Listen opens the challenge listener on ListenHost:Port and serves it
// until Stop: tls-alpn-01's TLS handshakes (RFC 8737; nothing else is
// served on it) or http-01's /.well-known/acme-challenge/ (404 for any
// other path). It is open from the start, on every front end, so that
// the CA's validation succeeds whichever front end a load balancer sends
// it to: the challenge is in the shared storage (certmagic's distributed
// solving), and certmagic's own solver, finding the port taken, leaves it
// to this listener. Call it before Start; an error (the port taken, not
// allowed) is a configuration problem. dns-01 needs no listener.
func (m *Manager) Listen() error {
	if m.opts.Challenge == DNS01 {
		return nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(m.opts.ListenHost, strconv.Itoa(m.opts.Port)))
	if err != nil {
		return err
	}
	m.challengeLn = ln
	m.log.Info("ACME: challenge listener up", "challenge", m.opts.Challenge, "addr", ln.Addr().String())
	if m.opts.Challenge == HTTP01 {
		srv := &http.Server{
			Handler:           m.issuer.HTTPChallengeHandler(http.NotFoundHandler()),
			ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    8 << 10,
		}
		go srv.Serve(ln)
		return nil
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{acmez.ACMETLS1Protocol},
		GetCertificate: m.magic.GetCertificate,
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tls.Server(c, cfg).Handshake()
			}()
		}
	}()
	return nil
}

// ChallengeAddr is the challenge listener's address (after Listen).
func (m *Manager) ChallengeAddr() net.Addr {
	if m.challengeLn == nil {
		return nil
	}
	return m.challengeLn.Addr()
}
