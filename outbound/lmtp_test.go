package outbound

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// lmtpServer is a hand-written LMTP server (RFC 2033) on loopback or a
// Unix socket, for what a real one does not do on demand: its replies
// after the final dot. after writes them, given the recipients accepted at
// RCPT in order, and returns whether to hang up then. rcptReply, when set,
// answers RCPT (default 250).
type lmtpServer struct {
	Addr      string // host:port, or the socket's path
	ln        net.Listener
	tls       *tls.Config // STARTTLS offered when set
	after     func(w io.Writer, rcpts []string) (hangup bool)
	rcptReply func(to string) string

	mu   sync.Mutex
	cmds []string // verbs, in order, all connections
	txs  []lmtpTx
	wg   sync.WaitGroup
}

// lmtpTx is one transaction the server got a body for.
type lmtpTx struct {
	Rcpts []string
	Body  string
	TLS   bool
}

func newLMTPServer(t *testing.T, network string, tc *tls.Config, after func(io.Writer, []string) bool) *lmtpServer {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		dir, err := os.MkdirTemp("", "lmtp")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		addr = filepath.Join(dir, "lmtp")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &lmtpServer{Addr: ln.Addr().String(), ln: ln, tls: tc, after: after}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.session(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *lmtpServer) session(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	var w io.Writer = c
	say := func(l string) { io.WriteString(w, l+"\r\n") }
	say("220 lmtp.test LMTP")
	var rcpts []string
	secure := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.cmds = append(s.cmds, verb)
		s.mu.Unlock()
		switch verb {
		case "LHLO":
			ext := "250-lmtp.test\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n"
			if s.tls != nil && !secure {
				ext += "250-STARTTLS\r\n"
			}
			say(ext + "250 PIPELINING")
		case "STARTTLS":
			say("220 2.0.0 go ahead")
			tc := tls.Server(c, s.tls)
			if tc.Handshake() != nil {
				return
			}
			br, w, secure = bufio.NewReader(tc), tc, true
		case "MAIL":
			rcpts = nil
			say("250 2.1.0 Ok")
		case "RCPT":
			to := strings.Trim(strings.TrimPrefix(strings.ToUpper(arg[:3])+arg[3:], "TO:"), "<>")
			r := "250 2.1.5 Ok"
			if s.rcptReply != nil {
				r = s.rcptReply(to)
			}
			if r[0] == '2' {
				rcpts = append(rcpts, to)
			}
			say(r)
		case "DATA":
			say("354 go ahead")
			var body strings.Builder
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				body.WriteString(l)
			}
			s.mu.Lock()
			s.txs = append(s.txs, lmtpTx{Rcpts: rcpts, Body: body.String(), TLS: secure})
			s.mu.Unlock()
			if s.after(w, rcpts) {
				return
			}
		case "RSET", "NOOP":
			say("250 2.0.0 Ok")
		case "QUIT":
			say("221 2.0.0 Bye")
			return
		default:
			say("500 5.5.2 what")
		}
	}
}

func (s *lmtpServer) Txs() []lmtpTx {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]lmtpTx(nil), s.txs...)
}

func (s *lmtpServer) Cmds() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.cmds, " ")
}

// lmtpReplies returns an after that answers the k-th accepted recipient with
// lines[k] (nothing past the list) and hangs up when hangup is set.
func lmtpReplies(hangup bool, lines ...string) func(io.Writer, []string) bool {
	return func(w io.Writer, rcpts []string) bool {
		for k := range rcpts {
			if k < len(lines) {
				io.WriteString(w, lines[k]+"\r\n")
			}
		}
		return hangup
	}
}

// lmtpFirstThen answers the first transaction with first, every later one
// with then.
func lmtpFirstThen(first, then func(io.Writer, []string) bool) func(io.Writer, []string) bool {
	var n atomic.Int32
	return func(w io.Writer, rcpts []string) bool {
		if n.Add(1) == 1 {
			return first(w, rcpts)
		}
		return then(w, rcpts)
	}
}

const daveRcpt = "dave@example.org" // a second local recipient

func lmtpOpts(gw string) func(*Options) {
	return func(o *Options) {
		o.InboundGateway = gw
		o.LocalDomains = map[string]bool{"example.org": true}
	}
}

func lmtpWant(t *testing.T, env *queue.Envelope, addr string, want ...queue.RcptStatus) *queue.Recipient {
	t.Helper()
	r := rcpt(t, env, addr)
	for _, w := range want {
		if r.Status == w {
			return r
		}
	}
	t.Fatalf("%s: %s %v, want %v", addr, r.Status, r.Reply, want)
	return nil
}

var lmtpDone = []queue.RcptStatus{queue.StatusRelayed, queue.StatusDelivered}

// TestLMTPPerRecipient452: after the final dot carol gets 250 and dave
// 452: carol is delivered, dave stays pending and the next attempt sends
// the message to dave alone, over LHLO, never EHLO.
func TestLMTPPerRecipient452(t *testing.T) {
	s := newLMTPServer(t, "tcp", nil, lmtpFirstThen(
		lmtpReplies(false, "250 2.0.0 <carol> saved", "452 4.2.2 <dave> mailbox full"),
		lmtpReplies(false, "250 2.0.0 <dave> saved")))
	h := newHarness(t, lmtpOpts("lmtp://"+s.Addr))
	h.enqueue(nil, localRcpt, daveRcpt)
	env := h.attempt()
	lmtpWant(t, env, localRcpt, lmtpDone...)
	r := lmtpWant(t, env, daveRcpt, queue.StatusPending)
	if r.Reply == nil || r.Reply.Code != 452 || r.Reply.Enhanced != "4.2.2" {
		t.Fatalf("dave's reply %v, want his own 452 4.2.2", r.Reply)
	}
	if got := s.Cmds(); !strings.HasPrefix(got, "LHLO MAIL RCPT RCPT DATA QUIT") || strings.Contains(got, "EHLO") {
		t.Fatalf("commands %q", got)
	}
	h.clock.Advance(time.Hour)
	env = h.attempt()
	lmtpWant(t, env, daveRcpt, lmtpDone...)
	txs := s.Txs()
	if len(txs) != 2 || strings.Join(txs[1].Rcpts, ",") != daveRcpt || !strings.Contains(txs[1].Body, "Hello, Bob.") {
		t.Fatalf("transactions %+v, want the second to dave alone", txs)
	}
	if calls := h.rep.Calls(); len(calls) != 0 {
		t.Fatalf("reports %+v, want none", calls)
	}
}

// TestLMTPPerRecipient550: 250 for carol, 550 for dave: a report for dave
// only, carol delivered.
func TestLMTPPerRecipient550(t *testing.T) {
	s := newLMTPServer(t, "tcp", nil, lmtpReplies(false, "250 2.0.0 saved", "550 5.1.1 <dave> no such user"))
	h := newHarness(t, lmtpOpts("lmtp://"+s.Addr))
	h.enqueue(nil, localRcpt, daveRcpt)
	env := h.attempt()
	lmtpWant(t, env, localRcpt, lmtpDone...)
	r := lmtpWant(t, env, daveRcpt, queue.StatusFailed)
	if r.Reply == nil || r.Reply.Code != 550 || r.Reply.Enhanced != "5.1.1" {
		t.Fatalf("dave's reply %v", r.Reply)
	}
	calls := h.rep.Calls()
	if len(calls) != 1 || calls[0].Kind != dsn.Failed || strings.Join(calls[0].Rcpts, ",") != daveRcpt {
		t.Fatalf("reports %+v, want one failure report for dave only", calls)
	}
}

// TestLMTPDroppedAfterFirstReply: the server answers carol and hangs up
// before dave's answer: carol is delivered, dave stays pending (never
// delivered) and gets the message on the next attempt.
func TestLMTPDroppedAfterFirstReply(t *testing.T) {
	s := newLMTPServer(t, "tcp", nil, lmtpFirstThen(
		lmtpReplies(true, "250 2.0.0 saved"),
		lmtpReplies(false, "250 2.0.0 saved")))
	h := newHarness(t, lmtpOpts("lmtp://"+s.Addr))
	h.enqueue(nil, localRcpt, daveRcpt)
	env := h.attempt()
	lmtpWant(t, env, localRcpt, lmtpDone...)
	r := lmtpWant(t, env, daveRcpt, queue.StatusPending)
	if r.Reply == nil || r.Reply.Code/100 != 4 {
		t.Fatalf("dave's reply %v, want a 4xx for the lost connection", r.Reply)
	}
	h.clock.Advance(time.Hour)
	env = h.attempt()
	lmtpWant(t, env, daveRcpt, lmtpDone...)
	if txs := s.Txs(); len(txs) != 2 || strings.Join(txs[1].Rcpts, ",") != daveRcpt {
		t.Fatalf("transactions %+v", txs)
	}
}

// TestLMTPEndlessReply: a reply after the final dot that never ends is cut
// at maxReplyBytes: both recipients stay pending, in far less than the
// final-reply timeout.
func TestLMTPEndlessReply(t *testing.T) {
	s := newLMTPServer(t, "tcp", nil, func(w io.Writer, _ []string) bool {
		line := strings.Repeat("250-2.0.0 still going ", 20) + "\r\n"
		for {
			if _, err := io.WriteString(w, line); err != nil {
				return true
			}
		}
	})
	h := newHarness(t, combine(lmtpOpts("lmtp://"+s.Addr), func(o *Options) { o.Timeouts.Final = 30 * time.Second }))
	h.enqueue(nil, localRcpt, daveRcpt)
	start := time.Now()
	env := h.attempt()
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("attempt took %v", d)
	}
	for _, a := range []string{localRcpt, daveRcpt} {
		lmtpWant(t, env, a, queue.StatusPending)
	}
}

// TestLMTPStartTLS: STARTTLS offered over TCP is used (LHLO again after
// it); offered over a Unix socket it is not, and delivery works there.
func TestLMTPStartTLS(t *testing.T) {
	tc, _ := selfSigned(t)
	s := newLMTPServer(t, "tcp", tc, lmtpReplies(false, "250 2.0.0 saved", "250 2.0.0 saved"))
	h := newHarness(t, lmtpOpts("lmtp://"+s.Addr))
	h.enqueue(nil, localRcpt, daveRcpt)
	env := h.attempt()
	lmtpWant(t, env, localRcpt, lmtpDone...)
	lmtpWant(t, env, daveRcpt, lmtpDone...)
	if txs := s.Txs(); len(txs) != 1 || !txs[0].TLS {
		t.Fatalf("transactions %+v, want one over TLS", txs)
	}
	if got := s.Cmds(); !strings.HasPrefix(got, "LHLO STARTTLS LHLO MAIL") {
		t.Fatalf("commands %q", got)
	}

	u := newLMTPServer(t, "unix", tc, lmtpReplies(false, "250 2.0.0 saved", "250 2.0.0 saved"))
	hu := newHarness(t, combine(lmtpOpts("lmtp+unix://"+u.Addr), func(o *Options) { o.Dial = nil }))
	hu.enqueue(nil, localRcpt, daveRcpt)
	env = hu.attempt()
	lmtpWant(t, env, localRcpt, lmtpDone...)
	r := lmtpWant(t, env, daveRcpt, lmtpDone...)
	if r.RemoteMTA != u.Addr {
		t.Errorf("RemoteMTA %q, want the socket's path", r.RemoteMTA)
	}
	if txs := u.Txs(); len(txs) != 1 || txs[0].TLS || strings.Contains(u.Cmds(), "STARTTLS") {
		t.Fatalf("unix socket: transactions %+v, commands %q: want no STARTTLS", txs, u.Cmds())
	}
}

// TestParseInboundGateway: the forms of RELAY_INBOUND_GATEWAY.
func TestParseInboundGateway(t *testing.T) {
	for _, c := range []struct {
		in   string
		want InboundAddr
		bad  bool
	}{
		{in: "mail.internal:25", want: InboundAddr{"tcp", "mail.internal:25", false}},
		{in: "smtp://mail.internal:25", want: InboundAddr{"tcp", "mail.internal:25", false}},
		{in: "SMTP://[::1]:25/", want: InboundAddr{"tcp", "[::1]:25", false}},
		{in: "lmtp://mail.internal:24", want: InboundAddr{"tcp", "mail.internal:24", true}},
		{in: "lmtp+unix:///run/dovecot/lmtp", want: InboundAddr{"unix", "/run/dovecot/lmtp", true}},
		{in: "unix:///var/run/cyrus/socket/lmtp", want: InboundAddr{"unix", "/var/run/cyrus/socket/lmtp", true}},
		{in: "mail.internal", bad: true},
		{in: "lmtp://mail.internal", bad: true},
		{in: "lmtp://:24", bad: true},
		{in: "lmtp://mail.internal:24/x", bad: true},
		{in: "lmtp://u:p@mail.internal:24", bad: true},
		{in: "lmtp+unix://relative/lmtp", bad: true},
		{in: "unix:///", bad: true},
		{in: "unix://host/path", bad: true},
		{in: "lmtp+unix:///run/lmtp?x=1", bad: true},
		{in: "http://mail.internal:80", bad: true},
	} {
		got, err := ParseInboundGateway(c.in)
		if c.bad {
			if err == nil || !strings.Contains(err.Error(), c.in) {
				t.Errorf("%q: %v %v, want an error naming it", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v, want %+v", c.in, got, err, c.want)
		}
	}
}
