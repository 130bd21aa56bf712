package outbound

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
)

// rawServer is a hand-written SMTP server on 127.0.0.1 for the cases a
// go-smtp server cannot play: an EHLO without 8BITMIME, a connection
// dropped right after a given reply. Each command line goes to answer,
// which returns the reply to send ("" for the default) and whether to hang
// up after it.
type rawServer struct {
	Addr string
	ln   net.Listener
	// ext are the EHLO keywords offered.
	ext    []string
	answer func(conn int, cmd string) (reply string, hangup bool)

	mu    sync.Mutex
	conns int
	cmds  []string // "conn: command", in order
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
	br := bufio.NewReader(c)
	say := func(l string) bool { _, err := c.Write([]byte(l + "\r\n")); return err == nil }
	if !say("220 raw.test ESMTP") {
		return
	}
	var mail string
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
				reply = "250-raw.test"
				for _, e := range s.ext {
					reply += "\r\n250-" + e
				}
				reply += "\r\n250 PIPELINING"
			case "MAIL":
				mail = cmd
				reply = "250 2.1.0 ok"
			case "DATA":
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
