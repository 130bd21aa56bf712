package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// refusingAddr is a loopback address where nothing listens.
func refusingAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestReadyzGatewaysDown: two gateways that refuse connections are tried
// by one delivery (counted per gateway in /metrics: unavailable, one
// failover); /readyz names them only once they have failed every attempt
// for 5 minutes, as degraded (200) for a process that accepts mail and as
// not ready (503) for a worker-only one.
func TestReadyzGatewaysDown(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	a, b := refusingAddr(t), refusingAddr(t)
	obs := newMetrics()
	w, err := outbound.New(outbound.Options{
		Queue: sp, Hostname: "relay.test", ObserveGateway: obs.observeGateway,
		Gateways: []outbound.GatewayConfig{
			{URL: "smtp+insecure://" + a, Addr: a, TLS: outbound.GatewayTLSNone},
			{URL: "smtp+insecure://" + b, Addr: b, TLS: outbound.GatewayTLSNone},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	obs.addWorker(w)
	env := &queue.Envelope{From: "alice@example.org", Size: 3, Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending}}}
	if _, err := sp.Enqueue(context.Background(), env, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for st := w.GatewayStatus(); st[0].DownSince.IsZero() || st[1].DownSince.IsZero(); st = w.GatewayStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("gateways never tried: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	probe := func(role Role, after time.Duration) (int, string) {
		now := func() time.Time { return time.Now().Add(after) }
		rec := httptest.NewRecorder()
		readyHandler([]readyCheck{gatewayCheck(w, role, now)}, func() bool { return false }, time.Second).
			ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := probe(RoleWorker, time.Minute); code != 200 || body != "ready\n" {
		t.Errorf("down for a minute: %d %q, want ready", code, body)
	}
	code, body := probe(RoleAll, 6*time.Minute)
	var got struct {
		Ready    bool              `json:"ready"`
		Degraded map[string]string `json:"degraded"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != 200 || !got.Ready ||
		!strings.Contains(got.Degraded["gateways"], "smtp+insecure://"+a+" down since") || !strings.Contains(got.Degraded["gateways"], b) {
		t.Errorf("role all, down 6m: %d %s, want 200 naming both gateways as degraded", code, body)
	}
	if code, body := probe(RoleWorker, 6*time.Minute); code != 503 || !strings.Contains(body, "every RELAY_GATEWAY gateway is down") {
		t.Errorf("role worker, down 6m: %d %s, want 503", code, body)
	}

	rec := httptest.NewRecorder()
	obs.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{
		`edgerelay_gateway_attempts_total{gateway="smtp+insecure://` + a + `",result="unavailable"} 1`,
		`edgerelay_gateway_attempts_total{gateway="smtp+insecure://` + b + `",result="unavailable"} 1`,
		`edgerelay_gateway_failovers_total{gateway="smtp+insecure://` + a + `"} 1`,
		`edgerelay_gateway_failovers_total{gateway="smtp+insecure://` + b + `"} 0`,
		`edgerelay_gateway_duration_seconds_count{gateway="smtp+insecure://` + b + `"} 1`,
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
