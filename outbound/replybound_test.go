package outbound

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/dsn/dsntest"
	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

// invalidRun is what the issue found: a next hop answering with about
// 1,000 bytes that are not UTF-8 and contain no space.
var invalidRun = strings.Repeat("\x80", 1000)

// TestReportInvalidUTF8ReplyTerminates is the case end to end: an
// SMTPUTF8 message whose next hop answered with 1,000 invalid bytes and no
// space. The report must be composed, in time, and parse back.
func TestReportInvalidUTF8ReplyTerminates(t *testing.T) {
	r, st := ndrReporter(t, nil, 0)
	env := ndrEnvelope()
	env.SMTPUTF8 = true
	env.Recipients[0].Reply = &queue.Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{invalidRun}}
	var err error
	testutil.ReturnsWithin(t, 2*time.Second, "Report", func() {
		err = r.Report(context.Background(), ReportRequest{
			Message: &queue.Message{Envelope: env}, Kind: dsn.Failed, Recipients: []int{0}, Body: ndrBody(ndrOriginal),
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, msg := st.only(t)
	dsntest.CheckLines(t, msg)
	if !utf8.Valid(msg) {
		t.Errorf("an SMTPUTF8 report is not valid UTF-8")
	}
	d, err := dsn.Parse(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	// A reply stored unbounded (by an older version) is bounded in the
	// report as it would have been when recorded.
	if diag := d.Recipients[0].DiagnosticCode; len(diag) > len("550 5.1.1 ")+maxReplyText {
		t.Errorf("Diagnostic-Code is %d bytes, want the reply bounded to %d", len(diag), maxReplyText)
	}
}

// TestRecordedReplyIsBounded: whatever the remote answered, what the worker
// records on the recipient is valid UTF-8, without control characters, and
// at most maxReplyText bytes of text (issue 8 item 4).
func TestRecordedReplyIsBounded(t *testing.T) {
	h := newHarness(t, nil)
	lines := []string{invalidRun, "tab\there\x00nul \x1b[31m\x7f del \u0085 nel \uFFFE\uFFFF", strings.Repeat("é", 2000)}
	for range 200 {
		lines = append(lines, "")
	}
	env := &queue.Envelope{ID: "b1", Recipients: []queue.Recipient{{Addr: bob, Status: queue.StatusPending}}}
	err := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1234, 1}, Message: strings.Join(lines, "\n")}
	h.w.apply(env, []int{0}, map[int]result{0: resultOf(classify(err), "mx.example.net [192.0.2.1]\r\nX: y")})
	rep := env.Recipients[0].Reply
	checkRecordedReply(t, rep)
	if rep.Code != 550 || env.Recipients[0].Status != queue.StatusFailed {
		t.Errorf("reply %v status %s, want 550 failed", rep, env.Recipients[0].Status)
	}
	if rep.Enhanced != "" {
		t.Errorf("enhanced code %q kept, want it dropped (not RFC 3463)", rep.Enhanced)
	}
	if rm := env.Recipients[0].RemoteMTA; strings.ContainsAny(rm, "\r\n") {
		t.Errorf("RemoteMTA %q holds a line break", rm)
	}
}

// checkRecordedReply checks the invariants of a recorded reply.
func checkRecordedReply(t *testing.T, rep *queue.Reply) {
	t.Helper()
	if rep == nil {
		t.Fatal("no reply recorded")
	}
	text := strings.Join(rep.Lines, "\n")
	if len(text) > maxReplyText {
		t.Errorf("recorded reply text is %d bytes, want at most %d", len(text), maxReplyText)
	}
	if !utf8.ValidString(text) || !utf8.ValidString(rep.Enhanced) {
		t.Errorf("recorded reply is not valid UTF-8: %q", dsntest.Trunc(text, 60))
	}
	for _, r := range text {
		if r != '\n' && (r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfffe || r == 0xffff) {
			t.Errorf("recorded reply holds control character %U", r)
			break
		}
	}
	if rep.Enhanced != "" && !validEnhanced(rep.Enhanced) {
		t.Errorf("recorded enhanced code %q is not RFC 3463", rep.Enhanced)
	}
}
