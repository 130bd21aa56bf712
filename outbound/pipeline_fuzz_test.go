package outbound

import (
	"bufio"
	"context"
	"fmt"
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

// fuzzPipeCase is what the FuzzPipelinedReplies server plays for the
// current case.
type fuzzPipeCase struct {
	replies []byte // everything the server sends after EHLO
	chunk   int    // bytes per write (0: all at once)
	hangUp  bool   // close after the replies, instead of waiting
}

// FuzzPipelinedReplies sends arbitrary bytes as a PIPELINING gateway's
// answer to an N-recipient transaction (the group MAIL, RCPT…, DATA and
// whatever follows: the body's reply, RSET, EHLO, further 452 batches),
// over a real loopback connection, in writes of a fuzzed size, the server
// then hanging up or going silent. Invariants: the delivery ends within
// 3 s (a command timeout of 10 ms and the reply bounds end anything the
// bytes leave open); it never panics; every recipient gets exactly one
// result, with a reply; none is delivered unless the bytes hold a 354.
func FuzzPipelinedReplies(f *testing.F) {
	for _, s := range []struct {
		in     string
		n      uint8
		chunk  uint16
		hangUp bool
	}{
		{"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n", 2, 0, false},
		{"250 ok\r\n550 5.1.1 no\r\n452 4.5.3 later\r\n354 go\r\n250 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n250 q\r\n", 2, 3, true},
		{"550 5.7.1 no\r\n503 no\r\n503 no\r\n554 no\r\n", 2, 1, false},
		{"250 ok\r\n550 no\r\n550 no\r\n354 go\r\n554 none\r\n250 ok\r\n250 ehlo\r\n", 2, 0, false},
		{"250 ok\r\n550 no\r\n503 no valid recipients\r\n250 ok\r\n250-e\r\n250 PIPELINING\r\n", 1, 7, false},
		{"250 ok\r\n421 4.3.2 bye\r\n", 3, 0, true},
		{"250 ok\r\n", 3, 0, true},
		{"250 ok\r\n250 stale\r\n250 ok\r\n354 go\r\n", 2, 0, false},
		{"250 ok\r\n250-" + strings.Repeat("x", 3000) + "\r\n", 1, 100, false},
		{strings.Repeat("250-more\r\n", 4000), 1, 0, false},
		{"", 5, 0, false},
	} {
		f.Add([]byte(s.in), s.n, s.chunk, s.hangUp)
	}
	var mu sync.Mutex
	var cur fuzzPipeCase
	addr := fuzzPipeServer(f, func() fuzzPipeCase { mu.Lock(); defer mu.Unlock(); return cur })
	var src atomic.Uint32
	dial := func(ctx context.Context, network, a string) (net.Conn, error) {
		ip := net.IPv4(127, 0, 0, byte(1+src.Add(1)%250))
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}}
		return d.DialContext(ctx, network, a)
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, in []byte, n uint8, chunk uint16, hangUp bool) {
		if len(in) > 64<<10 {
			return
		}
		nr := 1 + int(n%6)
		mu.Lock()
		cur = fuzzPipeCase{replies: in, chunk: int(chunk % 2048), hangUp: hangUp}
		mu.Unlock()
		q := &memQueue{body: testBody}
		w, err := New(Options{
			Queue: q, Hostname: "relay.test", Gateway: addr, GatewayTLS: GatewayTLSNone, Logger: log, Dial: dial,
			Timeouts: Timeouts{Connect: 500 * time.Millisecond, Command: 10 * time.Millisecond,
				DataBlock: 50 * time.Millisecond, Final: 10 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.closeGateways()
		env := &queue.Envelope{ID: "fuzz1", From: "alice@example.org", Arrival: time.Now(), Size: int64(len(testBody))}
		var idx []int
		for i := range nr {
			env.Recipients = append(env.Recipients, queue.Recipient{Addr: fmt.Sprintf("r%d@example.net", i), Status: queue.StatusPending})
			idx = append(idx, i)
		}
		var res map[int]result
		testutil.ReturnsWithin(t, 3*time.Second, "one pipelined delivery", func() {
			res, _ = w.gatewayHop().deliver(context.Background(), &queue.Message{Envelope: env}, idx)
		})
		if len(res) != nr {
			t.Fatalf("%d results for %d recipients: %v", len(res), nr, res)
		}
		for _, i := range idx {
			r, ok := res[i]
			switch {
			case !ok:
				t.Fatalf("recipient %d without a result", i)
			case r.reply == nil:
				t.Fatalf("recipient %d: result without a reply", i)
			case r.status == queue.StatusRelayed && !strings.Contains(string(in), "354"):
				t.Fatalf("recipient %d relayed without a 354 in %q", i, in)
			}
			checkRecordedReply(t, recordable(r.reply))
		}
	})
}

// fuzzPipeServer serves FuzzPipelinedReplies: greeting and EHLO (with
// PIPELINING), then, at the first command after EHLO, the current case's
// bytes; it reads and drops everything the client sends.
func fuzzPipeServer(tb testing.TB, current func() fuzzPipeCase) string {
	return reviewListen(tb, func(_ int, c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		c.Write([]byte("220 fuzz.test ESMTP\r\n"))
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		c.Write([]byte("250-fuzz.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n"))
		if _, err := br.ReadString('\n'); err != nil {
			return
		}
		cs := current()
		for b := cs.replies; len(b) > 0; {
			k := len(b)
			if cs.chunk > 0 {
				k = min(k, cs.chunk)
			}
			if _, err := c.Write(b[:k]); err != nil {
				return
			}
			b = b[k:]
		}
		for !cs.hangUp {
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
		}
	})
}
