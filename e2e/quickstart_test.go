package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestQuickstart runs the README's quick start as a newcomer would:
// scripts/quickstart.sh, then the README's curl command, and checks that
// the message reached the development sink with edgerelay's trace header.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	curl := requireClient(t, "curl", "curl")
	qs := t.TempDir()
	cmd := exec.Command("../scripts/quickstart.sh")
	cmd.Env = append(os.Environ(), "QUICKSTART_DIR="+qs)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("quickstart output:\n%s", logs.String())
		}
	})
	waitFor(t, "the quick start to be ready", 120*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:18080/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	// The README's command, verbatim but for -sS -v.
	send := exec.Command(curl, "-sS", "-v", "--ssl-reqd", "-k", "smtp://127.0.0.1:10587/laptop",
		"-u", "you@example.com:change-me", "--mail-from", "you@example.com", "--mail-rcpt", "friend@example.net", "-T", "-")
	send.Stdin = strings.NewReader("From: you@example.com\r\nTo: friend@example.net\r\nSubject: hello\r\n\r\nMy first message through edgerelay.\r\n")
	out, err := send.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "250 2.0.0 Ok: queued as") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	var got []byte
	waitFor(t, "the sink to print the message", 60*time.Second, func() bool {
		got, _ = os.ReadFile(filepath.Join(qs, "sink", "1.eml"))
		return len(got) > 0
	})
	for _, want := range []string{"with ESMTPSA", "Subject: hello", "Message-ID: <"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("delivered message lacks %q:\n%s", want, got)
		}
	}
	// The sink writes its file before it prints: wait for the print too.
	waitFor(t, "the sink to print the message", 60*time.Second, func() bool {
		return strings.Contains(logs.String(), "=== sink: message 1")
	})
	// The README's swaks line too, where swaks can do TLS (Debian: swaks and
	// libnet-ssleay-perl; EDGERELAY_REQUIRE_CLIENTS=1 requires both).
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		missingClient(t, "swaks is not installed (apt-get install swaks libnet-ssleay-perl)")
		return
	}
	out, err = exec.Command(swaks, "-s", "127.0.0.1", "-p", "10587", "--tls", "-a", "PLAIN",
		"-au", "you@example.com", "-ap", "change-me", "-f", "you@example.com", "-t", "friend@example.net").CombinedOutput()
	switch {
	case strings.Contains(string(out), "requires Net::SSLeay"):
		missingClient(t, "swaks has no TLS support (apt-get install libnet-ssleay-perl)")
	case err != nil || !strings.Contains(string(out), "250 2.0.0 Ok: queued as"):
		t.Errorf("swaks: %v\n%s", err, out)
	}
}
