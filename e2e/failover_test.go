package e2e

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinaryGatewayFailover: the built binary with RELAY_GATEWAY a list of
// two sink gateways whose first is down: the message arrives through the
// second, the log and /metrics say the first failed over; once the first
// is up and its back-off (RELAY_GATEWAY_BACKOFF=1s) is over, mail goes to
// it again.
func TestBinaryGatewayFailover(t *testing.T) {
	dir := t.TempDir()
	first := freeAddr(t) // nothing listens here yet
	second := newSink(t, "127.0.0.1:0")
	env := baseEnv(t, dir, "smtp+insecure://"+first+", smtp+insecure://"+second.addr())
	env["RELAY_GATEWAY_BACKOFF"] = "1s"
	p := start(t, env)

	send := func(subject string) {
		t.Helper()
		if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{"bob@example.net"},
			msg("alice@example.org", "bob@example.net", subject)); err != nil {
			t.Fatal(err)
		}
	}
	send("through the second")
	waitFor(t, "delivery through the second gateway", 30*time.Second, func() bool { return len(second.messages()) == 1 })
	if m := second.messages()[0]; !strings.Contains(string(m.Data), "Subject: through the second") {
		t.Fatalf("second gateway got:\n%s", m.Data)
	}
	if logs := p.logs.String(); !strings.Contains(logs, `"msg":"gateway down, failing over"`) || !strings.Contains(logs, `"gateway":"smtp+insecure://`+first) {
		t.Fatalf("no failover line in the log:\n%s", logs)
	}
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`edgerelay_gateway_failovers_total{gateway="smtp+insecure://` + first + `"} 1`,
		`edgerelay_gateway_attempts_total{gateway="smtp+insecure://` + first + `",result="unavailable"} 1`,
		`edgerelay_gateway_attempts_total{gateway="smtp+insecure://` + second.addr() + `",result="delivered"} 1`,
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The first gateway comes up; after its back-off it gets the mail.
	up := newSink(t, first)
	time.Sleep(1200 * time.Millisecond)
	send("back to the first")
	waitFor(t, "delivery through the first gateway", 30*time.Second, func() bool { return len(up.messages()) == 1 })
	if len(second.messages()) != 1 {
		t.Fatalf("second gateway got %d messages, want still 1", len(second.messages()))
	}
	p.stop()
	if n := spoolLen(t, filepath.Join(dir, "spool")); n != 0 {
		t.Errorf("spool holds %d messages after both deliveries", n)
	}
}

// TestBinaryRoutes: with RELAY_ROUTES, the sender's domain picks its own
// gateway and RELAY_GATEWAY gets nothing of it.
func TestBinaryRoutes(t *testing.T) {
	dir := t.TempDir()
	main, routed := newSink(t, "127.0.0.1:0"), newSink(t, "127.0.0.1:0")
	env := baseEnv(t, dir, "smtp+insecure://"+main.addr())
	env["RELAY_ROUTES"] = "Example.ORG=smtp+insecure://" + routed.addr()
	p := start(t, env)
	if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{"bob@example.net"},
		msg("alice@example.org", "bob@example.net", "routed")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery through the route's gateway", 30*time.Second, func() bool { return len(routed.messages()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := len(main.messages()); n != 0 {
		t.Fatalf("RELAY_GATEWAY got %d messages, want none", n)
	}
	p.stop()
}
