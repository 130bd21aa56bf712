package relay

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// eicar is the EICAR anti-virus test file (eicar.org), which every
// scanner detects; it is no virus.
const eicar = `X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`

// fakeClamd is an in-process stand-in for clamd speaking INSTREAM on
// 127.0.0.1, with the faults a real one shows.
type fakeClamd struct {
	t    testing.TB
	ln   net.Listener
	mode string // clean-or-eicar (""), hang, hang-reply, close-mid, garbage, error, slow, size-limit
	// maxBytes is its StreamMaxLength (0: none).
	maxBytes int64
	delay    time.Duration // mode slow

	scans   atomic.Int64 // INSTREAM commands seen
	streams atomic.Int64 // bytes received in chunks, all scans
	open    atomic.Int64 // connections open now
	maxOpen atomic.Int64
	wg      sync.WaitGroup
	stop    chan struct{}
}

func newFakeClamd(t testing.TB, mode string) *fakeClamd {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeClamd{t: t, ln: ln, mode: mode, stop: make(chan struct{}), delay: 3 * time.Second}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	return f
}

func (f *fakeClamd) addr() string { return "tcp://" + f.ln.Addr().String() }

func (f *fakeClamd) close() {
	select {
	case <-f.stop:
		return
	default:
	}
	close(f.stop)
	f.ln.Close()
	f.wg.Wait()
}

func (f *fakeClamd) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer c.Close()
			n := f.open.Add(1)
			defer f.open.Add(-1)
			for {
				m := f.maxOpen.Load()
				if n <= m || f.maxOpen.CompareAndSwap(m, n) {
					break
				}
			}
			go func() { <-f.stop; c.Close() }()
			f.handle(c)
		}()
	}
}

func (f *fakeClamd) handle(c net.Conn) {
	cmd, err := readUntilNUL(c)
	if err != nil {
		return
	}
	switch cmd {
	case "zPING":
		c.Write([]byte("PONG\x00"))
		return
	case "zINSTREAM":
	default:
		c.Write([]byte("UNKNOWN COMMAND\x00"))
		return
	}
	f.scans.Add(1)
	if f.mode == "hang" {
		<-f.stop // reads nothing: the client's writes stall once the buffers are full
		return
	}
	var body bytes.Buffer
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			break
		}
		if f.mode == "close-mid" {
			return // closes with the first chunk unread
		}
		if f.maxBytes > 0 && int64(body.Len())+int64(n) > f.maxBytes || f.mode == "size-limit" {
			c.Write([]byte("INSTREAM size limit exceeded. ERROR\x00"))
			return
		}
		if _, err := io.CopyN(&body, c, int64(n)); err != nil {
			return
		}
		f.streams.Add(int64(n))
	}
	switch f.mode {
	case "hang-reply":
		<-f.stop
	case "garbage":
		c.Write([]byte("\xff\xfe hello there \x01\x00"))
	case "error":
		c.Write([]byte("stream: Can't allocate memory ERROR\x00"))
	case "slow":
		select {
		case <-time.After(f.delay):
		case <-f.stop:
			return
		}
		c.Write([]byte("stream: OK\x00"))
	default:
		if strings.Contains(body.String(), "EICAR-STANDARD-ANTIVIRUS-TEST-FILE") {
			c.Write([]byte("stream: Eicar-Test-Signature FOUND\x00"))
		} else {
			c.Write([]byte("stream: OK\x00"))
		}
	}
}

func readUntilNUL(r io.Reader) (string, error) {
	var b []byte
	var one [1]byte
	for len(b) < 64 {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			return "", err
		}
		if one[0] == 0 {
			return string(b), nil
		}
		b = append(b, one[0])
	}
	return string(b), nil
}
