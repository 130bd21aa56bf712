package outbound

import (
	"bytes"
	"context"
	"errors"
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

// FuzzReply drives remote reply bytes (code, enhanced code, text with
// invalid UTF-8, NULs, CR/LF, any length) through what the worker does with
// them: classification, recording onto a recipient, and a report about
// that recipient (delivery-status and global-delivery-status, RET=FULL and
// HDRS, with a fuzzed original message). Invariants (TESTING.md §1, §3):
//   - each case finishes within 2 s (a loop over remote bytes that does not
//     progress is found here);
//   - the recorded reply is valid UTF-8, without control characters, at most
//     maxReplyText bytes of text, its enhanced code valid or empty;
//   - the report's lines are CRLF-terminated and at most 998 bytes, it is
//     valid UTF-8 when it is a global report, and it is read back by
//     dsn.Parse and by net/mail + mime/multipart;
//   - the parsed recipient's Status and Diagnostic-Code match what was
//     recorded.
func FuzzReply(f *testing.F) {
	f.Add(550, "5.1.1", []byte("user unknown"), []byte(ndrOriginal), uint8(0))
	f.Add(550, "5.1.1", []byte(invalidRun), []byte(ndrOriginal), uint8(1)) // the case
	f.Add(451, "4.7.1", []byte("try\r\nagain\x00later\n\n"), []byte("Subject: x\n\nbody"), uint8(2|4))
	f.Add(250, "2.0.0", []byte("ok\xff\xfe queued \uFFFE"), []byte(strings.Repeat("A", 3000)+"\r\n\r\n"), uint8(8|1))
	f.Add(421, "", []byte(strings.Repeat("x ", 600)), []byte("From: a@b\r\n\r\n\x80\x80"), uint8(16|2))
	f.Add(999, "9.9.9", []byte("\r\n.\r\n--boundary\r\nX-Injected: 1"), []byte{}, uint8(255))
	f.Add(-5, "5.1234.1", []byte("é"), []byte("Subject: \xc3\r\n"), uint8(32|1))

	w, err := New(Options{Queue: nopQueue{}, Hostname: "relay.example.org"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, code int, enh string, text, orig []byte, flags uint8) {
		if len(text) > 64<<10 || len(orig) > 64<<10 || len(enh) > 64 {
			return // what go-smtp's client can hand over is bounded too
		}
		smtputf8, full := flags&1 != 0, flags&2 != 0
		var msg []byte
		var env *queue.Envelope
		var kind dsn.Action
		var reportErr error
		testutil.ReturnsWithin(t, 2*time.Second, "classify, record and report", func() {
			env, kind, msg, reportErr = fuzzReplyCase(w, code, enh, text, orig, flags, smtputf8, full)
		})
		rc := &env.Recipients[0]
		checkRecordedReply(t, rc.Reply)
		if rc.RemoteMTA != "" && (!utf8.ValidString(rc.RemoteMTA) || strings.ContainsFunc(rc.RemoteMTA, unsafeRune)) {
			t.Fatalf("RemoteMTA %q not made safe", rc.RemoteMTA)
		}
		if kind == "" {
			return // a pending recipient without a delay report
		}
		if reportErr != nil {
			t.Fatalf("report: %v", reportErr)
		}
		dsntest.CheckReadable(t, msg, smtputf8)

		d, err := dsn.Parse(bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("dsn.Parse: %v\n%q", err, dsntest.Trunc(string(msg), 2000))
		}
		if len(d.Recipients) != 1 {
			t.Fatalf("%d recipients parsed, want 1", len(d.Recipients))
		}
		got := d.Recipients[0]
		if want := statusCode(kind, rc.Reply); got.Status != want {
			t.Errorf("Status = %q, want %q", got.Status, want)
		}
		if rc.Reply.Code != 0 && rc.RemoteMTA != "" {
			want := dsn.Clean(rc.Reply.String())
			if !smtputf8 {
				want = dsn.ASCIIOnly(want)
			}
			if want = strings.TrimSpace(want); got.DiagnosticCode != want {
				t.Errorf("Diagnostic-Code = %q, want %q", got.DiagnosticCode, want)
			}
		}
		if d.SMTPUTF8 != smtputf8 {
			t.Errorf("parsed SMTPUTF8 %v, want %v", d.SMTPUTF8, smtputf8)
		}
		if full && kind == dsn.Failed && d.Return != dsn.ReturnFull && d.Return != dsn.ReturnHeaders {
			t.Errorf("RET=FULL report returns %v", d.Return)
		}
	})
}

// fuzzReplyCase is one FuzzReply case: the reply through classify (from
// go-smtp's client error, or from a reply text as read before the client
// takes over), recorded by the worker, then reported.
func fuzzReplyCase(w *Worker, code int, enh string, text, orig []byte, flags uint8, smtputf8, full bool) (*queue.Envelope, dsn.Action, []byte, error) {
	var err error
	if flags&4 != 0 {
		err = smtpErrorFromText(code, enh+" "+string(text))
	} else {
		se := &smtp.SMTPError{Code: code, Message: string(text), EnhancedCode: smtp.NoEnhancedCode}
		parts := strings.SplitN(enh, ".", 3)
		if len(parts) == 3 {
			for i, p := range parts {
				n := 0
				for _, c := range p {
					n = n*10 + int(c-'0')
				}
				se.EnhancedCode[i] = n
			}
		}
		err = se
	}
	if flags&8 != 0 {
		err = errors.Join(errors.New("wrapped"), err)
	}
	remote := ""
	if flags&16 == 0 {
		remote = "mx.example.net [192.0.2.1]" + string(text[:min(len(text), 40)])
	}
	env := &queue.Envelope{
		ID: ndrQueueID, From: "alice@example.org", Arrival: ndrNow.Add(-time.Hour), SMTPUTF8: smtputf8,
		Recipients: []queue.Recipient{{Addr: "bob@example.net", Status: queue.StatusPending,
			Notify: []string{queue.NotifySuccess, queue.NotifyFailure, queue.NotifyDelay}}},
	}
	if smtputf8 {
		env.Recipients[0].Addr = "bøb@bücher.example"
	}
	env.RET = "HDRS"
	if full {
		env.RET = "FULL"
	}
	v := classify(err)
	res := resultOf(v, remote)
	if flags&32 != 0 && res.status == queue.StatusPending {
		res.status = queue.StatusRelayed // as a 250 to the final dot is recorded
	}
	w.apply(env, []int{0}, map[int]result{0: res})

	var kind dsn.Action
	switch env.Recipients[0].Status {
	case queue.StatusFailed:
		kind = dsn.Failed
	case queue.StatusRelayed:
		kind = dsn.Relayed
	case queue.StatusPending:
		if flags&64 == 0 {
			return env, "", nil, nil
		}
		kind = dsn.Delayed
	}
	st := &ndrMemStore{}
	r, rerr := NewReporter(ReporterOptions{Hostname: "relay.example.org", Store: st, MaxReturnBytes: 4096,
		Now: func() time.Time { return ndrNow }})
	if rerr != nil {
		return env, kind, nil, rerr
	}
	rerr = r.Report(context.Background(), ReportRequest{
		Message: &queue.Message{Envelope: env}, Kind: kind, Recipients: []int{0},
		Body: ndrBody(string(orig)), WillRetryUntil: ndrNow.Add(time.Hour),
	})
	if rerr != nil || len(st.keys) != 1 {
		if rerr == nil {
			rerr = errors.New("no report stored")
		}
		return env, kind, nil, rerr
	}
	return env, kind, st.msgs[st.keys[0]], nil
}
