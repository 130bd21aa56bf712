package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestBinaryBounce: the gateway refuses one recipient of two for good. The
// other is delivered; the sender gets one RFC 3464 report through the
// gateway, from <>; the same report is in the bounce Maildir, which holds
// nothing else; and the report itself is never bounced.
func TestBinaryBounce(t *testing.T) {
	dir := t.TempDir()
	sk := newSink(t, "127.0.0.1:0")
	sk.setReject(func(rcpt string) error {
		if rcpt == "nobody@example.net" {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user here"}
		}
		return nil
	})
	p := start(t, baseEnv(t, dir, sk.addr()))
	if err := p.submit("alice@example.org", "alice-pw", "alice@example.org",
		[]string{"bob@example.net", "nobody@example.net"},
		msg("alice@example.org", "bob@example.net", "partly undeliverable")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery and the report", 60*time.Second, func() bool { return len(sk.messages()) == 2 })
	var report *sinkMsg
	for _, m := range sk.messages() {
		if m.From == "" {
			report = &m
		} else if len(m.To) != 1 || m.To[0] != "bob@example.net" {
			t.Fatalf("delivered to %v", m.To)
		}
	}
	if report == nil || len(report.To) != 1 || report.To[0] != "alice@example.org" {
		t.Fatalf("no report to the sender from <>: %+v", sk.messages())
	}
	body := string(report.Data)
	for _, want := range []string{
		"Content-Type: multipart/report; report-type=delivery-status",
		"Final-Recipient: rfc822; nobody@example.net",
		"Action: failed",
		"Status: 5.1.1",
		"Diagnostic-Code: smtp; 550 5.1.1 no such user here",
		"Auto-Submitted: auto-replied",
		"Subject: partly undeliverable",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("report lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Final-Recipient: rfc822; bob@example.net") {
		t.Errorf("report names the delivered recipient")
	}
	stored, _ := filepath.Glob(filepath.Join(dir, "bounces", "new", "*"))
	if len(stored) != 1 {
		t.Fatalf("%d reports in the bounce store, want 1", len(stored))
	}
	b, _ := os.ReadFile(stored[0])
	if !strings.Contains(string(b), "Final-Recipient: rfc822; nobody@example.net") {
		t.Fatalf("stored report:\n%s", b)
	}
	waitFor(t, "the spool to empty", 60*time.Second, func() bool { return queueGauge(t, p.http) == "0" })
	p.stop()
	if n := spoolLen(t, filepath.Join(dir, "spool")); n != 0 {
		t.Fatalf("%d messages in the spool after the report, want 0", n)
	}
}
