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

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// ndrCase is one report scenario: an envelope, a request, and what the
// report must say when parsed back.
type ndrCase struct {
	name      string
	kind      dsn.Action
	rcpts     []int
	edit      func(e *queue.Envelope)
	body      string
	maxReturn int64
	retry     time.Time

	want       []dsn.Recipient
	wantEnvID  string
	wantReturn dsn.ReturnContent
	// wantTypes are the media types of the report's parts, in order.
	wantTypes []string
	// wantText are strings the human-readable part must contain.
	wantText []string
}

var (
	ndrLastAttempt = ndrNow.Add(-2*time.Hour + time.Minute)
	ndrRetryUntil  = ndrNow.Add(5 * 24 * time.Hour)
	ndrBob         = dsn.Recipient{
		FinalRecipient: "bob@example.net", Action: dsn.Failed, Status: "5.1.1",
		RemoteMTA:       "mx1.example.net",
		DiagnosticCode:  "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
		LastAttemptDate: ndrLastAttempt,
	}
	ndrCarol = dsn.Recipient{
		FinalRecipient: "carol@example.net", Action: dsn.Failed, Status: "5.0.0",
		RemoteMTA: "mx1.example.net",
		DiagnosticCode: "552 Requested mail action aborted: exceeded storage allocation. " +
			"The mailbox of this user has been over its quota for more than thirty days and cannot accept any more mail until the user deletes some of it; " +
			"please contact the user by other means.",
		LastAttemptDate: ndrLastAttempt,
	}
	ndrTypesHeaders = []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
)

var ndrCases = []ndrCase{
	{
		name: "failed-550", kind: dsn.Failed, rcpts: []int{0}, body: ndrOriginal,
		want: []dsn.Recipient{ndrBob}, wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"<bob@example.net>", "The server mx1.example.net [192.0.2.25] answered:", "550 5.1.1", "will not be retried"},
	},
	{
		// Two of three recipients failed; the report names those two only.
		name: "failed-partial", kind: dsn.Failed, rcpts: []int{1, 0}, body: ndrOriginal,
		want: []dsn.Recipient{ndrBob, ndrCarol}, wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"<bob@example.net>", "<carol@example.net>", "552 Requested mail action aborted"},
	},
	{
		// The queue lifetime ran out: a synthesized 4.4.7, no remote reply.
		name: "expired-447", kind: dsn.Failed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) {
			e.Recipients[0].RemoteMTA = ""
			e.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.4.7", Lines: []string{"Delivery time expired: the message stayed in the queue for 5 days"}}
		},
		want: []dsn.Recipient{{
			FinalRecipient: "bob@example.net", Action: dsn.Failed, Status: "4.4.7", LastAttemptDate: ndrLastAttempt,
		}},
		wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"Reason:", "451 4.4.7 Delivery time expired"},
	},
	{
		name: "delayed", kind: dsn.Delayed, rcpts: []int{0}, body: ndrOriginal, retry: ndrRetryUntil,
		edit: func(e *queue.Envelope) {
			e.Recipients[0].Status = queue.StatusPending
			e.Recipients[0].Reply = &queue.Reply{Code: 451, Enhanced: "4.7.1", Lines: []string{"Greylisted, please try again later"}}
		},
		want: []dsn.Recipient{{
			FinalRecipient: "bob@example.net", Action: dsn.Delayed, Status: "4.7.1",
			RemoteMTA: "mx1.example.net", DiagnosticCode: "451 4.7.1 Greylisted, please try again later",
			LastAttemptDate: ndrLastAttempt, WillRetryUntil: ndrRetryUntil,
		}},
		wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"will retry until Fri, 04 Dec 2026 12:00:00 +0000", "do not need to send it again"},
	},
	{
		// The next hop does not speak DSN: edgerelay reports "relayed"
		// for NOTIFY=SUCCESS (RFC 3461 §6.2.2).
		name: "relayed", kind: dsn.Relayed, rcpts: []int{2}, body: ndrOriginal,
		edit: func(e *queue.Envelope) {
			e.Recipients[2].Status = queue.StatusRelayed
			e.Recipients[2].Notify = []string{"SUCCESS", "FAILURE"}
		},
		want: []dsn.Recipient{{
			FinalRecipient: "dave@example.com", Action: dsn.Relayed, Status: "2.0.0",
			RemoteMTA: "mx.example.com", DiagnosticCode: "250 2.0.0 Ok: queued as 4Xyz", LastAttemptDate: ndrLastAttempt,
		}},
		wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"do not send delivery notifications", "<dave@example.com>"},
	},
	{
		name: "ret-full", kind: dsn.Failed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) { e.RET = "FULL" },
		want: []dsn.Recipient{ndrBob}, wantReturn: dsn.ReturnFull,
		wantTypes: []string{"text/plain", "message/delivery-status", "message/rfc822"},
		wantText:  []string{"Your message is attached."},
	},
	{
		// RET=FULL, but the message is larger than MaxReturnBytes: only
		// its header section is returned, and the text says so.
		name: "ret-full-too-big", kind: dsn.Failed, rcpts: []int{0}, maxReturn: 512,
		body: ndrOriginal + strings.Repeat("0123456789 the numbers are in, again and again.\r\n", 40),
		edit: func(e *queue.Envelope) { e.RET = "FULL" },
		want: []dsn.Recipient{ndrBob}, wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
		wantText: []string{"larger than 512 bytes, so only its header section"},
	},
	{
		name: "ret-hdrs", kind: dsn.Failed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) { e.RET = "HDRS" },
		want: []dsn.Recipient{ndrBob}, wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
	},
	{
		name: "orcpt-envid", kind: dsn.Failed, rcpts: []int{0}, body: ndrOriginal,
		edit: func(e *queue.Envelope) {
			e.EnvID = "QQ314159"
			e.Recipients[0].ORCPT = "rfc822;Bob.Original@example.net"
		},
		want: []dsn.Recipient{func() dsn.Recipient {
			r := ndrBob
			r.OriginalRecipient = "rfc822;Bob.Original@example.net"
			return r
		}()},
		wantEnvID: "QQ314159", wantReturn: dsn.ReturnHeaders, wantTypes: ndrTypesHeaders,
	},
	{
		// SMTPUTF8 submission (RFC 6531): the report uses the global types
		// of RFC 6533 and carries the UTF-8 addresses as they are.
		name: "smtputf8", kind: dsn.Failed, rcpts: []int{0},
		body: "From: Jörg <jörg@bücher.example>\r\nTo: 用户@例子.广告\r\nSubject: Grüße\r\nMessage-ID: <utf8-1@bücher.example>\r\n\r\nHallo.\r\n",
		edit: func(e *queue.Envelope) {
			e.SMTPUTF8 = true
			e.From = "jörg@bücher.example"
			e.MessageID = ""
			e.Recipients[0].Addr = "用户@例子.广告"
			e.Recipients[0].ORCPT = "utf-8;用户@例子.广告"
			e.Recipients[0].Reply.Lines = []string{"<用户@例子.广告>: mailbox unavailable"}
		},
		want: []dsn.Recipient{{
			OriginalRecipient: "utf-8;用户@例子.广告",
			FinalRecipient:    "用户@例子.广告", Action: dsn.Failed, Status: "5.1.1", RemoteMTA: "mx1.example.net",
			DiagnosticCode: "550 5.1.1 <用户@例子.广告>: mailbox unavailable", LastAttemptDate: ndrLastAttempt,
		}},
		wantReturn: dsn.ReturnHeaders,
		wantTypes:  []string{"text/plain", "message/global-delivery-status", "message/global-headers"},
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
// net/mail and mime/multipart, and with dsn.Parse, whose model must match
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

			// The model, read back with dsn.Parse.
			d, err := dsn.Parse(bytes.NewReader(msg))
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
			case dsn.ReturnFull:
				equalBytes(t, "returned message", d.Original, []byte(tc.body))
			case dsn.ReturnHeaders:
				hdr := tc.body[:strings.Index(tc.body, "\r\n\r\n")+2]
				equalBytes(t, "returned headers", d.Original, []byte(hdr))
			}
		})
	}
}

func TestStatusCode(t *testing.T) {
	tests := []struct {
		kind dsn.Action
		rep  *queue.Reply
		want string
	}{
		{dsn.Failed, &queue.Reply{Code: 550, Enhanced: "5.1.1"}, "5.1.1"},
		{dsn.Failed, &queue.Reply{Code: 550}, "5.0.0"},
		{dsn.Failed, &queue.Reply{Code: 554, Enhanced: "5.1"}, "5.0.0"},
		{dsn.Failed, &queue.Reply{Code: 550, Enhanced: "9.9.9"}, "5.0.0"},
		{dsn.Failed, &queue.Reply{Code: 451, Enhanced: "4.4.7"}, "4.4.7"},
		{dsn.Delayed, &queue.Reply{Code: 421}, "4.0.0"},
		{dsn.Delayed, nil, "4.0.0"},
		{dsn.Failed, nil, "5.0.0"},
		{dsn.Failed, &queue.Reply{Code: 0}, "5.0.0"},
		{dsn.Relayed, &queue.Reply{Code: 250, Enhanced: "2.6.0"}, "2.6.0"},
		{dsn.Delivered, nil, "2.0.0"},
	}
	for _, tt := range tests {
		if got := statusCode(tt.kind, tt.rep); got != tt.want {
			t.Errorf("statusCode(%s, %+v) = %q, want %q", tt.kind, tt.rep, got, tt.want)
		}
	}
}
