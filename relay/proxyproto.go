package relay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// PROXY protocol (HAProxy, versions 1 and 2): a load balancer that
// terminates TCP (Fly.io's proxy, AWS NLB with proxy protocol, HAProxy)
// tells edgerelay the real client address in a header before the SMTP
// session starts. Without it every client would share the proxy's address,
// and per-IP limits and AUTH throttling would lock out everyone at once.
//
// The header is read only from peers in the trusted prefixes, and from them
// it is required: a trusted peer without one is dropped, and an untrusted
// peer's header is never read (it would be an SMTP protocol error).

var proxyV2Sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

var errProxyHeader = errors.New("relay: malformed PROXY protocol header")

// readProxyHeader reads a v1 or v2 header from br and returns the source
// address it carries, or nil when the header says the connection is the
// proxy's own (v1 "UNKNOWN", v2 LOCAL): then the peer address stands.
func readProxyHeader(br *bufio.Reader) (net.Addr, error) {
	sig, err := br.Peek(12)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errProxyHeader, err)
	}
	if bytes.Equal(sig, proxyV2Sig) {
		return readProxyV2(br)
	}
	if bytes.HasPrefix(sig, []byte("PROXY ")) {
		return readProxyV1(br)
	}
	return nil, errProxyHeader
}

// readProxyV1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n", at most
// 107 bytes.
func readProxyV1(br *bufio.Reader) (net.Addr, error) {
	var line []byte
	for len(line) < 108 {
		b, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errProxyHeader, err)
		}
		line = append(line, b)
		if b == '\n' {
			break
		}
	}
	s, ok := strings.CutSuffix(string(line), "\r\n")
	if !ok {
		return nil, errProxyHeader
	}
	f := strings.Split(s, " ")
	if len(f) >= 2 && f[1] == "UNKNOWN" {
		return nil, nil
	}
	if len(f) != 6 || f[1] != "TCP4" && f[1] != "TCP6" {
		return nil, errProxyHeader
	}
	ip, err := netip.ParseAddr(f[2])
	if err != nil || (f[1] == "TCP4") != ip.Is4() {
		return nil, errProxyHeader
	}
	port, err := strconv.ParseUint(f[4], 10, 16)
	if err != nil || strings.HasPrefix(f[4], "0") && f[4] != "0" {
		return nil, errProxyHeader
	}
	if _, err := netip.ParseAddr(f[3]); err != nil {
		return nil, errProxyHeader
	}
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(port))), nil
}

// readProxyV2: 12-byte signature, version/command, family/protocol, length,
// then the addresses (and TLVs, ignored).
func readProxyV2(br *bufio.Reader) (net.Addr, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", errProxyHeader, err)
	}
	if hdr[12]>>4 != 2 {
		return nil, errProxyHeader
	}
	n := int(binary.BigEndian.Uint16(hdr[14:16]))
	if n > 2048 {
		return nil, errProxyHeader
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("%w: %v", errProxyHeader, err)
	}
	switch hdr[12] & 0xf {
	case 0: // LOCAL: the proxy's own connection (health checks)
		return nil, nil
	case 1: // PROXY
	default:
		return nil, errProxyHeader
	}
	switch hdr[13] {
	case 0x11: // TCP over IPv4
		if n < 12 {
			return nil, errProxyHeader
		}
		ip := netip.AddrFrom4([4]byte(body[0:4]))
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[8:10]))), nil
	case 0x21: // TCP over IPv6
		if n < 36 {
			return nil, errProxyHeader
		}
		ip := netip.AddrFrom16([16]byte(body[0:16])).Unmap()
		return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, binary.BigEndian.Uint16(body[32:34]))), nil
	case 0x00: // UNSPEC
		return nil, nil
	}
	return nil, errProxyHeader
}

// proxiedConn is a connection whose first bytes were a PROXY header: reads
// continue from the buffered reader, and RemoteAddr is the client's.
type proxiedConn struct {
	net.Conn
	br     *bufio.Reader
	remote net.Addr
}

func (c *proxiedConn) Read(p []byte) (int, error) { return c.br.Read(p) }
func (c *proxiedConn) RemoteAddr() net.Addr       { return c.remote }

// trusted reports whether the peer may send a PROXY header.
func trustedProxy(prefixes []netip.Prefix, a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(ta.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// acceptProxy reads the PROXY header of a connection from a trusted proxy,
// within timeout. It returns the connection to use, or an error (the
// connection is then closed by the caller).
func acceptProxy(nc net.Conn, timeout time.Duration) (net.Conn, error) {
	nc.SetReadDeadline(time.Now().Add(timeout))
	br := bufio.NewReaderSize(nc, 256)
	src, err := readProxyHeader(br)
	nc.SetReadDeadline(time.Time{})
	if err != nil {
		return nil, err
	}
	if src == nil {
		src = nc.RemoteAddr()
	}
	return &proxiedConn{Conn: nc, br: br, remote: src}, nil
}
