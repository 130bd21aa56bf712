package outbound

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// fakeClock is a settable clock shared by the spool and the worker.
type fakeClock = testutil.Clock

func newClock() *fakeClock {
	return testutil.NewClock(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
}

// reportCall is what the fake reporter saw in one Report call.
type reportCall struct {
	ID     string
	Kind   dsn.Action
	Rcpts  []string
	Until  time.Time
	Replys []string
}

// fakeReporter records Report calls and fails while err is set.
type fakeReporter struct {
	mu    sync.Mutex
	calls []reportCall
	err   error
}

func (f *fakeReporter) Report(ctx context.Context, req ReportRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	env := req.Message.Envelope
	c := reportCall{ID: env.ID, Kind: req.Kind, Until: req.WillRetryUntil}
	for _, i := range req.Recipients {
		c.Rcpts = append(c.Rcpts, env.Recipients[i].Addr)
		c.Replys = append(c.Replys, env.Recipients[i].Reply.String())
	}
	// The body must be readable for the report.
	rc, err := req.Body(ctx)
	if err != nil {
		return err
	}
	rc.Close()
	f.calls = append(f.calls, c)
	return nil
}

func (f *fakeReporter) Calls() []reportCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]reportCall(nil), f.calls...)
}

func (f *fakeReporter) setErr(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// fakeResolver answers MX and address lookups from maps; a name in neither
// map does not exist.
type fakeResolver struct {
	mx    map[string][]*net.MX
	ips   map[string][]string
	errs  map[string]error // by name, for both lookups
	mu    sync.Mutex
	calls []string
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func (r *fakeResolver) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	r.mu.Lock()
	r.calls = append(r.calls, "MX "+name)
	r.mu.Unlock()
	if err := r.errs[name]; err != nil {
		return nil, err
	}
	if mx, ok := r.mx[name]; ok {
		return mx, nil
	}
	return nil, notFound(name)
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.mu.Lock()
	r.calls = append(r.calls, "A "+host)
	r.mu.Unlock()
	if err := r.errs[host]; err != nil {
		return nil, err
	}
	ips, ok := r.ips[host]
	if !ok {
		return nil, notFound(host)
	}
	var out []net.IPAddr
	for _, ip := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
	}
	return out, nil
}

// harness is a spool with a fake clock, a worker and a fake reporter.
type harness struct {
	t     *testing.T
	q     *spool.Spool
	clock *fakeClock
	rep   *fakeReporter
	w     *Worker
	log   *logBuffer
	// dialMap maps dialed addresses ("192.0.2.1:25") to real ones.
	dialMap map[string]string
	dialed  []string
	mu      sync.Mutex
}

// logBuffer collects log output, to check that secrets never appear.
type logBuffer = testutil.LogBuffer

func newHarness(t *testing.T, configure func(*Options)) *harness {
	t.Helper()
	t.Setenv("SSL_CERT_FILE", "")
	t.Setenv("SSL_CERT_DIR", "")
	t.Setenv("AWS_CA_BUNDLE", "")
	h := &harness{t: t, clock: newClock(), rep: &fakeReporter{}, log: &logBuffer{}, dialMap: map[string]string{}}
	q, err := spool.Open(t.TempDir(), spool.Options{Now: h.clock.Now, PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	h.q = q
	o := Options{
		Queue:       q,
		Hostname:    "relay.test",
		Reporter:    h.rep,
		Logger:      slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         h.clock.Now,
		Rand:        func() float64 { return 0.5 }, // no jitter, stable MX order
		Timeouts:    Timeouts{Connect: 5 * time.Second, Command: 5 * time.Second, DataBlock: 5 * time.Second, Final: 5 * time.Second},
		Dial:        h.dial,
		Concurrency: 2,
	}
	if configure != nil {
		configure(&o)
	}
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.closeGateways)
	h.w = w
	return h
}

func (h *harness) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	h.mu.Lock()
	h.dialed = append(h.dialed, addr)
	real, ok := h.dialMap[addr]
	h.mu.Unlock()
	if !ok {
		real = addr
	}
	if !strings.HasPrefix(real, "127.0.0.1:") {
		return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("test: no route to " + addr)}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

func (h *harness) Dialed() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.dialed...)
}

const testBody = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: test\r\n\r\nHello, Bob.\r\n"

// enqueue queues a message from alice to rcpts, with env adjusted by edit.
func (h *harness) enqueue(edit func(*queue.Envelope), rcpts ...string) string {
	h.t.Helper()
	env := &queue.Envelope{From: "alice@example.org", User: "alice", Size: int64(len(testBody))}
	for _, r := range rcpts {
		env.Recipients = append(env.Recipients, queue.Recipient{Addr: r, Status: queue.StatusPending})
	}
	if edit != nil {
		edit(env)
	}
	id, err := h.q.Enqueue(context.Background(), env, strings.NewReader(testBody))
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

// attempt leases the next due message and runs one attempt on it, as the
// worker loop does; it returns the envelope as the attempt left it.
func (h *harness) attempt() *queue.Envelope {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := h.q.Lease(ctx)
	if err != nil {
		h.t.Fatalf("lease: %v (nothing due?)", err)
	}
	h.w.process(context.Background(), m)
	return m.Envelope
}

// noneDue checks that no message is due now.
func (h *harness) noneDue() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if m, err := h.q.Lease(ctx); err == nil {
		h.t.Fatalf("message %s is due, want none", m.Envelope.ID)
	}
}

// rcpt returns the recipient addr of env.
func rcpt(t *testing.T, env *queue.Envelope, addr string) *queue.Recipient {
	t.Helper()
	for i := range env.Recipients {
		if env.Recipients[i].Addr == addr {
			return &env.Recipients[i]
		}
	}
	t.Fatalf("no recipient %s in %s", addr, env.ID)
	return nil
}

func gatewayOpts(s *scriptServer, mode string) func(*Options) {
	return func(o *Options) {
		o.Gateway = s.Addr
		o.GatewayTLS = mode
		if s.CertPool != nil {
			o.GatewayRootCAs = s.CertPool
			o.GatewayTLSVerify = true
		}
	}
}

func combine(fs ...func(*Options)) func(*Options) {
	return func(o *Options) {
		for _, f := range fs {
			if f != nil {
				f(o)
			}
		}
	}
}
