package relay

import (
	"crypto/tls"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// trackedConn is the TCP connection under everything else (go-smtp, TLS).
// It gives every read a fresh idle deadline bounded by the session's
// maximum duration, and lets the server find and close connections on
// shutdown.
type trackedConn struct {
	net.Conn
	l        *listener
	idle     time.Duration
	deadline time.Time // the session's end (zero: none)

	reading   atomic.Bool  // blocked in Read, waiting for the client
	readSince atomic.Int64 // unix nanos when the current Read began
	inTxn     atomic.Bool  // between MAIL and the reply to DATA
	// closeAfterWrite closes the connection once the next reply is written
	// (after a 421).
	closeAfterWrite atomic.Bool

	// limitKey is what the per-IP limit counted this connection as.
	limitKey string

	mu  sync.Mutex
	top net.Conn // what go-smtp reads and writes: itself, or the TLS conn on it

	closeOnce sync.Once
}

func (c *trackedConn) Read(p []byte) (int, error) {
	d := time.Now().Add(c.idle)
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	c.Conn.SetReadDeadline(d)
	c.readSince.Store(time.Now().UnixNano())
	c.reading.Store(true)
	n, err := c.Conn.Read(p)
	c.reading.Store(false)
	return n, err
}

// SetReadDeadline is managed by Read; go-smtp's own per-command deadlines
// are superseded by the idle timeout applied to every read.
func (c *trackedConn) SetReadDeadline(time.Time) error { return nil }

// SetDeadline keeps the write half of what the caller asks.
func (c *trackedConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if c.closeAfterWrite.Load() {
		c.Close()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.l.forget(c)
	})
	return err
}

func (c *trackedConn) setTop(top net.Conn) {
	c.mu.Lock()
	c.top = top
	c.mu.Unlock()
}

// idleFor reports whether the connection has been waiting for the client,
// outside a mail transaction, for at least d: every reply has been written,
// so a 421 can be sent without interleaving with one of go-smtp's.
func (c *trackedConn) idleFor(d time.Duration) bool {
	return c.reading.Load() && !c.inTxn.Load() &&
		time.Since(time.Unix(0, c.readSince.Load())) >= d
}

// topConn is what go-smtp reads and writes now (it changes at STARTTLS).
func (c *trackedConn) topConn() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.top
}

// say421 writes a final 421 reply (best effort, bounded) and closes.
func (c *trackedConn) say421(text string) {
	top := c.topConn()
	if top != nil {
		ok := true
		if tc, isTLS := top.(*tls.Conn); isTLS {
			ok = tc.ConnectionState().HandshakeComplete
		}
		if ok {
			top.SetWriteDeadline(time.Now().Add(2 * time.Second))
			top.Write([]byte(text + "\r\n"))
		}
	}
	c.Close()
}

// listener wraps the TCP listener: it enforces the connection limits, wraps
// each connection in a trackedConn, and for implicit TLS (port 465) puts the
// TLS server on top.
type listener struct {
	net.Listener
	tlsConfig  *tls.Config // non-nil: implicit TLS
	idle       time.Duration
	maxSession time.Duration
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

// underlying finds the trackedConn beneath what go-smtp holds.
func underlying(c net.Conn) *trackedConn {
	for {
		switch v := c.(type) {
		case *trackedConn:
			return v
		case *tls.Conn:
			c = v.NetConn()
		default:
			return nil
		}
	}
}
