package outbound

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// InboundAddr is Options.InboundGateway as read by ParseInboundGateway:
// where the internal mail server listens and which protocol it speaks.
type InboundAddr struct {
	// Network is "tcp" or "unix".
	Network string
	// Addr is "host:port" (tcp) or the socket's path (unix).
	Addr string
	// LMTP selects LMTP (RFC 2033) instead of SMTP.
	LMTP bool
}

// ErrInboundGateway is wrapped by every error of ParseInboundGateway.
var ErrInboundGateway = errors.New("want host:port or smtp://host:port (SMTP), lmtp://host:port or lmtp+unix:///path (LMTP; unix:///path too)")

// ParseInboundGateway reads the forms of Options.InboundGateway:
//
//	host:port, smtp://host:port   SMTP over TCP (STARTTLS when offered)
//	lmtp://host:port              LMTP over TCP (STARTTLS when offered)
//	lmtp+unix:///path, unix:///path  LMTP over a Unix socket (Dovecot's and
//	                              Cyrus's usual lmtp socket), never TLS
//
// On an error the InboundAddr returned is still usable: s dialed over TCP
// with SMTP, as before the other forms existed, so that a value that was
// not validated fails at the dial, not here.
func ParseInboundGateway(s string) (InboundAddr, error) {
	fallback := InboundAddr{Network: "tcp", Addr: s}
	bad := func(why string) (InboundAddr, error) {
		return fallback, fmt.Errorf("%q %s: %w", s, why, ErrInboundGateway)
	}
	scheme, rest, found := strings.Cut(s, "://")
	if !found {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return bad("is not host:port")
		}
		return fallback, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad("is not a plain URL")
	}
	switch strings.ToLower(scheme) {
	case "smtp", "lmtp":
		if (u.Path != "" && u.Path != "/") || !isHostPort(u.Host) {
			return bad("does not name host:port after " + scheme + "://")
		}
		return InboundAddr{Network: "tcp", Addr: u.Host, LMTP: strings.EqualFold(scheme, "lmtp")}, nil
	case "lmtp+unix", "unix":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") || len(u.Path) < 2 || !strings.HasPrefix(rest, "/") {
			return bad("does not name an absolute socket path (" + scheme + ":///path)")
		}
		return InboundAddr{Network: "unix", Addr: u.Path, LMTP: true}, nil
	}
	return bad("has an unknown scheme " + scheme)
}

// isHostPort reports whether s is host:port with both parts present.
func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	return err == nil && host != "" && port != ""
}

// host is the server's name for TLS and the RemoteMTA text: the host of
// host:port, or the socket's path.
func (a InboundAddr) host() string {
	if a.Network == "unix" {
		return a.Addr
	}
	if h, _, err := net.SplitHostPort(a.Addr); err == nil {
		return h
	}
	return a.Addr
}
