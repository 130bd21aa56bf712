package outbound

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// ndrCase is one report scenario: an envelope, a request, and what the
// report must say when parsed back.
type ndrCase struct {
	name      string
	kind      ReportKind
	rcpts     []int
	edit      func(e *queue.Envelope)
	body      string
	maxReturn int64
	retry     time.Time

	want       []DSNRecipient
	wantEnvID  string
	wantReturn ReturnContent
	// wantTypes are the media types of the report's parts, in order.
	wantTypes []string
	// wantText are strings the human-readable part must contain.
	wantText []string
}

var (
	ndrLastAttempt = ndrNow.Add(-2*time.Hour + time.Minute)
	ndrRetryUntil  = ndrNow.Add(5 * 24 * time.Hour)
	ndrBob         = DSNRecipient{
		FinalRecipient: "bob@example.net", Action: ReportFailed, Status: "5.1.1",
		RemoteMTA:       "mx1.example.net",
		DiagnosticCode:  "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
		LastAttemptDate: ndrLastAttempt,
	}
	ndrCarol = DSNRecipient{
		FinalRecipient: "carol@example.net", Action: ReportFailed, Status: "5.0.0",
		RemoteMTA: "mx1.example.net",
		DiagnosticCode: "552 Requested mail action aborted: exceeded storage allocation. " +
			"The mailbox of this user has been over its quota for more than thirty days and cannot accept any more mail until the user deletes some of it; " +
			"please contact the user by other means.",
		LastAttemptDate: ndrLastAttempt,
	}
	ndrTypesHeaders = []string{"text/plain", ctDeliveryStatus, ctHeaders}
)

var ndrCases = []ndrCase{
	{
		name: "failed-550", kind: ReportFailed, rcpts: []int{0}, body: ndrOriginal,
		want: []DSNRecipient{ndrBob}, wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"<bob@example.net>", "The server mx1.example.net [192.0.2.25] answered:", "550 5.1.1", "will not be retried"},
	},
	{
		// Two of three recipients failed; the report names those two only.
		name: "failed-partial", kind: ReportFailed, rcpts: []int{1, 0}, body: ndrOriginal,
		want: []DSNRecipient{ndrBob, ndrCarol}, wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"<bob@example.net>", "<carol@example.net>", "552 Requested mail action aborted"},
	},
	{
		// The queue lifetime ran out: a synthesized 4.4.7, no remote reply.
		name: "expired-447", kind: ReportFailed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) {
			e.Recipients[0].RemoteMTA = ""
			e.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.4.7", Lines: []string{"Delivery time expired: the message stayed in the queue for 5 days"}}
		},
		want: []DSNRecipient{{
			FinalRecipient: "bob@example.net", Action: ReportFailed, Status: "4.4.7", LastAttemptDate: ndrLastAttempt,
		}},
		wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"Reason:", "451 4.4.7 Delivery time expired"},
	},
	{
		name: "delayed", kind: ReportDelayed, rcpts: []int{0}, body: ndrOriginal, retry: ndrRetryUntil,
		edit: func(e *queue.Envelope) {
			e.Recipients[0].Status = queue.StatusPending
			e.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.7.1", Lines: []string{"Greylisted, please try again later"}}
		},
		want: []DSNRecipient{{
			FinalRecipient: "bob@example.net", Action: ReportDelayed, Status: "4.7.1",
			RemoteMTA: "mx1.example.net", DiagnosticCode: "451 4.7.1 Greylisted, please try again later",
			LastAttemptDate: ndrLastAttempt, WillRetryUntil: ndrRetryUntil,
		}},
		wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"will retry until Fri, 04 Dec 2026 12:00:00 +0000", "do not need to send it again"},
	},
	{
		// The next hop does not speak DSN: edgerelay reports "relayed"
		// for NOTIFY=SUCCESS (RFC 3461 §6.2.2).
		name: "relayed", kind: ReportRelayed, rcpts: []int{2}, body: ndrOriginal,
		edit: func(e *queue.Envelope) {
			e.Recipients[2].Status = queue.StatusRelayed
			e.Recipients[2].Notify = []string{"SUCCESS", "FAILURE"}
		},
		want: []DSNRecipient{{
			FinalRecipient: "dave@example.com", Action: ReportRelayed, Status: "2.0.0",
			RemoteMTA: "mx.example.com", DiagnosticCode: "250 2.0.0 Ok: queued as 4Xyz", LastAttemptDate: ndrLastAttempt,
		}},
		wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"do not send delivery notifications", "<dave@example.com>"},
	},
	{
		name: "ret-full", kind: ReportFailed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) { e.RET = "FULL" },
		want: []DSNRecipient{ndrBob}, wantReturn: ReturnFull,
		wantTypes: []string{"text/plain", ctDeliveryStatus, ctMessage},
		wantText:  []string{"Your message is attached."},
	},
	{
		// RET=FULL, but the message is larger than MaxReturnBytes: only
		// its header section is returned, and the text says so.
		name: "ret-full-too-big", kind: ReportFailed, rcpts: []int{0}, maxReturn: 512,
		body: ndrOriginal + strings.Repeat("0123456789 the numbers are in, again and again.\r\n", 40),
		edit: func(e *queue.Envelope) { e.RET = "FULL" },
		want: []DSNRecipient{ndrBob}, wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"larger than 512 bytes, so only its header section"},
	},
	{
		name: "ret-hdrs", kind: ReportFailed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) { e.RET = "HDRS" },
		want: []DSNRecipient{ndrBob}, wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
	},
	{
		name: "orcpt-envid", kind: ReportFailed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) {
			e.EnvID = "QQ314159"
			e.Recipients[0].ORCPT = "rfc822;Bob.Original@example.net"
		},
		want: []DSNRecipient{func() DSNRecipient {
			r := ndrBob
			r.OriginalRecipient = "rfc822;Bob.Original@example.net"
			return r
		}()},
		wantEnvID: "QQ314159", wantReturn: ReturnHeaders, wantTypes: ndrTypesHeaders,
	},
	{
		// SMTPUTF8 submission (RFC 6531): the report uses the global types
		// of RFC 6533 and carries the UTF-8 addresses as they are.
		name: "smtputf8", kind: ReportFailed, rcpts: []int{0},
		body: "From: Jörg <jörg@bücher.example>\r\nTo: 用户@例子.广告\r\nSubject: Grüße\r\nMessage-ID: <utf8-1@bücher.example>\r\n\r\nHallo.\r\n",
		edit: func(e *queue.Envelope) {
			e.SMTPUTF8 = true
			e.From = "jörg@bücher.example"
			e.MessageID = ""
			e.Recipients[0].Addr = "用户@例子.广告"
			e.Recipients[0].ORCPT = "utf-8;用户@例子.广告"
			e.Recipients[0].Reply.Lines = []string{"<用户@例子.广告>: mailbox unavailable"}
		},
		want: []DSNRecipient{{
			OriginalRecipient: "utf-8;用户@例子.广告",
			FinalRecipient:    "用户@例子.广告", Action: ReportFailed, Status: "5.1.1", RemoteMTA: "mx1.example.net",
			DiagnosticCode: "550 5.1.1 <用户@例子.广告>: mailbox unavailable", LastAttemptDate: ndrLastAttempt,
		}},
		wantReturn: ReturnHeaders,
		wantTypes:  []string{"text/plain", ctGlobalDeliveryStatus, ctGlobalHeaders},
		wantText:   []string{"<用户@例子.广告>"},
	},
}

// runNDRCase produces the case's report with a Reporter on the fixed clock.
func runNDRCase(t *testing.T, tc ndrCase) (key string, msg []byte, env *queue.Envelope) {
	t.Helper()
	env = ndrEnvelope()
	if tc.edit != nil {
		tc.edit(env)
	}
	r, st := ndrReporter(t, nil, tc.maxReturn)
	err := r.Report(context.Background(), ReportRequest{
		Message:        &queue.Message{Envelope: env},
		Kind:           tc.kind,
		Recipients:     tc.rcpts,
		Body:           ndrBody(tc.body),
		WillRetryUntil: tc.retry,
	})
	if err != nil {
		t.Fatal(err)
	}
	key, msg = st.only(t)
	return key, msg, env
}

func TestReportGolden(t *testing.T) {
	for _, tc := range ndrCases {
		t.Run(tc.name, func(t *testing.T) {
			_, msg, _ := runNDRCase(t, tc)
			checkGolden(t, tc.name, msg)
		})
	}
}

// TestReportParses reads every report back twice: generically, with
// net/mail and mime/multipart, and with ParseDSN, whose model must match
// what the envelope said.
func TestReportParses(t *testing.T) {
	for _, tc := range ndrCases {
		t.Run(tc.name, func(t *testing.T) {
			key, msg, env := runNDRCase(t, tc)

			// Generic MIME structure.
			m, err := mail.ReadMessage(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
			if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
				t.Fatalf("Content-Type = %q (%v)", m.Header.Get("Content-Type"), err)
			}
			for field, want := range map[string]string{
				"From":           "Mail Delivery System <MAILER-DAEMON@relay.example.org>",
				"To":             "<" + env.From + ">",
				"Subject":        subjects[tc.kind],
				"Message-Id":     "<" + key + "@relay.example.org>",
				"Auto-Submitted": "auto-replied",
				"Mime-Version":   "1.0",
			} {
				if got := m.Header.Get(field); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			origID := "<q4-report-7@example.org>"
			if env.SMTPUTF8 {
				origID = "<utf8-1@bücher.example>" // from the body's header, as the envelope has none
			}
			if got := m.Header.Get("In-Reply-To"); got != origID {
				t.Errorf("In-Reply-To = %q, want %q", got, origID)
			}
			if got := m.Header.Get("References"); got != origID {
				t.Errorf("References = %q, want %q", got, origID)
			}
			mr := multipart.NewReader(m.Body, params["boundary"])
			var types []string
			var text string
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
				types = append(types, ct)
				b, err := io.ReadAll(p)
				if err != nil {
					t.Fatal(err)
				}
				if len(types) == 1 {
					text = string(b)
				}
			}
			if !reflect.DeepEqual(types, tc.wantTypes) {
				t.Errorf("part types = %q, want %q", types, tc.wantTypes)
			}
			for _, s := range tc.wantText {
				if !strings.Contains(strings.Join(strings.Fields(text), " "), s) {
					t.Errorf("text lacks %q:\n%s", s, text)
				}
			}

			// The model, read back with ParseDSN.
			d, err := ParseDSN(bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if d.ReportingMTA != "relay.example.org" || d.EnvelopeID != tc.wantEnvID || !d.ArrivalDate.Equal(env.Arrival) {
				t.Errorf("per-message fields: Reporting-MTA %q, Original-Envelope-Id %q, Arrival-Date %v", d.ReportingMTA, d.EnvelopeID, d.ArrivalDate)
			}
			if d.SMTPUTF8 != env.SMTPUTF8 {
				t.Errorf("SMTPUTF8 = %v", d.SMTPUTF8)
			}
			if len(d.Recipients) != len(tc.want) {
				t.Fatalf("%d recipients, want %d", len(d.Recipients), len(tc.want))
			}
			for i, got := range d.Recipients {
				want := tc.want[i]
				if !got.LastAttemptDate.Equal(want.LastAttemptDate) || !got.WillRetryUntil.Equal(want.WillRetryUntil) {
					t.Errorf("recipient %d dates: got %v / %v, want %v / %v", i, got.LastAttemptDate, got.WillRetryUntil, want.LastAttemptDate, want.WillRetryUntil)
				}
				got.LastAttemptDate, got.WillRetryUntil, want.LastAttemptDate, want.WillRetryUntil = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				if got != want {
					t.Errorf("recipient %d:\n got  %+v\n want %+v", i, got, want)
				}
			}
			if d.Return != tc.wantReturn {
				t.Errorf("Return = %v, want %v", d.Return, tc.wantReturn)
			}
			switch d.Return {
			case ReturnFull:
				equalBytes(t, "returned message", d.Original, []byte(tc.body))
			case ReturnHeaders:
				hdr := tc.body[:strings.Index(tc.body, "\r\n\r\n")+2]
				equalBytes(t, "returned headers", d.Original, []byte(hdr))
			}
		})
	}
}

// TestDSNComposeParse composes a model directly and parses it back to the
// same model.
func TestDSNComposeParse(t *testing.T) {
	long := "451 4.3.0 " + strings.Repeat("temporary-failure-with-a-long-word ", 60) + strings.Repeat("x", 1500)
	d := &DSN{
		From: "MAILER-DAEMON@relay.example.org", To: `"john doe"@example.org`,
		Subject: "Delayed Mail (still being retried)", Date: ndrNow,
		MessageID: "k1@relay.example.org", InReplyTo: "orig@example.org",
		Text:         "Line one.\r\nLine two.\r\n",
		ReportingMTA: "relay.example.org", EnvelopeID: "ENV-1", ArrivalDate: ndrNow.Add(-time.Hour),
		Recipients: []DSNRecipient{
			{OriginalRecipient: "rfc822;a@example.net", FinalRecipient: "a@example.net", Action: ReportDelayed, Status: "4.3.0",
				RemoteMTA: "mx.example.net", DiagnosticCode: long, LastAttemptDate: ndrNow, WillRetryUntil: ndrNow.Add(time.Hour)},
			{FinalRecipient: "b@example.net", Action: ReportDelayed, Status: "4.0.0"},
		},
		Return:   ReturnHeaders,
		Original: []byte("Subject: x\r\nFrom: y@example.org\r\n"),
		Boundary: "b1",
	}
	var buf bytes.Buffer
	if err := d.Compose(&buf); err != nil {
		t.Fatal(err)
	}
	checkLines(t, buf.Bytes())
	got, err := ParseDSN(&buf)
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
		d := &DSN{SMTPUTF8: tt.global}
		if got := d.typedAddress(tt.v); got != tt.want {
			t.Errorf("typedAddress(%q, global=%v) = %q, want %q", tt.v, tt.global, got, tt.want)
		}
	}
}

func TestStatusCode(t *testing.T) {
	tests := []struct {
		kind ReportKind
		rep  *queue.Reply
		want string
	}{
		{ReportFailed, &queue.Reply{Code: 550, Enhanced: "5.1.1"}, "5.1.1"},
		{ReportFailed, &queue.Reply{Code: 550}, "5.0.0"},
		{ReportFailed, &queue.Reply{Code: 554, Enhanced: "5.1"}, "5.0.0"},
		{ReportFailed, &queue.Reply{Code: 550, Enhanced: "9.9.9"}, "5.0.0"},
		{ReportFailed, &queue.Reply{Code: 451, Enhanced: "4.4.7"}, "4.4.7"},
		{ReportDelayed, &queue.Reply{Code: 421}, "4.0.0"},
		{ReportDelayed, nil, "4.0.0"},
		{ReportFailed, nil, "5.0.0"},
		{ReportFailed, &queue.Reply{Code: 0}, "5.0.0"},
		{ReportRelayed, &queue.Reply{Code: 250, Enhanced: "2.6.0"}, "2.6.0"},
		{ReportDelivered, nil, "2.0.0"},
	}
	for _, tt := range tests {
		if got := statusCode(tt.kind, tt.rep); got != tt.want {
			t.Errorf("statusCode(%s, %+v) = %q, want %q", tt.kind, tt.rep, got, tt.want)
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
			o, err := readOriginal(r, tt.full, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if o.ret != tt.ret || string(o.content) != tt.content || o.tooBig != tt.tooBig || o.headersCut != tt.cut || o.messageID != tt.messgeID {
				t.Errorf("got ret=%v content=%q tooBig=%v cut=%v id=%q", o.ret, o.content, o.tooBig, o.headersCut, o.messageID)
			}
		})
	}
}

// failReader fails every read: a reader must not get to it.
type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func FuzzParseDSN(f *testing.F) {
	for _, tc := range ndrCases {
		env := ndrEnvelope()
		if tc.edit != nil {
			tc.edit(env)
		}
		st := &ndrMemStore{}
		r, _ := NewReporter(ReporterOptions{Hostname: "relay.example.org", Store: st, Now: func() time.Time { return ndrNow }})
		if err := r.Report(context.Background(), ReportRequest{Message: &queue.Message{Envelope: env}, Kind: tc.kind, Recipients: tc.rcpts, Body: ndrBody(tc.body), WillRetryUntil: tc.retry}); err == nil && len(st.keys) == 1 {
			f.Add(st.msgs[st.keys[0]])
		}
	}
	// Invariants: ParseDSN returns within 2 s on any input; what it accepts
	// has recipients; and what it read, composed again, is read back by
	// ParseDSN and the standard library with the same recipients and
	// statuses (a report read from the network can be re-sent).
	f.Fuzz(func(t *testing.T, msg []byte) {
		var d *DSN
		var err error
		returnsWithin(t, 2*time.Second, "ParseDSN", func() { d, err = ParseDSN(bytes.NewReader(msg)) })
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
		returnsWithin(t, 2*time.Second, "Compose", func() { err = d.Compose(&b) })
		if err != nil {
			t.Fatalf("Compose of a parsed report: %v", err)
		}
		checkReportReadable(t, b.Bytes(), d.SMTPUTF8)
		d2, err := ParseDSN(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("ParseDSN of a recomposed report: %v", err)
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
		d := &DSN{
			From: "MAILER-DAEMON@h.example", Date: ndrNow, ReportingMTA: "h.example", SMTPUTF8: tt.global,
			Recipients: []DSNRecipient{{FinalRecipient: "a@example.net", Action: ReportFailed, Status: "5.0.0"}},
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
	if err := (&DSN{ReportingMTA: "h"}).Compose(io.Discard); err == nil {
		t.Errorf("Compose without recipients succeeded")
	}
}
