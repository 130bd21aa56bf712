// Package dsntest checks composed reports with the standard library alone,
// for the tests of dsn and of outbound's reporter. Test support only:
// production code never imports it. It imports nothing of ours, so dsn's
// own (internal) tests can use it.
package dsntest

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"testing"
	"unicode/utf8"
)

// CheckLines fails unless every line of msg ends in CRLF, no CR or LF
// stands alone, and no line is longer than 998 characters (RFC 5322 §2.1.1).
func CheckLines(t testing.TB, msg []byte) {
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

// CheckReadable checks a composed report: its lines (CheckLines), its header
// by net/mail, every part by mime/multipart (decoded). The report's own
// header and its first two parts are valid UTF-8, and ASCII unless the
// report is a global (SMTPUTF8) one; the returned content is the sender's
// own bytes, carried unchanged.
func CheckReadable(t testing.TB, msg []byte, global bool) {
	t.Helper()
	CheckLines(t, msg)
	if hdr, _, _ := bytes.Cut(msg, []byte("\r\n\r\n")); !utf8.Valid(hdr) || (!global && !isASCII(hdr)) {
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
		if n < 2 && (!utf8.Valid(body) || (!global && n == 1 && !isASCII(body))) {
			t.Fatalf("part %d is not valid (UTF-8, ASCII for delivery-status): %q", n+1, Trunc(string(body), 300))
		}
		n++
	}
	if n < 2 {
		t.Fatalf("report has %d parts, want at least 2", n)
	}
}

// Trunc shortens s to n bytes for a failure message.
func Trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
