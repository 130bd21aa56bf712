package outbound

import (
	"bytes"
	"flag"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/dsn/dsntest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/ndr/*.golden from the current output")

// Golden files hold a report with LF line endings and these placeholders:
//
//	{{boundary}}  the report's MIME boundary (random per report)
//	{{date}}      any RFC 5322 date-time
//	{{msgid}}     any Message-ID between angle brackets
//	{{*}}         any run of characters within one line
var goldenToken = regexp.MustCompile(`\{\{(boundary|date|msgid|\*)\}\}`)

var goldenPatterns = map[string]string{
	"date":  `[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}`,
	"msgid": `<[^<>\s]+@[^<>\s]+>`,
	"*":     `[^\n]*`,
}

// checkGolden compares a composed report with testdata/ndr/<name>.golden,
// line by line, after checking its line structure (CRLF only, lines of at
// most 998 characters).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	dsntest.CheckLines(t, got)
	text := strings.ReplaceAll(string(got), "\r\n", "\n")
	if b := reportBoundary(t, got); b != "" {
		text = strings.ReplaceAll(text, b, "{{boundary}}")
	}
	path := filepath.Join("testdata", "ndr", name+".golden")
	if *updateGolden {
		// The report's own Date (in its header section) depends on the
		// clock: keep it a pattern.
		out := text
		if i := strings.Index(out, "\n\n"); i > 0 {
			out = regexp.MustCompile(`(?m)^Date: .*$`).ReplaceAllLiteralString(out[:i], "Date: {{date}}") + out[i:]
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	if err := matchGolden(text, string(want)); err != "" {
		t.Errorf("%s: %s\n--- got:\n%s", path, err, text)
	}
}

// matchGolden returns "" when text matches the golden pattern, or a
// description of the first difference.
func matchGolden(text, golden string) string {
	got := strings.Split(text, "\n")
	want := strings.Split(golden, "\n")
	for i := 0; i < len(got) || i < len(want); i++ {
		switch {
		case i >= len(got):
			return "missing line " + strconv.Itoa(i+1) + ": " + want[i]
		case i >= len(want):
			return "extra line " + strconv.Itoa(i+1) + ": " + got[i]
		}
		if !goldenLine(want[i]).MatchString(got[i]) {
			return "line " + strconv.Itoa(i+1) + ":\n  got:  " + got[i] + "\n  want: " + want[i]
		}
	}
	return ""
}

func goldenLine(pat string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString("^")
	last := 0
	for _, m := range goldenToken.FindAllStringSubmatchIndex(pat, -1) {
		re.WriteString(regexp.QuoteMeta(pat[last:m[0]]))
		tok := pat[m[2]:m[3]]
		if tok == "boundary" {
			re.WriteString(regexp.QuoteMeta("{{boundary}}"))
		} else {
			re.WriteString(goldenPatterns[tok])
		}
		last = m[1]
	}
	re.WriteString(regexp.QuoteMeta(pat[last:]) + "$")
	return regexp.MustCompile(re.String())
}

// reportBoundary returns the boundary of a multipart message.
func reportBoundary(t *testing.T, msg []byte) string {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("report does not parse: %v", err)
	}
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("report Content-Type: %v", err)
	}
	return params["boundary"]
}

func TestMatchGolden(t *testing.T) {
	tests := []struct {
		text, golden string
		ok           bool
	}{
		{"a\nb", "a\nb", true},
		{"a\nb", "a\nc", false},
		{"a", "a\nb", false},
		{"a\nb", "a", false},
		{"Date: Sun, 29 Nov 2026 12:00:00 +0000", "Date: {{date}}", true},
		{"Date: yesterday", "Date: {{date}}", false},
		{"Message-ID: <x.y@h>", "Message-ID: {{msgid}}", true},
		{"x {{boundary}} y", "x {{boundary}} y", true},
		{"x (a.b) y", "x {{*}} y", true},
		{"x (a.b) z", "x {{*}} y", false},
		{"a.b", "a*b", false}, // literal text is not a pattern
	}
	for _, tt := range tests {
		if got := matchGolden(tt.text, tt.golden) == ""; got != tt.ok {
			t.Errorf("matchGolden(%q, %q) = %v, want %v", tt.text, tt.golden, got, tt.ok)
		}
	}
}
