package dsn

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/dsn/dsntest"
	"github.com/edgerelay/edgerelay/internal/testutil"
)

// TestDSNComposeParse composes a model directly and parses it back to the
// same model.
func TestDSNComposeParse(t *testing.T) {
	long := "451 4.3.0 " + strings.Repeat("temporary-failure-with-a-long-word ", 60) + strings.Repeat("x", 1500)
	d := &Report{
		From: "MAILER-DAEMON@relay.example.org", To: `"john doe"@example.org`,
		Subject: "Delayed Mail (still being retried)", Date: testNow,
		MessageID: "k1@relay.example.org", InReplyTo: "orig@example.org",
		Text:         "Line one.\r\nLine two.\r\n",
		ReportingMTA: "relay.example.org", EnvelopeID: "ENV-1", ArrivalDate: testNow.Add(-time.Hour),
		Recipients: []Recipient{
			{OriginalRecipient: "rfc822;a@example.net", FinalRecipient: "a@example.net", Action: Delayed, Status: "4.3.0",
				RemoteMTA: "mx.example.net", DiagnosticCode: long, LastAttemptDate: testNow, WillRetryUntil: testNow.Add(time.Hour)},
			{FinalRecipient: "b@example.net", Action: Delayed, Status: "4.0.0"},
		},
		Return:   ReturnHeaders,
		Original: []byte("Subject: x\r\nFrom: y@example.org\r\n"),
		Boundary: "b1",
	}
	var buf bytes.Buffer
	if err := d.Compose(&buf); err != nil {
		t.Fatal(err)
	}
	dsntest.CheckLines(t, buf.Bytes())
	got, err := Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// The 1500-character word cannot be folded at white space: Compose
	// breaks it with an inserted space, so its parsed form has one.
	if strings.ReplaceAll(got.Recipients[0].DiagnosticCode, " ", "") != strings.ReplaceAll(long, " ", "") ||
		!strings.HasPrefix(got.Recipients[0].DiagnosticCode, strings.TrimSuffix(long, strings.Repeat("x", 1500))) {
		t.Errorf("Diagnostic-Code did not survive folding:\n%s", got.Recipients[0].DiagnosticCode)
	}
	got.Recipients[0].DiagnosticCode = long
	for _, tm := range []*time.Time{&got.Date, &got.ArrivalDate, &got.Recipients[0].LastAttemptDate, &got.Recipients[0].WillRetryUntil, &got.Recipients[1].LastAttemptDate, &got.Recipients[1].WillRetryUntil} {
		if !tm.IsZero() {
			*tm = tm.UTC()
		}
	}
	if !reflect.DeepEqual(got, d) {
		t.Errorf("round trip:\n got  %+v\n want %+v", got, d)
	}
}

func TestFold(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"Short: value", "Short: value"},
		{"Diagnostic-Code: smtp; 550 5.1.1 " + strings.Repeat("word ", 14) + "end",
			"Diagnostic-Code: smtp; 550 5.1.1 word word word word word word word word word\r\n word word word word word end"},
	}
	for _, tt := range tests {
		if got := fold(tt.in); got != tt.want {
			t.Errorf("fold(%q) =\n%q\nwant\n%q", tt.in, got, tt.want)
		}
	}
	// Any input: lines at most 998, and unfolding restores the input
	// (apart from the breaks inserted into words longer than that).
	for _, in := range []string{strings.Repeat("a", 3000), "X: " + strings.Repeat("ab ", 700), "X: " + strings.Repeat("é", 1200)} {
		out := fold(in)
		for _, l := range strings.Split(out, "\r\n") {
			if len(l) > 998 {
				t.Errorf("fold left a line of %d characters", len(l))
			}
		}
		if un := strings.ReplaceAll(out, "\r\n", ""); strings.ReplaceAll(un, " ", "") != strings.ReplaceAll(in, " ", "") {
			t.Errorf("fold changed the text")
		}
		if !strings.Contains(in, "a") && strings.ContainsRune(out, '\uFFFD') {
			t.Errorf("fold split a UTF-8 sequence")
		}
	}
}

func TestTypedAddress(t *testing.T) {
	tests := []struct {
		v      string
		global bool
		want   string
	}{
		{"rfc822;bob@example.net", false, "rfc822; bob@example.net"},
		{"rfc822; bob@example.net", true, "rfc822; bob@example.net"},
		{"bob@example.net", false, "rfc822; bob@example.net"},
		{"rfc822;jörg@example.net", true, "utf-8; jörg@example.net"},
		{"rfc822;jörg@example.net", false, `utf-8; j\x{F6}rg@example.net`},
		{"utf-8;a+b=c@example.net", false, "utf-8; a+b=c@example.net"},
		{"utf-8;ä+b@example.net", false, `utf-8; \x{E4}+2Bb@example.net`},
		{"rfc822;bob@example.net\r\nX-Injected: 1", false, "rfc822; bob@example.netX-Injected: 1"},
	}
	for _, tt := range tests {
		d := &Report{SMTPUTF8: tt.global}
		if got := d.typedAddress(tt.v); got != tt.want {
			t.Errorf("typedAddress(%q, global=%v) = %q, want %q", tt.v, tt.global, got, tt.want)
		}
	}
}

func TestReadOriginal(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		full     bool
		limit    int64
		ret      ReturnContent
		content  string
		tooBig   bool
		cut      bool
		messgeID string
	}{
		{"headers", "A: 1\r\nMessage-ID: <m@h>\r\n\r\nbody\r\n", false, 100, ReturnHeaders, "A: 1\r\nMessage-ID: <m@h>\r\n", false, false, "m@h"},
		{"bare LF", "A: 1\nB: 2\n\nbody\n", false, 100, ReturnHeaders, "A: 1\r\nB: 2\r\n", false, false, ""},
		{"full", "A: 1\n\nbody\n", true, 100, ReturnFull, "A: 1\r\n\r\nbody\r\n", false, false, ""},
		{"full too big", "A: 1\r\n\r\n" + strings.Repeat("x", 200), true, 100, ReturnHeaders, "A: 1\r\n", true, false, ""},
		{"headers only message", "A: 1\r\nB: 2", false, 100, ReturnHeaders, "A: 1\r\nB: 2\r\n", false, false, ""},
		{"headers cut", "A: " + strings.Repeat("1", 50) + "\r\nB: " + strings.Repeat("2", 80) + "\r\n\r\nbody", false, 100, ReturnHeaders, "A: " + strings.Repeat("1", 50) + "\r\n", false, true, ""},
		{"no headers", "\r\nbody\r\n", false, 100, ReturnHeaders, "", false, false, ""},
		{"long header line", "A: " + strings.Repeat("z", 2500) + "\r\n\r\nbody", false, 10000, ReturnHeaders,
			"A: " + strings.Repeat("z", 995) + "\r\n " + strings.Repeat("z", 997) + "\r\n " + strings.Repeat("z", 508) + "\r\n", false, false, ""},
		{"full with long line", "A: 1\r\n\r\n" + strings.Repeat("y", 1000) + "\r\n", true, 10000, ReturnHeaders, "A: 1\r\n", false, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Past the limit the reader fails: readOriginal must not read
			// more than limit+1 bytes.
			var r io.Reader = strings.NewReader(tt.in)
			if int64(len(tt.in)) > tt.limit {
				r = io.MultiReader(r, failReader{})
			}
			o, err := ReadReturned(r, tt.full, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if o.Return != tt.ret || string(o.Content) != tt.content || o.TooBig != tt.tooBig || o.HeadersCut != tt.cut || o.MessageID != tt.messgeID {
				t.Errorf("got ret=%v content=%q tooBig=%v cut=%v id=%q", o.Return, o.Content, o.TooBig, o.HeadersCut, o.MessageID)
			}
		})
	}
}

// failReader fails every read: a reader must not get to it.
type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func FuzzParseDSN(f *testing.F) {
	// Seeds beside the corpus in testdata/fuzz/FuzzParseDSN: one composed
	// report for each combination of SMTPUTF8 and returned content.
	for _, global := range []bool{false, true} {
		for _, ret := range []ReturnContent{ReturnNone, ReturnHeaders, ReturnFull} {
			d := seedReport(global, ret)
			var b bytes.Buffer
			if err := d.Compose(&b); err == nil {
				f.Add(b.Bytes())
			}
		}
	}
	// Invariants: Parse returns within 2 s on any input; what it accepts
	// has recipients; and what it read, composed again, is read back by
	// Parse and the standard library with the same recipients and
	// statuses (a report read from the network can be re-sent).
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d *Report
		var err error
		testutil.ReturnsWithin(t, 2*time.Second, "Parse", func() { d, err = Parse(bytes.NewReader(msg)) })
		if err != nil {
			return
		}
		if len(d.Recipients) == 0 {
			t.Fatal("parsed a report without recipients")
		}
		if d.ReportingMTA == "" {
			return // Compose needs one
		}
		d.Boundary = "" // a fresh one, not found in the content
		var b bytes.Buffer
		testutil.ReturnsWithin(t, 2*time.Second, "Compose", func() { err = d.Compose(&b) })
		if err != nil {
			t.Fatalf("Compose of a parsed report: %v", err)
		}
		dsntest.CheckReadable(t, b.Bytes(), d.SMTPUTF8)
		d2, err := Parse(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("Parse of a recomposed report: %v", err)
		}
		if len(d2.Recipients) != len(d.Recipients) {
			t.Fatalf("recomposed report has %d recipients, want %d", len(d2.Recipients), len(d.Recipients))
		}
	})
}

// TestDSNMediaTypes: the part types for each combination of SMTPUTF8
// (RFC 6533 §6) and returned content.
func TestDSNMediaTypes(t *testing.T) {
	tests := []struct {
		global bool
		ret    ReturnContent
		want   []string
	}{
		{false, ReturnNone, []string{"text/plain", ctDeliveryStatus}},
		{false, ReturnHeaders, []string{"text/plain", ctDeliveryStatus, ctHeaders}},
		{false, ReturnFull, []string{"text/plain", ctDeliveryStatus, ctMessage}},
		{true, ReturnHeaders, []string{"text/plain", ctGlobalDeliveryStatus, ctGlobalHeaders}},
		{true, ReturnFull, []string{"text/plain", ctGlobalDeliveryStatus, ctGlobalMessage}},
	}
	for _, tt := range tests {
		d := &Report{
			From: "MAILER-DAEMON@h.example", Date: testNow, ReportingMTA: "h.example", SMTPUTF8: tt.global,
			Recipients: []Recipient{{FinalRecipient: "a@example.net", Action: Failed, Status: "5.0.0"}},
			Return:     tt.ret, Original: []byte("Subject: s\r\n\r\nbody\r\n"),
		}
		if tt.ret == ReturnHeaders {
			d.Original = []byte("Subject: s\r\n")
		}
		var b bytes.Buffer
		if err := d.Compose(&b); err != nil {
			t.Fatal(err)
		}
		m, _ := mail.ReadMessage(&b)
		_, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
		mr := multipart.NewReader(m.Body, params["boundary"])
		var types []string
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			types = append(types, ct)
		}
		if !reflect.DeepEqual(types, tt.want) {
			t.Errorf("global=%v ret=%v: types %q, want %q", tt.global, tt.ret, types, tt.want)
		}
	}
	if err := (&Report{ReportingMTA: "h"}).Compose(io.Discard); err == nil {
		t.Errorf("Compose without recipients succeeded")
	}
}

// FuzzFold: a folded field has no line of white space alone (readers take
// it for the end of the header section) and no line over maxLine.
func FuzzFold(f *testing.F) {
	f.Add("Diagnostic-Code: smtp; 999 \xc30\xc200 000 ")
	f.Add("X: " + strings.Repeat(" ", 2000) + "word")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.ContainsAny(s, "\r\n") {
			return // field values are single lines by then
		}
		for i, line := range strings.Split(fold(s), "\r\n") {
			if i > 0 && strings.Trim(line, " \t") == "" {
				t.Fatalf("line %d is white space alone in %q", i, fold(s))
			}
			if len(line) > maxLine {
				t.Fatalf("line %d is %d bytes long", i, len(line))
			}
		}
	})
}
