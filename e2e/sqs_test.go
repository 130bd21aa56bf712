package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// startEmulator builds and runs the SQS + S3 emulator as its own process
// and returns its endpoint and the URL of the queue "relay".
func startEmulator(t *testing.T) (endpoint, queueURL string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "awsemu")
	if out, err := exec.Command("go", "build", "-o", bin, "../internal/awstest/awsemu").CombinedOutput(); err != nil {
		t.Fatalf("build awsemu: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-addr", freeAddr(t), "-queue", "relay", "-dlq", "relay-dlq", "-bucket", "relay-bodies", "-visibility", "5")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "queue" && f[1] == "relay":
			queueURL = f[2]
		case len(f) == 2 && f[0] == "ready":
			endpoint = f[1]
		}
		if endpoint != "" {
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if endpoint == "" || queueURL == "" {
		t.Fatalf("emulator did not start (endpoint %q, queue %q)", endpoint, queueURL)
	}
	return endpoint, queueURL
}

// TestBinarySQSScaleOut: two submission front ends and two delivery
// workers, separate processes sharing one SQS + S3 queue. 1,000 messages
// submitted across both front ends all reach the sink; one worker is
// killed with SIGKILL in the middle of deliveries and nothing is lost.
// Duplicates (SQS delivers at least once) are counted and reported.
func TestBinarySQSScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	endpoint, queueURL := startEmulator(t)
	sk := newSink(t, "127.0.0.1:0")
	// A slow gateway, so that deliveries are in flight when the worker dies.
	sk.setDelay(5 * time.Millisecond)
	common := map[string]string{
		"RELAY_QUEUE":                  "sqs",
		"RELAY_SQS_QUEUE_URL":          queueURL,
		"RELAY_S3_BUCKET":              "relay-bodies",
		"RELAY_SQS_VISIBILITY_TIMEOUT": "5s",
		"RELAY_GATEWAY":                sk.addr(),
		"RELAY_GATEWAY_TLS":            "none",
		"RELAY_RETRY_SCHEDULE":         "1s",
		"RELAY_LOG_LEVEL":              "info",
		"AWS_ENDPOINT_URL":             endpoint,
		"AWS_REGION":                   "us-east-1",
		"AWS_ACCESS_KEY_ID":            "test",
		"AWS_SECRET_ACCESS_KEY":        "test",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	var fronts []*relayProc
	for i := range 2 {
		dir := t.TempDir()
		writeUsers(t, filepath.Join(dir, "users"), map[string]string{"alice@example.org": "alice-pw"})
		fronts = append(fronts, start(t, with(map[string]string{"RELAY_ROLE": "submission", "RELAY_DATA_DIR": dir})))
		_ = i
	}
	w1 := start(t, with(map[string]string{"RELAY_ROLE": "worker", "RELAY_DATA_DIR": t.TempDir(), "RELAY_DELIVERY_CONCURRENCY": "4"}))
	w2 := start(t, with(map[string]string{"RELAY_ROLE": "worker", "RELAY_DATA_DIR": t.TempDir(), "RELAY_DELIVERY_CONCURRENCY": "4"}))

	const total = 1000
	const conns = 8
	var accepted atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conns)
	for c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			front := fronts[c%2]
			cl, err := smtp.DialStartTLS(front.sub, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				errc <- err
				return
			}
			defer cl.Close()
			if err := cl.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-pw")); err != nil {
				errc <- err
				return
			}
			for n := c; n < total; n += conns {
				body := fmt.Sprintf("From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: scale %d\r\nX-Seq: %d\r\n\r\nmessage %d\r\n", n, n, n)
				if err := cl.SendMail("alice@example.org", []string{"bob@example.net"}, strings.NewReader(body)); err != nil {
					errc <- fmt.Errorf("message %d: %w", n, err)
					return
				}
				accepted.Add(1)
			}
			cl.Quit()
		}()
	}
	// Kill one worker with SIGKILL once deliveries are under way.
	waitFor(t, "deliveries to start", 120*time.Second, func() bool { return len(sk.messages()) >= 150 })
	w1.cmd.Process.Signal(syscall.SIGKILL)
	<-w1.done
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if accepted.Load() != total {
		t.Fatalf("%d accepted, want %d", accepted.Load(), total)
	}

	seqRe := regexp.MustCompile(`X-Seq: (\d+)`)
	unique := func() (map[string]int, int) {
		seen := map[string]int{}
		dups := 0
		for _, m := range sk.messages() {
			s := seqRe.FindStringSubmatch(string(m.Data))
			if s == nil {
				continue
			}
			if seen[s[1]]++; seen[s[1]] > 1 {
				dups++
			}
		}
		return seen, dups
	}
	waitFor(t, "every message at the sink", 180*time.Second, func() bool {
		seen, _ := unique()
		return len(seen) == total
	})
	seen, dups := unique()
	t.Logf("%d messages accepted by 2 front ends, %d distinct delivered by 2 workers (one SIGKILLed), %d duplicates", total, len(seen), dups)
	if dups > 50 {
		t.Errorf("%d duplicates: more than the in-flight deliveries of the killed worker could explain", dups)
	}
	for _, p := range append(fronts, w2) {
		p.stop()
	}
}
