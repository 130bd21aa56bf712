package outbound

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgerelay/edgerelay/queue"
)

// Attacks on the failover list (issue 12 review): hosts that misbehave in
// the ways that would deliver twice, wedge the list or blame the gateway for
// a recipient.

// loopbackServer serves each connection of a listener on 127.0.0.1 with
// handle until the test ends; stop is closed then.
func loopbackServer(t *testing.T, handle func(c net.Conn, stop <-chan struct{})) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c, stop)
			}()
		}
	}()
	return ln.Addr().String()
}

// lostDotServer is a gateway that takes the whole message, final dot
// included, and hangs up without the reply to the dot: RFC 5321 §6.1 (and
// §4.1.1.4) — the message may well have been delivered.
func lostDotServer(t *testing.T) (addr string, dots *atomic.Int32) {
	dots = &atomic.Int32{}
	return loopbackServer(t, func(c net.Conn, _ <-chan struct{}) {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		say("220 lost.test ESMTP")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch strings.ToUpper(strings.Fields(l + " x")[0]) {
			case "EHLO":
				say("250-lost.test\r\n250 8BITMIME")
			case "DATA":
				say("354 go ahead")
				for {
					b, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if b == ".\r\n" {
						dots.Add(1)
						return // the 250 is never sent
					}
				}
			default:
				say("250 ok")
			}
		}
	}), dots
}

// TestAttackLostDotReplyNoFailover: the first gateway read the final dot
// and its reply never came. The next gateway must not be tried in the same
// attempt (it would be a routine duplicate), and the first is not down:
// the recipient stays pending for the retry schedule.
func TestAttackLostDotReplyNoFailover(t *testing.T) {
	a, dots := lostDotServer(t)
	b := newScriptServer(t)
	ev := &eventLog{}
	h := pairHarness(t, a, b.Addr, ev)
	h.enqueue(nil, bob, carol)
	env := h.attempt()
	for _, r := range []string{bob, carol} {
		if got := rcpt(t, env, r); got.Status != queue.StatusPending {
			t.Errorf("%s: %s %v, want pending", r, got.Status, got.Reply)
		}
	}
	if dots.Load() != 1 || b.Conns() != 0 {
		t.Fatalf("a read %d dots, b got %d connections: want 1 and 0 (no failover after the dot)", dots.Load(), b.Conns())
	}
	if !h.w.GatewayStatus()[0].DownSince.IsZero() || ev.count("smtp+insecure://a.test:25", GatewayFailover, false) != 0 {
		t.Errorf("a marked down after it took the message: %+v", h.w.GatewayStatus()[0])
	}
}

// silentServer accepts connections and says nothing (trickle: one byte of
// a greeting that never ends, every 50 ms) until the test ends.
func silentServer(t *testing.T, trickle bool) string {
	return loopbackServer(t, func(c net.Conn, stop <-chan struct{}) {
		if !trickle {
			<-stop
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		c.Write([]byte("220"))
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("-")); err != nil {
					return
				}
			}
		}
	})
}

// TestAttackHangingGatewayFailsOver: a gateway that accepts TCP and never
// greets, or trickles a greeting without end, is down after the gateway's
// setup timeout (Timeouts.GatewaySetup, not the 5 minutes RFC 5321
// §4.5.3.2.1 asks for any server's greeting, which stays Command) and the
// next one delivers in the same attempt; the attempt takes about one
// timeout.
func TestAttackHangingGatewayFailsOver(t *testing.T) {
	for _, trickle := range []bool{false, true} {
		b := newScriptServer(t)
		h := newHarness(t, func(o *Options) {
			o.Gateways = []GatewayConfig{plainGateway("a.test:25"), plainGateway("b.test:25")}
			o.Timeouts.GatewaySetup = 400 * time.Millisecond // Command stays the harness's 5 s, past the test's 3 s bound
		})
		h.dialMap["a.test:25"], h.dialMap["b.test:25"] = silentServer(t, trickle), b.Addr
		h.enqueue(nil, bob)
		start := time.Now()
		env := h.attempt()
		if r := rcpt(t, env, bob); r.Status != queue.StatusRelayed || len(b.Received()) != 1 {
			t.Fatalf("trickle %v: %s %v, b got %d", trickle, r.Status, r.Reply, len(b.Received()))
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("trickle %v: the attempt took %v with a 400ms greeting timeout", trickle, d)
		}
		if h.w.GatewayStatus()[0].DownSince.IsZero() {
			t.Errorf("trickle %v: a not marked down", trickle)
		}
	}
}

// TestAttack421AtMailNoFailover: a fresh connection brought to MAIL and
// then refused with 421 (RFC 5321 §3.8) or a 4xx at the first RCPT leaves
// the recipients pending with that reply; the message is not sent to the
// next gateway in the same attempt and the gateway is not marked down (the
// documented rule: from MAIL on, a gateway's replies are results).
func TestAttack421AtMailNoFailover(t *testing.T) {
	for _, c := range []struct{ verb, reply string }{
		{"MAIL", "421 4.3.2 shutting down"},
		{"RCPT", "452 4.3.1 insufficient storage"},
	} {
		a := newRawServer(t, nil, func(_ int, cmd string) (string, bool) {
			if strings.HasPrefix(strings.ToUpper(cmd), c.verb) {
				return c.reply, strings.HasPrefix(c.reply, "421")
			}
			return "", false
		})
		b := newScriptServer(t)
		h := pairHarness(t, a.Addr, b.Addr, &eventLog{})
		h.enqueue(nil, bob)
		r := rcpt(t, h.attempt(), bob)
		if r.Status != queue.StatusPending || r.Reply == nil || r.Reply.Code/100 != 4 {
			t.Errorf("%s: %s %v, want pending with a's 4xx", c.verb, r.Status, r.Reply)
		}
		if b.Conns() != 0 || !h.w.GatewayStatus()[0].DownSince.IsZero() {
			t.Errorf("%s: b got %d connections, a status %+v", c.verb, b.Conns(), h.w.GatewayStatus()[0])
		}
	}
}

// gateHop is a down hop whose deliveries all wait until n of them are in
// flight: attempts that began together and found the gateway down
// together.
type gateHop struct {
	fakeHop
	n       int
	mu2     sync.Mutex
	arrived int
	release chan struct{}
}

func (g *gateHop) deliver(ctx context.Context, m *queue.Message, idx []int) (map[int]result, bool) {
	g.mu2.Lock()
	g.arrived++
	if g.arrived == g.n {
		close(g.release)
	}
	g.mu2.Unlock()
	<-g.release
	return g.fakeHop.deliver(ctx, m, idx)
}

// TestAttackConcurrentFailuresDoubleOnce: one outage seen by many attempts
// in flight at once is one failure, not one per attempt. With Concurrency
// 16 (the same instant, the same refusal) the back-off must stay at
// GatewayBackoff; counting each in-flight attempt doubled it to the 15
// minute cap at the first blip, and the first gateway was skipped for a
// quarter of an hour after a one-second outage.
func TestAttackConcurrentFailuresDoubleOnce(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.GatewayBackoff = time.Minute })
	const n = 16
	a := &gateHop{fakeHop: fakeHop{n: "a", down: true}, n: n, release: make(chan struct{})}
	b := &fakeHop{n: "b"}
	l := &gatewayList{w: h.w, hops: []hop{a, b}, state: make([]hopState, 2)}
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &queue.Message{Envelope: &queue.Envelope{ID: "x" + string(rune('a'+k)), Recipients: []queue.Recipient{{Addr: bob}}}}
			if r := l.deliver(context.Background(), m, []int{0}); r[0].status != queue.StatusRelayed {
				t.Errorf("delivery %d: %s, want relayed through b", k, r[0].status)
			}
		}()
	}
	wg.Wait()
	l.mu.Lock()
	until, failures := l.state[0].until.Sub(h.clock.Now()), l.state[0].failures
	l.mu.Unlock()
	if until != time.Minute {
		t.Errorf("after one outage seen by %d attempts at once: back-off %v (%d failures), want 1m", n, until, failures)
	}
	// A later attempt that finds it down again doubles it.
	h.clock.Advance(time.Minute)
	m := &queue.Message{Envelope: &queue.Envelope{ID: "later", Recipients: []queue.Recipient{{Addr: bob}}}}
	l.deliver(context.Background(), m, []int{0})
	l.mu.Lock()
	until = l.state[0].until.Sub(h.clock.Now())
	l.mu.Unlock()
	if until != 2*time.Minute {
		t.Errorf("a second outage: back-off %v, want 2m", until)
	}
}

// TestAttackLocalRecipientUnicodeForm: a submitted recipient at a local
// domain written as a U-label, or in capitals, is still local: it goes to
// the inbound gateway, never out through the sender's route (isLocal
// compared the lower-cased text with the A-label, so bob@BÜCHER.example
// left through the route gateway while RELAY_LOCAL_DOMAINS holds
// bücher.example).
func TestAttackLocalRecipientUnicodeForm(t *testing.T) {
	in := newScriptServer(t, withSMTPUTF8())
	h, _, a, _ := routeHarness(t, func(o *Options) {
		o.InboundGateway = in.Addr
		o.LocalDomains = map[string]bool{"xn--bcher-kva.example": true, "example.org": true}
	})
	for _, to := range []string{"bob@BÜCHER.example", "bob@bücher.example", "eve@Example.ORG", "ann@xn--BCHER-kva.example"} {
		h.enqueue(envEdits(from("x@a.example"), func(e *queue.Envelope) { e.SMTPUTF8 = true }), to)
		env := h.attempt()
		if r := rcpt(t, env, to); r.Status != queue.StatusRelayed {
			t.Errorf("%s: %s %v", to, r.Status, r.Reply)
		}
	}
	if n := len(a.Received()); n != 0 || len(in.Received()) != 4 {
		t.Fatalf("route gateway got %d messages for local recipients, inbound %d; want 0 and 4", n, len(in.Received()))
	}
}

func envEdits(fs ...func(*queue.Envelope)) func(*queue.Envelope) {
	return func(e *queue.Envelope) {
		for _, f := range fs {
			f(e)
		}
	}
}

// TestAttackCanonicalDomainLength: a route key or sender domain is at most
// 253 bytes as an A-label (RFC 1035 §2.3.4), so that what listFor records
// in Envelope.Route always passes Envelope.Validate when read back.
func TestAttackCanonicalDomainLength(t *testing.T) {
	label := strings.Repeat("a", 63)
	ok := label + "." + label + "." + label + "." + strings.Repeat("b", 61)
	if d, good := CanonicalDomain(ok); !good || d != ok {
		t.Errorf("253 bytes refused: %v", good)
	}
	long := ok + "b"
	if _, good := CanonicalDomain(long); good {
		t.Error("254 bytes accepted")
	}
	for _, d := range []string{ok, "xn--bcher-kva.example", "bücher.example", "A.Example"} {
		c, good := CanonicalDomain(d)
		if !good {
			t.Fatalf("%q refused", d)
		}
		e := &queue.Envelope{Route: c, Recipients: []queue.Recipient{{Addr: bob}}}
		if err := e.Validate(); err != nil {
			t.Errorf("route %q as recorded: %v", c, err)
		}
	}
}

// TestAttackShutdownQuitBounded: at the end of Run the idle gateway
// connections are ended with QUIT; a gateway that no longer answers (a
// network partition, the moment an operator restarts the relay) held the
// shutdown for Timeouts.Command (5 minutes by default) per idle
// connection, one after the other. QUIT now waits at most quitTimeout,
// for all of them at once.
func TestAttackShutdownQuitBounded(t *testing.T) {
	stop := make(chan struct{})
	a := newRawServer(t, nil, func(_ int, cmd string) (string, bool) {
		if strings.EqualFold(strings.TrimSpace(cmd), "QUIT") {
			<-stop
		}
		return "", false
	})
	t.Cleanup(func() { close(stop) })
	h := newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{plainGateway("a.test:25")}
		o.Timeouts.Command = 6 * time.Second
		o.Concurrency = 4
	})
	h.dialMap["a.test:25"] = a.Addr
	// Three connections in the pool: three deliveries at once.
	hop := h.w.gatewayHop()
	var conns []*smtpConn
	for range 3 {
		sc, f := h.w.connect(context.Background(), hop.t)
		if f != nil {
			t.Fatal(f.v.Reply)
		}
		conns = append(conns, sc)
	}
	for _, sc := range conns {
		hop.pool.put(sc)
	}
	start := time.Now()
	h.w.closeGateways()
	if d := time.Since(start); d > quitTimeout+2*time.Second {
		t.Fatalf("closing 3 idle connections to a gateway that does not answer QUIT took %v", d)
	}
}

// TestAttackGatewayReplyBoundedInStatus: what a down gateway said is kept
// as its LastError, which /readyz shows and the failover line logs. It is
// kept as a recipient's reply is recorded (recordable: valid UTF-8, no
// control characters, at most MaxReplyText bytes of text), not as the
// 32 KiB of terminal escapes a hostile greeting can hold.
func TestAttackGatewayReplyBoundedInStatus(t *testing.T) {
	junk := strings.Repeat("\x1b[2J\xff\xfe"+strings.Repeat("z", 90), 200)
	a := loopbackServer(t, func(c net.Conn, _ <-chan struct{}) {
		var b strings.Builder
		for i := 0; i < len(junk); i += 100 {
			b.WriteString("421-" + junk[i:min(i+100, len(junk))] + "\r\n")
		}
		b.WriteString("421 4.3.2 go away\r\n")
		c.Write([]byte(b.String()))
		time.Sleep(100 * time.Millisecond)
	})
	b := newScriptServer(t)
	h := pairHarness(t, a, b.Addr, &eventLog{})
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("%s %v, want relayed through b", r.Status, r.Reply)
	}
	st := h.w.GatewayStatus()[0]
	if st.DownSince.IsZero() || len(st.LastError) > queue.MaxReplyText+64 ||
		!utf8.ValidString(st.LastError) || strings.ContainsRune(st.LastError, 0x1b) {
		t.Errorf("a's LastError (%d bytes): %.120q", len(st.LastError), st.LastError)
	}
	for _, l := range strings.Split(h.log.String(), "\n") {
		if strings.Contains(l, "failing over") && len(l) > 2*queue.MaxReplyText+400 {
			t.Errorf("failover log line of %d bytes: %.300s", len(l), l)
		}
	}
}

// blockHop is a gateway that hangs (accepts and never greets) until
// released, then is down.
type blockHop struct {
	n       string
	calls   atomic.Int32
	release chan struct{}
}

func (b *blockHop) name() string { return b.n }

func (b *blockHop) deliver(_ context.Context, _ *queue.Message, idx []int) (map[int]result, bool) {
	b.calls.Add(1)
	<-b.release
	res := map[int]result{}
	for _, i := range idx {
		res[i] = result{status: queue.StatusPending, reply: replyNotAttempted()}
	}
	return res, true
}

// TestAttackHangingGatewayProbedOnce: when a gateway's back-off ends, one
// attempt tries it again; the others that start while that try is under
// way use the next gateway. Every attempt tried it, and with a gateway
// that accepts TCP and never greets every delivery slot hung for the
// greeting timeout (5 minutes by default) at the end of each back-off.
func TestAttackHangingGatewayProbedOnce(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.GatewayBackoff = time.Minute })
	a := &blockHop{n: "a", release: make(chan struct{})}
	b := &fakeHop{n: "b"}
	l := &gatewayList{w: h.w, hops: []hop{a, b}, state: make([]hopState, 2)}
	msg := func(id string) *queue.Message {
		return &queue.Message{Envelope: &queue.Envelope{ID: id, Recipients: []queue.Recipient{{Addr: bob}}}}
	}
	l.down(0, nil, nil, l.state[0].gen)
	h.clock.Advance(time.Minute) // a's back-off is over
	first := make(chan map[int]result, 1)
	go func() { first <- l.deliver(context.Background(), msg("probe"), []int{0}) }()
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for k := range 4 {
			if r := l.deliver(context.Background(), msg(fmt.Sprint("m", k)), []int{0}); r[0].status != queue.StatusRelayed {
				t.Errorf("attempt %d: %s, want relayed through b", k, r[0].status)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Errorf("attempts wait for the hanging gateway: it was tried %d times", a.calls.Load())
	}
	close(a.release)
	<-done
	if r := <-first; r[0].status != queue.StatusRelayed || a.calls.Load() != 1 {
		t.Errorf("the probe: %s; a tried %d times, want once", r[0].status, a.calls.Load())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if got := l.state[0].until.Sub(h.clock.Now()); got != 2*time.Minute {
		t.Errorf("a's back-off after the failed probe: %v, want 2m", got)
	}
}

// TestAttackFailoverNoLeak: attempts that fail over (first refused, first
// silent past the greeting timeout, first losing the dot's reply) leave no
// goroutine and no connection behind once the idle ones are closed.
func TestAttackFailoverNoLeak(t *testing.T) {
	b := newScriptServer(t)
	lost, _ := lostDotServer(t)
	h := newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{plainGateway("a.test:25"), plainGateway("b.test:25")}
		o.Timeouts.Command = 200 * time.Millisecond
		o.GatewayBackoff = time.Second
	})
	base := runtime.NumGoroutine()
	for _, a := range []string{deadAddr(t), silentServer(t, false), lost} {
		h.mu.Lock()
		h.dialMap["a.test:25"], h.dialMap["b.test:25"] = a, b.Addr
		h.mu.Unlock()
		h.clock.Advance(time.Hour)
		h.enqueue(nil, bob)
		h.attempt()
	}
	h.w.closeGateways()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) { // +2: the two servers' per-connection handlers still open
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// slowThenDownHop takes its first delivery slowly (until released) and
// delivers it; every later one finds it down.
type slowThenDownHop struct {
	fakeHop
	calls   atomic.Int32
	release chan struct{}
}

func (s *slowThenDownHop) deliver(ctx context.Context, m *queue.Message, idx []int) (map[int]result, bool) {
	if s.calls.Add(1) == 1 {
		<-s.release
		return s.fakeHop.deliver(ctx, m, idx)
	}
	s.set(true)
	return s.fakeHop.deliver(ctx, m, idx)
}

// TestAttackRecoveredGatewayNotHeldUnused: an attempt takes the claim on a
// gateway whose back-off is over only when it is about to try it. One that
// is still busy with an earlier gateway of the list (a large message) does
// not keep the others from failing over to it.
func TestAttackRecoveredGatewayNotHeldUnused(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.GatewayBackoff = time.Minute })
	a := &slowThenDownHop{fakeHop: fakeHop{n: "a"}, release: make(chan struct{})}
	b := &fakeHop{n: "b"}
	l := &gatewayList{w: h.w, hops: []hop{a, b}, state: make([]hopState, 2)}
	msg := func(id string) *queue.Message {
		return &queue.Message{Envelope: &queue.Envelope{ID: id, Recipients: []queue.Recipient{{Addr: bob}}}}
	}
	l.down(1, nil, nil, l.state[1].gen)
	h.clock.Advance(time.Minute) // b's back-off is over
	slow := make(chan map[int]result, 1)
	go func() { slow <- l.deliver(context.Background(), msg("large"), []int{0}) }()
	for a.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	if r := l.deliver(context.Background(), msg("next"), []int{0}); r[0].status != queue.StatusRelayed || b.take() != 1 {
		t.Errorf("a down for the second attempt: %s, b tried %d times; want relayed through b", r[0].status, b.calls)
	}
	close(a.release)
	if r := <-slow; r[0].status != queue.StatusRelayed {
		t.Errorf("the large message: %s", r[0].status)
	}
}
