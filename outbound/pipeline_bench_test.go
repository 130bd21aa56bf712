package outbound

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// sinkBackend is a go-smtp backend that takes every message and discards
// it: the loopback sink of BenchmarkDeliverPooled.
type sinkBackend struct{}

func (sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return sinkSession{}, nil }

type sinkSession struct{}

func (sinkSession) Mail(string, *smtp.MailOptions) error { return nil }
func (sinkSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (sinkSession) Data(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
func (sinkSession) Reset()        {}
func (sinkSession) Logout() error { return nil }

// newSink starts a discarding go-smtp server on 127.0.0.1 (it offers
// PIPELINING, as go-smtp's server always does) and returns its address.
func newSink(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := smtp.NewServer(sinkBackend{})
	srv.Domain = "sink.test"
	srv.ErrorLog = nopLogger{}
	srv.MaxMessageBytes = 1 << 20
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// slowReads makes each read from the connection wait rtt first: a reply
// the client waits for comes a round trip later, whether it was read
// alone or with the others of a pipelined group. A read with a deadline
// already past (the pooled connection's quiet check) does not wait.
type slowReads struct {
	net.Conn
	rtt  time.Duration
	past *bool
}

func (c slowReads) SetDeadline(t time.Time) error {
	*c.past = !t.IsZero() && t.Before(time.Now())
	return c.Conn.SetDeadline(t)
}

func (c slowReads) SetReadDeadline(t time.Time) error {
	*c.past = !t.IsZero() && t.Before(time.Now())
	return c.Conn.SetReadDeadline(t)
}

func (c slowReads) Read(p []byte) (int, error) {
	if !*c.past {
		time.Sleep(c.rtt)
	}
	return c.Conn.Read(p)
}

// BenchmarkDeliverPooled delivers 10 KiB messages, one recipient each, to
// a discarding sink on loopback through the gateway path, all over one
// pooled connection (Concurrency 1): the attempt as the worker makes it
// (process: deliver, record, finish) with the queue in memory. Run it with
// -benchtime=1000x for the 1,000 messages of issue 10's measurement.
// msgs/s is wall-clock throughput; cpu-µs/msg is the whole process's CPU
// (worker and sink together) per message. "loopback" is the bare socket;
// "rtt=500us" waits half a millisecond before each read from the gateway,
// as a LAN round trip would.
func BenchmarkDeliverPooled(b *testing.B) {
	for _, rtt := range []time.Duration{0, 500 * time.Microsecond} {
		name := "loopback"
		if rtt > 0 {
			name = "rtt=" + rtt.String()
		}
		b.Run(name, func(b *testing.B) { benchDeliverPooled(b, rtt) })
	}
}

func benchDeliverPooled(b *testing.B, rtt time.Duration) {
	body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 10<<10/80)
	body = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: bench\r\n\r\n" + body
	q := &memQueue{body: body}
	w, err := New(Options{
		Queue: q, Hostname: "relay.test", Gateway: newSink(b), GatewayTLS: GatewayTLSNone,
		Logger: slog.New(slog.DiscardHandler), Concurrency: 1,
		Timeouts: Timeouts{Connect: 5 * time.Second, Command: 5 * time.Second, DataBlock: 5 * time.Second, Final: 5 * time.Second},
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if err != nil || rtt == 0 {
				return c, err
			}
			return slowReads{Conn: c, rtt: rtt, past: new(bool)}, nil
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer w.closeGateways()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for n := range b.N {
		env := &queue.Envelope{ID: "bench", From: "alice@example.org", Arrival: time.Now(), Size: int64(len(body)),
			Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}}}
		w.process(ctx, &queue.Message{Envelope: env})
		if st := env.Recipients[0].Status; st != queue.StatusRelayed {
			b.Fatalf("message %d: status %s, reply %v", n, st, env.Recipients[0].Reply)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}
