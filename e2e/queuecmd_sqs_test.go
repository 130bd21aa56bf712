package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBinaryQueueCommandsSQS: with RELAY_QUEUE=sqs the commands work on
// the queue itself, from a shell with the queue's configuration (no
// socket): list and show read the S3 copies; hold, retry and delete are
// marks that the next receive obeys (the worker keeps a held message and
// looks again in HoldRecheck); the running process serves the same
// operations on its socket too.
func TestBinaryQueueCommandsSQS(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	endpoint, queueURL := startEmulator(t)
	gw := freeAddr(t) // down
	dir := t.TempDir()
	writeUsers(t, filepath.Join(dir, "users"), map[string]string{"alice@example.org": "alice-pw"})
	env := map[string]string{
		"RELAY_QUEUE":                  "sqs",
		"RELAY_SQS_QUEUE_URL":          queueURL,
		"RELAY_S3_BUCKET":              "relay-bodies",
		"RELAY_SQS_VISIBILITY_TIMEOUT": "5s",
		"RELAY_GATEWAY":                gw,
		"RELAY_GATEWAY_TLS":            "none",
		"RELAY_RETRY_SCHEDULE":         "2s", // an SQS delay: marks are acted on when it ends
		"RELAY_DATA_DIR":               dir,
		"AWS_ENDPOINT_URL":             endpoint,
		"AWS_REGION":                   "us-east-1",
		"AWS_ACCESS_KEY_ID":            "test",
		"AWS_SECRET_ACCESS_KEY":        "test",
	}
	p := start(t, env)
	for _, to := range []string{"bob@example.net", "carol@example.net", "dave@example.net"} {
		if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{to}, msg("alice@example.org", to, "sqs "+to)); err != nil {
			t.Fatal(err)
		}
	}
	// The operator's shell: the queue's configuration, another data
	// directory (no socket there).
	cli := &queueCLI{t: t, dataDir: t.TempDir(), env: env}
	waitFor(t, "three deferred messages in the S3 copies", 60*time.Second, func() bool {
		es := cli.list(t)
		n := 0
		for _, e := range es {
			if r := e.Envelope.Recipients[0].Reply; r != nil && strings.HasPrefix(r.String(), "451") {
				n++
			}
		}
		return n == 3
	})
	out := cli.ok("list")
	if !strings.Contains(out, "-- 3 message(s)") || !strings.Contains(out, "connection refused") {
		t.Fatalf("list:\n%s", out)
	}
	es := cli.list(t)
	bob, _ := entryTo(es, "bob@example.net")
	carol, _ := entryTo(es, "carol@example.net")
	dave, _ := entryTo(es, "dave@example.net")
	if body := cli.ok("show", bob.Envelope.ID, "--body"); !strings.Contains(body, "Subject: sqs bob@example.net") {
		t.Fatalf("show --body:\n%s", body)
	}
	if out := cli.ok("hold", bob.Envelope.ID); !strings.Contains(out, "recorded") {
		t.Fatalf("hold: %s", out)
	}
	if out := cli.ok("delete", dave.Envelope.ID); !strings.Contains(out, "recorded") {
		t.Fatalf("delete: %s", out)
	}
	sk := newSink(t, gw)
	// The running process's socket serves the same queue.
	sockCLI := &queueCLI{t: t, dataDir: dir}
	if out := sockCLI.ok("retry", carol.Envelope.ID); !strings.Contains(out, "recorded") {
		t.Fatalf("retry over the socket: %s", out)
	}
	waitFor(t, "carol's delivery after retry", 60*time.Second, func() bool { return len(sk.messages()) == 1 })
	waitFor(t, "dave's deletion", 60*time.Second, func() bool { _, ok := entryTo(cli.list(t), "dave@example.net"); return !ok })
	if !strings.Contains(p.logs.String(), `"msg":"message deleted by the operator"`) {
		t.Error("no WARN line for the deletion")
	}
	// bob is held: received, kept, looked at again in HoldRecheck (5 min,
	// longer than this test waits); never delivered meanwhile.
	waitFor(t, "bob's hold seen at a receive", 60*time.Second, func() bool {
		return strings.Contains(p.logs.String(), `"why":"on hold"`)
	})
	time.Sleep(3 * time.Second)
	if len(sk.messages()) != 1 || sk.messages()[0].To[0] != "carol@example.net" {
		t.Fatalf("delivered: %+v; want carol's message alone", sk.messages())
	}
	if e, ok := entryTo(cli.list(t), "bob@example.net"); !ok || !e.Envelope.Hold {
		t.Fatalf("bob: %+v, %v; want held", e, ok)
	}
	if out := cli.ok("list"); !strings.Contains(out, "held") {
		t.Fatalf("list:\n%s", out)
	}
	if _, errOut, code := cli.run("show", "NOSUCHMESSAGE"); code != 3 {
		t.Errorf("unknown ID: exit %d %s", code, errOut)
	}
	p.stop()
	if _, err := os.Lstat(filepath.Join(dir, "admin.sock")); !os.IsNotExist(err) {
		t.Errorf("socket left: %v", err)
	}
}
