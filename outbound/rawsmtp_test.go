package outbound

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// rawServer is a hand-written SMTP server on 127.0.0.1 for the cases a
// go-smtp server cannot play: an EHLO without 8BITMIME, a connection
// dropped right after a given reply. It offers PIPELINING unless noPipe
// is set before the first connection, and answers DATA 554 when no RCPT
// of the transaction was accepted. Each command line goes to answer,
// which returns the reply to send ("" for the default) and whether to hang
// up after it.
type rawServer struct {
	Addr string
	ln   net.Listener
	// ext are the EHLO keywords offered.
	ext    []string
	answer func(conn int, cmd string) (reply string, hangup bool)
	noPipe atomic.Bool // EHLO does not offer PIPELINING

	mu    sync.Mutex
	conns int
	cmds  []string // "conn: command", in order
	reads []string // "conn: bytes" of each read from a connection, in order
	msgs  []rawMsg
	wg    sync.WaitGroup
}

// rawMsg is one message the raw server accepted.
type rawMsg struct {
	Conn int
	Mail string
	Body string
}

func newRawServer(t testing.TB, ext []string, answer func(conn int, cmd string) (string, bool)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{Addr: ln.Addr().String(), ln: ln, ext: ext, answer: answer}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *rawServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns++
		n := s.conns
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.session(n, c)
		}()
	}
}

func (s *rawServer) session(n int, c net.Conn) {
	br := bufio.NewReader(readLog{c, s, n})
	say := func(l string) bool { _, err := c.Write([]byte(l + "\r\n")); return err == nil }
	if !say("220 raw.test ESMTP") {
		return
	}
	var mail string
	rcpts := 0 // RCPTs accepted in this transaction
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.cmds = append(s.cmds, fmt.Sprintf("%d: %s", n, cmd))
		s.mu.Unlock()
		verb := strings.ToUpper(strings.Fields(cmd + " x")[0])
		reply, hangup := "", false
		if s.answer != nil {
			reply, hangup = s.answer(n, cmd)
		}
		if reply == "" {
			switch verb {
			case "EHLO":
				kw := append([]string{"raw.test"}, s.ext...)
				if !s.noPipe.Load() {
					kw = append(kw, "PIPELINING")
				}
				reply = "250-" + strings.Join(kw, "\r\n250-")
				reply = reply[:strings.LastIndex(reply, "250-")] + "250 " + kw[len(kw)-1]
			case "MAIL":
				mail, rcpts = cmd, 0
				reply = "250 2.1.0 ok"
			case "DATA":
				if rcpts == 0 {
					// RFC 5321 §3.3; with PIPELINING the client sends DATA
					// after every RCPT was refused (RFC 2920 §3.1).
					reply = "554 5.5.1 no valid recipients"
					break
				}
				if !say("354 go ahead") {
					return
				}
				var body strings.Builder
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
					body.WriteString(strings.TrimPrefix(l, "."))
				}
				s.mu.Lock()
				s.msgs = append(s.msgs, rawMsg{Conn: n, Mail: mail, Body: body.String()})
				s.mu.Unlock()
				reply = "250 2.0.0 queued"
			case "QUIT":
				say("221 2.0.0 bye")
				return
			default:
				reply = "250 2.0.0 ok"
			}
		}
		switch {
		case verb == "RCPT" && strings.HasPrefix(reply, "25"):
			rcpts++
		case verb == "RSET", verb == "EHLO", verb == "DATA":
			rcpts = 0
		}
		if !say(reply) || hangup {
			return
		}
	}
}

// Conns is the number of connections accepted so far.
func (s *rawServer) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Msgs returns the messages accepted so far.
func (s *rawServer) Msgs() []rawMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rawMsg(nil), s.msgs...)
}

// Cmds returns the commands received so far, as "conn: command".
func (s *rawServer) Cmds() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

// readLog records the bytes of each read (the read boundaries).
type readLog struct {
	net.Conn
	s *rawServer
	n int
}

func (r readLog) Read(p []byte) (int, error) {
	k, err := r.Conn.Read(p)
	if k > 0 {
		r.s.mu.Lock()
		r.s.reads = append(r.s.reads, fmt.Sprintf("%d: %s", r.n, p[:k]))
		r.s.mu.Unlock()
	}
	return k, err
}

// Reads returns the bytes of each read so far, as "conn: bytes".
func (s *rawServer) Reads() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reads...)
}
