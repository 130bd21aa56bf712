package dsn

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"testing"
	"time"
	"unicode/utf8"
)

// testNow is the fixed clock of the tests.
var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// seedReport is a small report with SMTPUTF8 and returned content as given.
func seedReport(global bool, ret ReturnContent) *Report {
	d := &Report{
		From: "MAILER-DAEMON@relay.example.org", To: "john@example.org",
		Subject: "Undelivered Mail Returned to Sender", Date: testNow,
		MessageID: "r1@relay.example.org", InReplyTo: "orig@example.org",
		Text:         "Your message could not be delivered.\n",
		ReportingMTA: "relay.example.org", ArrivalDate: testNow.Add(-time.Hour), SMTPUTF8: global,
		Recipients: []Recipient{{OriginalRecipient: "rfc822;bob@example.net", FinalRecipient: "bob@example.net",
			Action: Failed, Status: "5.1.1", RemoteMTA: "mx.example.net", DiagnosticCode: "550 5.1.1 user unknown", LastAttemptDate: testNow}},
		Return: ret,
	}
	switch ret {
	case ReturnHeaders:
		d.Original = []byte("Subject: s\r\nMessage-ID: <orig@example.org>\r\n")
	case ReturnFull:
		d.Original = []byte("Subject: s\r\nMessage-ID: <orig@example.org>\r\n\r\nbody\r\n")
	}
	return d
}

// returnsWithin runs f in a goroutine and fails the test when it has not
// returned after d: a loop over remote bytes that does not progress is a
// finding, not a timeout to raise (TESTING.md §3).
func returnsWithin(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v (a loop that does not progress?)", what, d)
	}
}

// checkLines fails unless every line of msg ends in CRLF, no CR or LF
// stands alone, and no line is longer than 998 characters (RFC 5322 §2.1.1).
func checkLines(t *testing.T, msg []byte) {
	t.Helper()
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Errorf("message does not end with CRLF")
	}
	for i, l := range bytes.SplitAfter(msg, []byte("\r\n")) {
		body := bytes.TrimSuffix(l, []byte("\r\n"))
		if bytes.ContainsAny(body, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, body)
		}
		if len(body) > 998 {
			t.Errorf("line %d is %d characters long", i+1, len(body))
		}
	}
}

// checkReportReadable checks a composed report with the standard library
// alone: header by net/mail, every part by mime/multipart (decoded), line
// lengths and endings, and valid UTF-8 for a global report.
func checkReportReadable(t *testing.T, msg []byte, global bool) {
	t.Helper()
	checkLines(t, msg)
	if hdr, _, _ := bytes.Cut(msg, []byte("\r\n\r\n")); !utf8.Valid(hdr) || (!global && !IsASCII(hdr)) {
		t.Fatalf("report header is not valid: %q", hdr)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("net/mail: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" {
		t.Fatalf("Content-Type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	n := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("mime/multipart: part %d: %v", n+1, err)
		}
		body, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("mime/multipart: part %d body: %v", n+1, err)
		}
		if n < 2 && (!utf8.Valid(body) || (!global && n == 1 && !IsASCII(body))) {
			t.Fatalf("part %d is not valid (UTF-8, ASCII for delivery-status): %q", n+1, trunc(string(body), 300))
		}
		n++
	}
	if n < 2 {
		t.Fatalf("report has %d parts, want at least 2", n)
	}
}
