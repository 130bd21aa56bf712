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

	"github.com/edgerelay/edgerelay/internal/mdblock"
)

// TestQuickstart runs the README's quick start as a newcomer would: the
// README's blocks marked quickstart (scripts/quickstart.sh) and
// quickstart-send (the curl command), taken from README.md itself, and
// checks that the message reached the development sink with edgerelay's
// trace header.
func TestQuickstart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	requireClient(t, "curl", "curl")
	blocks, err := mdblock.File("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start, sendBlock := blocks["quickstart"], blocks["quickstart-send"]
	if start == "" || sendBlock == "" {
		t.Fatal("README.md lacks the blocks marked <!-- test: quickstart --> and <!-- test: quickstart-send -->")
	}
	qs := t.TempDir()
	cmd := exec.Command("bash", "-c", start)
	cmd.Dir = ".."
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
	// The README's command as it stands: it exits 0 and prints nothing on
	// standard output (off a terminal curl shows a progress meter on
	// standard error).
	send := exec.Command("bash", "-c", sendBlock)
	var stderr strings.Builder
	send.Stderr = &stderr
	out, err := send.Output()
	if err != nil || len(out) > 0 {
		t.Fatalf("the README's curl command: %v\n%s%s", err, out, stderr.String())
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
