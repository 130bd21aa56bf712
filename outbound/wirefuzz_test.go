package outbound

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

// memQueue is a queue.Queue in memory for one message at a time: Body
// returns body; Reschedule and Complete record what was asked.
type memQueue struct {
	body string

	mu          sync.Mutex
	rescheduled int
	completed   int
}

func (q *memQueue) Enqueue(context.Context, *queue.Envelope, io.Reader) (string, error) {
	return "", errNDRQueueUnused
}
func (q *memQueue) Lease(ctx context.Context) (*queue.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
func (q *memQueue) Body(context.Context, *queue.Message) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(q.body)), nil
}
func (q *memQueue) Reschedule(context.Context, *queue.Message, time.Time) error {
	q.mu.Lock()
	q.rescheduled++
	q.mu.Unlock()
	return nil
}
func (q *memQueue) Complete(context.Context, *queue.Message) error {
	q.mu.Lock()
	q.completed++
	q.mu.Unlock()
	return nil
}
func (q *memQueue) Close() error { return nil }

// FuzzWireReply sends fuzzed bytes as a next hop's reply to RCPT, over a
// real connection on 127.0.0.1, to the go-smtp client the worker uses, and
// lets the worker record the outcome. Invariants: each case ends within
// 2 s (short command timeouts turn a reply that never ends into a
// temporary failure, not a hang); the recorded reply is valid, bounded and
// free of control characters; the recipient's state follows the reply's
// class as the worker parsed it (RFC 5321 §4.2.1: 2xx accepted, 4xx
// temporary, 5xx permanent); and the message is rescheduled or completed,
// exactly once.
func FuzzWireReply(f *testing.F) {
	for _, s := range []string{
		"550 5.1.1 no such user",
		"550-5.1.1 first\r\n550 5.1.1 second",
		"250 2.1.5 ok",
		"451 4.7.1 " + invalidRun,
		"421 4.4.2 closing",
		"550 " + strings.Repeat("x", 3000),
		strings.Repeat("550-5.7.1 more\r\n", 300) + "550 5.7.1 end",
		"550-unfinished",
		"abc",
		"",
		"55",
		"550 a\x00b\x1b[31mc\uFFFE",
		"550 ok\r\n250 stray line",
		"354 go on",
	} {
		f.Add(s)
	}
	log := slog.New(slog.DiscardHandler)
	// One server for the whole run, answering RCPT with the current case's
	// reply (written as it came, then CRLF); cases run one after another.
	var mu sync.Mutex
	var reply string
	srv := newRawServer(f, []string{"8BITMIME"}, func(conn int, cmd string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(cmd, "RCPT") {
			return reply, false
		}
		return "", false
	})
	// Connections come from rotating loopback source addresses, so that
	// tens of thousands of short connections do not run out of ports.
	var src atomic.Uint32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		ip := net.IPv4(127, 0, 0, byte(1+src.Add(1)%250))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		return d.DialContext(ctx, network, addr)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 64<<10 {
			return
		}
		mu.Lock()
		reply = in
		mu.Unlock()
		q := &memQueue{body: testBody}
		w, err := New(Options{
			Queue: q, Hostname: "relay.test", Gateway: srv.Addr, GatewayTLS: GatewayTLSNone, Logger: log, Dial: dial,
			Timeouts: Timeouts{Connect: 500 * time.Millisecond, Command: 50 * time.Millisecond,
				DataBlock: 50 * time.Millisecond, Final: 50 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.closeGateways()
		env := &queue.Envelope{ID: "fuzz1", From: "alice@example.org", Arrival: time.Now(), Size: int64(len(testBody)),
			Recipients: []queue.Recipient{{Addr: bob, Status: queue.StatusPending}}}
		testutil.ReturnsWithin(t, 2*time.Second, "one delivery", func() {
			w.process(context.Background(), &queue.Message{Envelope: env})
		})
		r := env.Recipients[0]
		checkRecordedReply(t, r.Reply)
		switch c := r.Reply.Code; {
		case r.Status == queue.StatusFailed && (c < 500 || c > 599):
			t.Errorf("failed for good on reply %v", r.Reply)
		case r.Status == queue.StatusRelayed && (c < 200 || c > 299):
			t.Errorf("delivered on reply %v", r.Reply)
		}
		q.mu.Lock()
		n := q.rescheduled + q.completed
		q.mu.Unlock()
		if n != 1 {
			t.Errorf("message rescheduled or completed %d times, want once", n)
		}
	})
}
