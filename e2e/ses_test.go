package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/awstest"
)

// sesEnv is the environment of a relay whose gateway is gateway (ses://…)
// with the SES v2 endpoint at the emulator: static credentials, no shared
// config files, no instance metadata.
func sesEnv(t *testing.T, dir, gateway, endpoint string) map[string]string {
	writeUsers(t, filepath.Join(dir, "users"), map[string]string{"alice@example.org": "alice-pw"})
	none := filepath.Join(t.TempDir(), "none")
	return map[string]string{
		"RELAY_DATA_DIR":              dir,
		"RELAY_GATEWAY":               gateway,
		"RELAY_SES_CONFIGURATION_SET": "relay-e2e",
		"RELAY_RETRY_SCHEDULE":        "300ms",
		"RELAY_SHUTDOWN_GRACE":        "5s",
		"AWS_ENDPOINT_URL_SESV2":      endpoint,
		"AWS_ACCESS_KEY_ID":           "AKIDEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":       "test-secret",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
	}
}

// TestBinarySES: the built binary with RELAY_GATEWAY=ses://us-east-1 and
// AWS_ENDPOINT_URL_SESV2 at the emulator delivers a submitted message
// through the SES v2 API: the emulator's store holds it once, as the relay
// queued it (its Received field added, the rest as submitted), to every
// envelope recipient, the Bcc one included, from the envelope sender, with
// the configuration set; the log ties SES's message ID to the queue ID.
func TestBinarySES(t *testing.T) {
	s := awstest.Start(t)
	p := start(t, sesEnv(t, t.TempDir(), "ses://us-east-1", s.URL))
	marker := awstest.UniqueName("e2e-ses")
	body := "From: Alice <alice@example.org>\r\nTo: <bob@example.net>\r\nCc: <carol@example.net>\r\n" +
		"Subject: " + marker + "\r\nMessage-ID: <" + marker + "@example.org>\r\n\r\nHello through SES.\r\n"
	rcpts := []string{"bob@example.net", "carol@example.net", "dave-bcc@example.com"}
	if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", rcpts, body); err != nil {
		t.Fatal(err)
	}
	var sent []awstest.SentEmail
	waitFor(t, "SES to get the message", 60*time.Second, func() bool {
		sent = s.FindSent(t, marker)
		return len(sent) > 0
	})
	time.Sleep(300 * time.Millisecond) // a duplicate would show by now
	if sent = s.FindSent(t, marker); len(sent) != 1 {
		t.Fatalf("SES got %d copies", len(sent))
	}
	e := sent[0]
	got := e.Recipients()
	slices.Sort(got)
	if !slices.Equal(got, rcpts) || e.FromEmailAddress != "alice@example.org" || e.ConfigurationSetName != "relay-e2e" {
		t.Errorf("SES got %v, configuration set %q", e, e.ConfigurationSetName)
	}
	if !bytes.HasPrefix(e.RawData, []byte("Received: ")) || !bytes.HasSuffix(e.RawData, []byte(body)) {
		t.Errorf("raw content is not the submitted message after a Received field:\n%s", e.RawData)
	}
	waitFor(t, "the log line with SES's message ID", 10*time.Second, func() bool {
		return strings.Contains(p.logs.String(), e.MessageID)
	})
	for l := range strings.SplitSeq(p.logs.String(), "\n") {
		if strings.Contains(l, e.MessageID) && !strings.Contains(l, `"id":"`) {
			t.Errorf("SES's message ID logged without the queue ID: %s", l)
		}
	}
	p.stop()
}

// TestBinarySESNoRegion: ses:// without a region, and no AWS_REGION, stops
// the binary at start with an error naming RELAY_GATEWAY and AWS_REGION.
func TestBinarySESNoRegion(t *testing.T) {
	env := sesEnv(t, t.TempDir(), "ses://", "http://127.0.0.1:9")
	cmd := exec.Command(binary(t))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir(), "RELAY_SUBMISSION_ADDR=" + freeAddr(t),
		"RELAY_SUBMISSIONS_ADDR=" + freeAddr(t), "RELAY_HTTP_ADDR=" + freeAddr(t), "RELAY_HOSTNAME=relay.e2e.test"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	done := make(chan struct{})
	var out []byte
	var err error
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the binary did not stop at start:\n%s", out)
	}
	if err == nil || !strings.Contains(string(out), "RELAY_GATEWAY") || !strings.Contains(string(out), "AWS_REGION") {
		t.Errorf("exit %v, output:\n%s", err, out)
	}
}

// TestBinarySESThrottled: SES throttling through the built binary: the
// SDK tries each call three times, the message is deferred with SES's
// words (451 4.4.5), retried on RELAY_RETRY_SCHEDULE, and delivered once
// SES takes it; nothing is bounced.
func TestBinarySESThrottled(t *testing.T) {
	var seen atomic.Int64
	s := awstest.Start(t).Front(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails" && seen.Add(1) <= 4 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"message":"Maximum sending rate exceeded."}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	})
	dir := t.TempDir()
	p := start(t, sesEnv(t, dir, "ses://us-east-1", s.URL))
	marker := awstest.UniqueName("e2e-ses-throttled")
	if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{"bob@example.net"},
		msg("alice@example.org", "bob@example.net", marker)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SES to take the message after throttling", 90*time.Second, func() bool { return len(s.FindSent(t, marker)) > 0 })
	if n := seen.Load(); n != 5 {
		t.Errorf("%d SendEmail requests, want 5 (3 attempts throttled in the first call, 1 in the second, then sent)", n)
	}
	logs := p.logs.String()
	if !strings.Contains(logs, "451 4.4.5 Amazon SES is throttling: TooManyRequestsException: Maximum sending rate exceeded.") {
		t.Errorf("no deferral with SES's words in the log:\n%s", logs)
	}
	if len(s.FindSent(t, marker)) != 1 {
		t.Errorf("SES got %d copies", len(s.FindSent(t, marker)))
	}
	if reports, _ := filepath.Glob(filepath.Join(dir, "bounces", "new", "*")); len(reports) != 0 {
		t.Errorf("reports written: %v", reports)
	}
	p.stop()
}
