package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// clamd.go is a client for ClamAV's clamd and its INSTREAM command, as
// clamd(8) specifies it ("COMMANDS", INSTREAM):
//
//	It is mandatory to prefix this command with n or z. Scan a stream of
//	data. The stream is sent to clamd in chunks, after INSTREAM, on the
//	same socket on which the command was sent. [...] The format of the
//	chunk is: '<length><data>' where <length> is the size of the following
//	data in bytes expressed as a 4 byte unsigned integer in network byte
//	order and <data> is the actual chunk. Streaming is terminated by
//	sending a zero-length chunk. Note: do not exceed StreamMaxLength as
//	defined in clamd.conf, otherwise clamd will reply with INSTREAM size
//	limit exceeded and close the connection.
//
// With the z prefix every reply ends with a NUL: "stream: OK",
// "stream: <signature> FOUND", "<reason> ERROR", or "INSTREAM size limit
// exceeded. ERROR". One connection carries one scan: clamd closes it after
// the reply. (IDSESSION keeps a connection for several commands, but
// answers asynchronously and closes a session idle for clamd's
// IdleTimeout; a reused connection found closed half-way through a body
// could not be retried, as the body is streamed and not kept.) The pool
// is therefore a bound on the connections open at once, each one scan.

// Client limits.
const (
	// clamdChunk is the largest INSTREAM chunk sent; clamd takes any size
	// up to StreamMaxLength.
	clamdChunk = 64 << 10
	// clamdMaxReply bounds a reply read: clamd's replies are a signature
	// name or an error text, well under this.
	clamdMaxReply = 4096
	// maxSignature bounds the signature name taken from a reply (ClamAV's
	// names are tens of characters).
	maxSignature = 200
)

// Errors of a scan. Any other error (dial, write, read, timeout) means
// clamd could not be used.
var (
	// ErrClamdSizeLimit: clamd stopped the stream at its StreamMaxLength.
	ErrClamdSizeLimit = errors.New("clamd: INSTREAM size limit exceeded")
	// ErrClamdReply: a reply that is none of those clamd gives.
	ErrClamdReply = errors.New("clamd: malformed reply")
	// ErrClamdReadTimeout: clamd waited longer than its ReadTimeout for
	// the stream's next chunk ("COMMAND READ TIMED OUT"): the client
	// paused mid-message, not a scanner outage.
	ErrClamdReadTimeout = errors.New("clamd: COMMAND READ TIMED OUT (the stream paused past clamd's ReadTimeout)")
	// ErrClamdBusy: no connection slot was free within the timeout.
	ErrClamdBusy = errors.New("clamd: every connection is busy")
)

// Verdict is clamd's answer about one stream.
type Verdict struct {
	Infected  bool
	Signature string // the signature found, when Infected
}

// Scanner opens scans; *Clamd is one.
type Scanner interface {
	// Begin starts scanning one stream: the caller writes the data to the
	// ScanStream, then calls Finish, and always Close.
	Begin(ctx context.Context) (ScanStream, error)
}

// ScanStream is one scan in progress.
type ScanStream interface {
	io.Writer
	// Finish ends the stream and waits for the verdict.
	Finish() (Verdict, error)
	// Close releases the connection (any time, more than once).
	Close() error
}

// Clamd scans streams with clamd's INSTREAM over TCP or a Unix socket.
type Clamd struct {
	network, address string
	timeout          time.Duration
	slots            chan struct{}
	dialer           net.Dialer
}

// ParseClamdAddr splits "tcp://host:port" or "unix:///path/to/clamd.ctl"
// into a network and an address for net.Dial.
func ParseClamdAddr(s string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(s, "tcp://"):
		a := strings.TrimSuffix(strings.TrimPrefix(s, "tcp://"), "/")
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return "", "", fmt.Errorf("%q: want tcp://host:port", s)
		}
		return "tcp", a, nil
	case strings.HasPrefix(s, "unix://"):
		p := strings.TrimPrefix(s, "unix://")
		if !strings.HasPrefix(p, "/") || len(p) < 2 {
			return "", "", fmt.Errorf("%q: want unix:///absolute/path", s)
		}
		return "unix", p, nil
	}
	return "", "", fmt.Errorf("%q: want tcp://host:port or unix:///path", s)
}

// NewClamd returns a client for the clamd at addr (see ParseClamdAddr).
// timeout bounds each step: waiting for a connection slot, connecting,
// every write, and the reply after the stream ended. At most maxConns
// connections are open at once.
func NewClamd(addr string, timeout time.Duration, maxConns int) (*Clamd, error) {
	network, address, err := ParseClamdAddr(addr)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 || maxConns <= 0 {
		return nil, errors.New("clamd: timeout and maxConns must be positive")
	}
	return &Clamd{network: network, address: address, timeout: timeout, slots: make(chan struct{}, maxConns)}, nil
}

// String names the clamd, for logs.
func (c *Clamd) String() string { return c.network + "://" + c.address }

// Begin waits for a connection slot, connects and sends zINSTREAM.
func (c *Clamd) Begin(ctx context.Context) (ScanStream, error) {
	conn, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	s := &clamdStream{c: c, conn: conn}
	if err := s.write([]byte("zINSTREAM\x00")); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Ping sends zPING and expects PONG: whether clamd answers now.
func (c *Clamd) Ping(ctx context.Context) error {
	conn, err := c.open(ctx)
	if err != nil {
		return err
	}
	s := &clamdStream{c: c, conn: conn}
	defer s.Close()
	if err := s.write([]byte("zPING\x00")); err != nil {
		return err
	}
	r, err := s.reply()
	if err != nil {
		return err
	}
	if string(r) != "PONG" {
		return fmt.Errorf("%w: %q to PING", ErrClamdReply, clamdText(r))
	}
	return nil
}

func (c *Clamd) open(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w (%d): %w", ErrClamdBusy, cap(c.slots), ctx.Err())
	}
	conn, err := c.dialer.DialContext(ctx, c.network, c.address)
	if err != nil {
		<-c.slots
		return nil, fmt.Errorf("clamd: %w", err)
	}
	return conn, nil
}

// clamdStream is one INSTREAM scan on its own connection.
type clamdStream struct {
	c      *Clamd
	conn   net.Conn
	hdr    [4]byte
	closed bool
}

func (s *clamdStream) write(b []byte) error {
	s.conn.SetWriteDeadline(time.Now().Add(s.c.timeout))
	if _, err := s.conn.Write(b); err != nil {
		return s.writeFailed(err)
	}
	return nil
}

// Write sends p as INSTREAM chunks.
func (s *clamdStream) Write(p []byte) (int, error) {
	if s.closed {
		return 0, net.ErrClosed
	}
	written := 0
	for len(p) > 0 {
		k := min(len(p), clamdChunk)
		binary.BigEndian.PutUint32(s.hdr[:], uint32(k))
		s.conn.SetWriteDeadline(time.Now().Add(s.c.timeout))
		bufs := net.Buffers{s.hdr[:], p[:k]}
		if _, err := bufs.WriteTo(s.conn); err != nil {
			return written, s.writeFailed(err)
		}
		written += k
		p = p[k:]
	}
	return written, nil
}

// writeFailed explains a failed write: clamd may have answered and closed
// the connection (its size limit, an error), so what it said, if it said
// anything at once, is the better error.
func (s *clamdStream) writeFailed(err error) error {
	s.conn.SetReadDeadline(time.Now().Add(min(s.c.timeout, time.Second)))
	if r, rerr := s.reply(); rerr == nil {
		if _, perr := parseClamdReply(r); perr != nil {
			return perr
		}
	}
	return fmt.Errorf("clamd: write: %w", err)
}

// Finish sends the zero-length chunk and reads the verdict.
func (s *clamdStream) Finish() (Verdict, error) {
	if s.closed {
		return Verdict{}, net.ErrClosed
	}
	if err := s.write([]byte{0, 0, 0, 0}); err != nil {
		return Verdict{}, err
	}
	s.conn.SetReadDeadline(time.Now().Add(s.c.timeout))
	r, err := s.reply()
	if err != nil {
		return Verdict{}, err
	}
	return parseClamdReply(r)
}

// reply reads one NUL-terminated reply (the NUL left out).
func (s *clamdStream) reply() ([]byte, error) {
	return readClamdReply(s.conn)
}

// Close closes the connection and frees its slot.
func (s *clamdStream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.conn.Close()
	<-s.c.slots
	return err
}

// readClamdReply reads up to the first NUL, at most clamdMaxReply bytes. A
// reply cut by the end of the connection is returned as it is (clamd
// closes after answering); no bytes at all is an error.
func readClamdReply(r io.Reader) ([]byte, error) {
	buf := make([]byte, 0, 256)
	var tmp [256]byte
	for {
		n, err := r.Read(tmp[:])
		if i := bytes.IndexByte(tmp[:n], 0); i >= 0 {
			buf = append(buf, tmp[:i]...)
			break
		}
		buf = append(buf, tmp[:n]...)
		if len(buf) > clamdMaxReply {
			return nil, fmt.Errorf("%w: longer than %d bytes", ErrClamdReply, clamdMaxReply)
		}
		if err == io.EOF {
			if len(buf) == 0 {
				return nil, errors.New("clamd: connection closed without a reply")
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("clamd: read: %w", err)
		}
	}
	if len(buf) > clamdMaxReply {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrClamdReply, clamdMaxReply)
	}
	return bytes.TrimRight(buf, "\r\n"), nil
}

// parseClamdReply reads an INSTREAM reply: "stream: OK", "stream: NAME
// FOUND", "INSTREAM size limit exceeded. ERROR", "... ERROR". Anything else
// is ErrClamdReply; a signature name is made printable ASCII (others
// '?') without spaces at its ends, at most maxSignature bytes.
func parseClamdReply(r []byte) (Verdict, error) {
	s := string(r)
	switch {
	case s == "stream: OK":
		return Verdict{}, nil
	case strings.HasPrefix(s, "INSTREAM size limit exceeded"):
		return Verdict{}, ErrClamdSizeLimit
	case s == "COMMAND READ TIMED OUT":
		return Verdict{}, ErrClamdReadTimeout
	case strings.HasPrefix(s, "stream: ") && strings.HasSuffix(s, " FOUND") && len(s) > len("stream:  FOUND"):
		// Sliced, not trimmed: "stream: FOUND" has the two overlapping.
		// A detection whatever its name (third-party databases and YARA
		// rules name freely): taken as a scanner failure, FailOpen would
		// queue it. The name is made fit for a reply: printable ASCII,
		// at most maxSignature bytes.
		sig := strings.TrimSpace(clamdText([]byte(s[len("stream: ") : len(s)-len(" FOUND")])))
		if sig == "" {
			return Verdict{}, fmt.Errorf("%w: %q", ErrClamdReply, clamdText(r))
		}
		return Verdict{Infected: true, Signature: sig}, nil
	case strings.HasSuffix(s, " ERROR"):
		return Verdict{}, fmt.Errorf("clamd: %s", clamdText([]byte(strings.TrimSuffix(s, " ERROR"))))
	}
	return Verdict{}, fmt.Errorf("%w: %q", ErrClamdReply, clamdText(r))
}

// clamdText keeps printable ASCII, replacing the rest with '?', and cuts at
// 200 bytes: what a reply may put in a log line or an SMTP reply.
func clamdText(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}
