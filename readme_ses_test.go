package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestREADMESESLocal runs the README's SES blocks as a newcomer would: the
// emulator and a relay whose gateway is ses://us-east-1 at it, the quick
// start's message sent with its curl command, and the emulator's store read
// with the README's curl: SES got the message from the user to the
// recipient, as submitted.
func TestREADMESESLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("EDGERELAY_REQUIRE_CLIENTS") == "1" {
			t.Fatal("EDGERELAY_REQUIRE_CLIENTS=1 but curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	b := readmeBlocks(t, "ses-local", "ses-local-inspect", "quickstart-send")
	bin := buildReadmeTools(t)
	dir := t.TempDir()
	env := readmeEnv(bin)
	ports := loopbackPorts{}
	relay, done := startScript(t, dir, asBuilt(t, ports.rewrite(t, b["ses-local"]), bin), env)
	addr, ok := ports["127.0.0.1:18080"]
	if !ok {
		t.Fatal("the README's SES block no longer uses 127.0.0.1:18080")
	}
	eventually(t, "/readyz", 60*time.Second, func() bool {
		if !running(done) {
			t.Fatalf("the SES block exited:\n%s", relay.String())
		}
		return readmeReady(addr)
	})
	send := exec.Command("bash", "-c", ports.rewrite(t, b["quickstart-send"]))
	send.Dir, send.Env = dir, env
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("the quick start's curl command: %v\n%s", err, out)
	}
	var sent []struct {
		FromEmailAddress string
		Destination      struct{ ToAddresses []string }
		RawData          string
	}
	eventually(t, "the emulator to hold the message", 60*time.Second, func() bool {
		inspect := exec.Command("bash", "-c", ports.rewrite(t, b["ses-local-inspect"]))
		inspect.Dir, inspect.Env = dir, env
		out, err := inspect.Output()
		sent = nil
		return err == nil && json.Unmarshal(out, &struct{ SentEmails any }{&sent}) == nil && len(sent) > 0
	})
	if len(sent) != 1 || sent[0].FromEmailAddress != "you@example.com" || strings.Join(sent[0].Destination.ToAddresses, ",") != "friend@example.net" {
		t.Fatalf("SES got %+v", sent)
	}
	raw, err := base64.StdEncoding.DecodeString(sent[0].RawData)
	if err != nil || !strings.Contains(string(raw), "My first message through edgerelay.") {
		t.Errorf("RawData %q (%v)", raw, err)
	}
	if !strings.Contains(relay.String(), "SES accepted the message") {
		t.Errorf("the relay's log does not say SES accepted the message:\n%s", relay.String())
	}
}
