package main

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
)

// sinkBackend is a loopback next hop that takes every message and says so
// on got.
type sinkBackend struct{ got chan string }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &sinkSession{got: b.got}, nil
}

type sinkSession struct {
	got  chan string
	rcpt string
}

func (s *sinkSession) Mail(string, *smtp.MailOptions) error      { return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error { s.rcpt = to; return nil }
func (s *sinkSession) Reset()                                    {}
func (s *sinkSession) Logout() error                             { return nil }
func (s *sinkSession) Data(r io.Reader) error {
	io.Copy(io.Discard, r)
	select {
	case s.got <- s.rcpt:
	default:
	}
	return nil
}

// startSink serves the sink on 127.0.0.1 and returns its address.
func startSink(t *testing.T) (string, chan string) {
	t.Helper()
	got := make(chan string, 16)
	srv := smtp.NewServer(sinkBackend{got: got})
	srv.Domain = "sink.test"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), got
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	return testutil.FreeAddr(t)
}

// startServe runs serve, configured by the environment variables vars
// only, until the test ends.
func startServe(t *testing.T, vars map[string]string) {
	t.Helper()
	for k, v := range vars {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
}

// scrape reads /metrics and parses it as the text exposition format, with
// the classic metric-name rules (which every name must follow).
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// sample finds the metric of family name whose labels include want.
func sample(fams map[string]*dto.MetricFamily, name string, want ...string) *dto.Metric {
	f := fams[name]
	if f == nil {
		return nil
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		return m
	}
	return nil
}

func histCount(fams map[string]*dto.MetricFamily, name string, labels ...string) uint64 {
	if m := sample(fams, name, labels...); m != nil && m.Histogram != nil {
		return m.Histogram.GetSampleCount()
	}
	return 0
}

// TestMetricsAfterOneMessage runs the real wiring (serve, configured by
// environment variables): one message submitted over SMTP on loopback with
// STARTTLS and AUTH PLAIN, delivered by the worker to a loopback gateway;
// then /metrics, scraped over HTTP, parses and shows the accept, AUTH and
// delivery histograms and the message age moved, the counters, the queue
// gauges, and the Go runtime and process metrics.
func TestMetricsAfterOneMessage(t *testing.T) {
	dir := t.TempDir()
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte("a@example.org:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sink, got := startSink(t)
	httpAddr, subAddr := freeAddr(t), freeAddr(t)
	startServe(t, map[string]string{
		"RELAY_DATA_DIR": dir, "RELAY_HTTP_ADDR": httpAddr, "RELAY_HOSTNAME": "relay.test",
		"RELAY_SUBMISSION_ADDR": subAddr, "RELAY_SUBMISSIONS_ADDR": "127.0.0.1:0",
		"RELAY_AUTH": "file", "RELAY_GATEWAY": sink, "RELAY_GATEWAY_TLS": "none",
	})

	var (
		c   *smtp.Client
		err error
	)
	for i := 0; ; i++ {
		c, err = smtp.DialStartTLS(subAddr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			break
		}
		if i == 250 {
			t.Fatalf("submission not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "a@example.org", "pw")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	msg := "From: <a@example.org>\r\nTo: <b@example.net>\r\nSubject: metrics\r\n\r\nHello.\r\n"
	if err := c.SendMail("a@example.org", []string{"b@example.net"}, strings.NewReader(msg)); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.Quit()
	select {
	case rcpt := <-got:
		if rcpt != "b@example.net" {
			t.Fatalf("sink got %q", rcpt)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the message did not reach the gateway")
	}

	// The worker observes the attempt after the gateway's reply: wait
	// for it, and for the message to leave the spool.
	var fams map[string]*dto.MetricFamily
	for i := 0; ; i++ {
		fams = scrape(t, httpAddr)
		q := sample(fams, "edgerelay_queue_messages")
		if histCount(fams, "edgerelay_delivery_duration_seconds", "result", "delivered", "route", "gateway") == 1 &&
			q != nil && q.Gauge.GetValue() == 0 {
			break
		}
		if i == 250 {
			t.Fatal("no delivery observed, or the message still queued, 5 s after the gateway took it")
		}
		time.Sleep(20 * time.Millisecond)
	}

	for _, h := range []struct {
		name   string
		labels []string
	}{
		{"edgerelay_accept_duration_seconds", []string{"result", "queued"}},
		{"edgerelay_auth_duration_seconds", []string{"backend", "file", "result", "ok"}},
		{"edgerelay_delivery_duration_seconds", []string{"result", "delivered", "route", "gateway"}},
		{"edgerelay_message_age_seconds", []string{"result", "delivered"}},
	} {
		if n := histCount(fams, h.name, h.labels...); n != 1 {
			t.Errorf("%s%v: _count %d, want 1", h.name, h.labels, n)
		}
		if f := fams[h.name]; f == nil || f.GetType() != dto.MetricType_HISTOGRAM {
			t.Errorf("%s is not a histogram", h.name)
		}
	}
	if n := histCount(fams, "edgerelay_accept_duration_seconds", "result", "refused"); n != 0 {
		t.Errorf("accept refused: _count %d, want 0 (present, unmoved)", n)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"edgerelay_messages_total", []string{"result", "queued"}, 1},
		{"edgerelay_auth_total", []string{"result", "ok"}, 1},
		{"edgerelay_delivery_attempts_total", []string{"result", "delivered"}, 1},
		{"edgerelay_connections_total", nil, 1},
	} {
		m := sample(fams, c.name, c.labels...)
		if m == nil || m.Counter == nil || m.Counter.GetValue() != c.want {
			t.Errorf("%s%v = %v, want counter %v", c.name, c.labels, m, c.want)
		}
	}
	if m := sample(fams, "edgerelay_queued_bytes_total"); m == nil || m.Counter.GetValue() < float64(len(msg)) {
		t.Errorf("edgerelay_queued_bytes_total = %v, want at least %d", m, len(msg))
	}
	for _, g := range []string{"edgerelay_queue_messages", "edgerelay_queue_oldest_message_age_seconds", "edgerelay_deliveries_in_flight", "edgerelay_connections_open"} {
		if f := fams[g]; f == nil || f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("gauge %s missing", g)
		}
	}
	if m := sample(fams, "edgerelay_queue_oldest_message_age_seconds"); m != nil && m.Gauge.GetValue() != 0 {
		t.Errorf("oldest message age %v with an empty spool, want 0", m.Gauge.GetValue())
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_open_fds", "edgerelay_queue_crash_quarantined_total"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for name := range fams {
		if !strings.HasPrefix(name, "edgerelay_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("unexpected metric %s", name)
		}
	}
	checkREADMEListsMetrics(t, fams)
}

// checkREADMEListsMetrics: every edgerelay_ metric served is in the
// README's metrics table, with its type.
func checkREADMEListsMetrics(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "edgerelay_") {
			continue
		}
		row := "| `" + name + "` | " + strings.ToLower(f.GetType().String()) + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md's metrics table lacks the row %q", row)
		}
	}
}
