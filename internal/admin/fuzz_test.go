package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// memAdmin is a queue.Admin over one message in memory, for the fuzz
// target (fast, and every operation reachable).
type memAdmin struct{}

const memID = "MEM0000000000000001"

func (memAdmin) get(id string) (*queue.Entry, error) {
	if id != memID {
		return nil, queue.ErrNotFound
	}
	return &queue.Entry{Envelope: queue.Envelope{ID: memID, From: "a@example.org",
		Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending}}}}, nil
}
func (m memAdmin) List(context.Context) ([]queue.Entry, error) {
	e, _ := m.get(memID)
	return []queue.Entry{*e}, nil
}
func (m memAdmin) Show(_ context.Context, id string) (*queue.Entry, error) { return m.get(id) }
func (m memAdmin) OpenBody(_ context.Context, id string) (io.ReadCloser, error) {
	if _, err := m.get(id); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("Subject: x\r\n\r\nbody\r\n")), nil
}
func (m memAdmin) act(id string) (bool, error)                        { _, err := m.get(id); return err == nil, err }
func (m memAdmin) Retry(_ context.Context, id string) (bool, error)   { return m.act(id) }
func (m memAdmin) RetryAll(context.Context) (int, error)              { return 1, nil }
func (m memAdmin) Hold(_ context.Context, id string) (bool, error)    { return m.act(id) }
func (m memAdmin) Release(_ context.Context, id string) (bool, error) { return m.act(id) }
func (m memAdmin) Bounce(_ context.Context, id string) (bool, error)  { return m.act(id) }
func (m memAdmin) Delete(_ context.Context, id string) (bool, error)  { return m.act(id) }

// panicLog counts log records that report a recovered panic.
type panicLog struct{ n atomic.Int64 }

func (p *panicLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.n.Add(1)
	}
	return nil
}
func (p *panicLog) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicLog) WithGroup(string) slog.Handler      { return p }

// FuzzSocketRequest: whatever bytes a client sends (not JSON, not UTF-8,
// NULs, huge lines, no line end, several requests), the server never
// panics, and within the deadline answers at most one response line of
// bounded size (a protocol-1 JSON response) and closes the connection.
func FuzzSocketRequest(f *testing.F) {
	for _, seed := range []string{
		`{"v":1,"op":"list"}` + "\n",
		`{"v":1,"op":"show","id":"` + memID + `"}` + "\n",
		`{"v":1,"op":"body","id":"` + memID + `"}`,
		`{"v":1,"op":"delete","id":"` + memID + `"}` + "\r\n",
		`{"v":1,"op":"retry-all"}` + "\n" + `{"v":1,"op":"list"}` + "\n",
		`{"v":2,"op":"list"}`, "\x00\xff\xfe\n", strings.Repeat("[", 5000), "",
		`{"v":1,"op":"hold","id":"` + strings.Repeat("Z", 65) + `"}`,
	} {
		f.Add([]byte(seed))
	}
	logs := &panicLog{}
	srv := &Server{Admin: memAdmin{}, Logger: slog.New(logs), ReadTimeout: 100 * time.Millisecond, MaxConns: 64}
	path := serveSocket(f, srv)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		c.SetDeadline(start.Add(3 * time.Second))
		// The writer works on a copy and ends before this run does: the
		// fuzzer reuses in for the next input.
		in = bytes.Clone(in)
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.Write(in)
			c.(*net.UnixConn).CloseWrite()
		}()
		defer func() { c.Close(); <-wrote }()
		out, err := io.ReadAll(io.LimitReader(c, 1<<20))
		if err != nil {
			t.Fatalf("no answer and close within the deadline (%v): %v", time.Since(start), err)
		}
		if logs.n.Load() > 0 {
			t.Fatalf("the server recovered a panic on %q", in)
		}
		if len(out) == 0 {
			t.Fatalf("no response to %q", in)
		}
		line, rest, _ := bytes.Cut(out, []byte("\n"))
		var r Response
		if err := json.Unmarshal(line, &r); err != nil || r.V != Version || len(line) > 64<<10 {
			t.Fatalf("response %q to %q", line, in)
		}
		if len(rest) > 0 && !(r.OK && r.BodyBytes != 0) {
			t.Fatalf("more than one response to %q: %q", in, out)
		}
	})
}
