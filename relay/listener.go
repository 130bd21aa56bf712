package relay

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"time"
)

// listener wraps the TCP listener: it enforces the connection limits, wraps
// each connection in a trackedConn, and for implicit TLS (port 465) puts the
// TLS server on top.
type listener struct {
	net.Listener
	tlsConfig  *tls.Config // non-nil: implicit TLS
	idle       time.Duration
	maxSession time.Duration
	preauth    time.Duration // the pre-authentication budget (0: none)
	// limits are the Server's connection limits, shared by all its
	// listeners (the totals are per process, not per port).
	limits *connLimits

	// proxies are the peers whose PROXY protocol header is read.
	proxies []netip.Prefix

	mu    sync.Mutex
	conns map[*trackedConn]struct{}
	log   func(msg string, args ...any)
	info  func(msg string, args ...any)
	stats *counters

	proxyOnce sync.Once
	ready     chan net.Conn
	done      chan struct{}
	acceptErr error
}

func (l *listener) Accept() (net.Conn, error) {
	if len(l.proxies) > 0 {
		return l.acceptProxied()
	}
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if c := l.admit(nc); c != nil {
			return c, nil
		}
	}
}

// acceptProxied hands out connections whose PROXY header has been read.
// Headers are read in a goroutine per connection, so a slow or silent peer
// never holds up the others.
func (l *listener) acceptProxied() (net.Conn, error) {
	l.proxyOnce.Do(func() {
		l.ready = make(chan net.Conn)
		l.done = make(chan struct{})
		go l.proxyLoop()
	})
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.acceptErr
	}
}

func (l *listener) proxyLoop() {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			l.acceptErr = err
			close(l.done)
			return
		}
		go func() {
			conn := nc
			if trustedProxy(l.proxies, nc.RemoteAddr()) {
				pc, err := acceptProxy(nc, 10*time.Second)
				if err != nil {
					l.log("PROXY header missing or malformed from a trusted proxy; connection dropped", "peer", nc.RemoteAddr().String(), "err", err)
					nc.Close()
					return
				}
				conn = pc
			}
			c := l.admit(conn)
			if c == nil {
				return
			}
			select {
			case l.ready <- c:
			case <-l.done:
				c.Close()
			}
		}()
	}
}

// admit applies the connection limits and wraps an accepted connection; nil
// means it was refused (and closed).
func (l *listener) admit(nc net.Conn) net.Conn {
	ip := remoteIP(nc.RemoteAddr())
	key := limitKey(nc.RemoteAddr())
	if over, overIP := l.limits.acquire(key); over || overIP {
		l.stats.connsRefused.Add(1)
		l.log("connection refused: limit reached", "remote", ip, "per_ip", overIP, "key", key)
		if l.tlsConfig == nil {
			nc.SetWriteDeadline(time.Now().Add(time.Second))
			nc.Write([]byte("421 4.7.0 Too many connections, try again later\r\n"))
		}
		nc.Close()
		return nil
	}
	tc := &trackedConn{Conn: nc, l: l, idle: l.idle, limitKey: key}
	if l.maxSession > 0 {
		tc.deadline = time.Now().Add(l.maxSession)
	}
	if l.preauth > 0 {
		tc.preauthEnd.Store(time.Now().Add(l.preauth).UnixNano())
	}
	// top is set before the connection is published in l.conns, where
	// Shutdown's say421 reads it (under tc.mu).
	var top net.Conn = tc
	if l.tlsConfig != nil {
		top = tls.Server(tc, l.tlsConfig)
	}
	tc.setTop(top)
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	l.stats.conns.Add(1)
	l.info("connect", "remote", ip, "listener", nc.LocalAddr().String(), "implicit_tls", l.tlsConfig != nil)
	return top
}

func (l *listener) forget(c *trackedConn) {
	l.mu.Lock()
	_, ok := l.conns[c]
	delete(l.conns, c)
	l.mu.Unlock()
	if ok {
		l.limits.release(c.limitKey)
	}
}

func (l *listener) snapshot() []*trackedConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		out = append(out, c)
	}
	return out
}

// remoteIP is the IP part of a remote address, for logs and limits.
func remoteIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}
