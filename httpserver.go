package main

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// httpLimits bound the HTTP listener (/healthz, /readyz, /metrics): it is
// on all interfaces by default, so a peer that opens connections and says
// nothing, or keeps them idle, must not hold them (or file descriptors)
// forever.
type httpLimits struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int // open connections at once; past it, new ones are closed
}

// defaultHTTPLimits: probes and scrapes are small and quick; 64
// connections are plenty for orchestrator probes and a few scrapers.
var defaultHTTPLimits = httpLimits{
	readHeader: 5 * time.Second,
	read:       10 * time.Second,
	write:      30 * time.Second,
	idle:       60 * time.Second,
	maxConns:   64,
}

// newHTTPServer serves h on ln within lim: it returns the server and the
// listener to pass to Serve (ln with the connection cap).
func newHTTPServer(h http.Handler, ln net.Listener, lim httpLimits) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    16 << 10,
	}
	if lim.maxConns > 0 {
		ln = &capListener{Listener: ln, free: make(chan struct{}, lim.maxConns)}
	}
	return srv, ln
}

// capListener holds at most cap(free) connections open; a connection past
// that is closed at once (the client sees a reset or EOF and retries)
// rather than queued, so a flood cannot delay the probes behind it for
// long. (golang.org/x/net/netutil.LimitListener waits instead.)
type capListener struct {
	net.Listener
	free chan struct{} // one token per open connection
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.free <- struct{}{}:
			return &cappedConn{Conn: c, release: func() { <-l.free }}, nil
		default:
			c.Close()
		}
	}
}

// cappedConn gives its slot back once, on the first Close.
type cappedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
