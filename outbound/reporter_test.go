package outbound

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/dsn/dsntest"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

func TestNewReporterOptions(t *testing.T) {
	st := &ndrMemStore{}
	tests := []struct {
		name string
		o    ReporterOptions
		ok   bool
	}{
		{"ok", ReporterOptions{Hostname: "relay.example.org", Store: st}, true},
		{"no hostname", ReporterOptions{Store: st}, false},
		{"hostname with space", ReporterOptions{Hostname: "relay example", Store: st}, false},
		{"no store", ReporterOptions{Hostname: "relay.example.org"}, false},
		{"bad from", ReporterOptions{Hostname: "relay.example.org", Store: st, From: "<x@y>"}, false},
		{"from without domain", ReporterOptions{Hostname: "relay.example.org", Store: st, From: "postmaster"}, false},
	}
	for _, tt := range tests {
		r, err := NewReporter(tt.o)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if tt.ok && (r.o.From != "MAILER-DAEMON@relay.example.org" || r.o.MaxReturnBytes != DefaultMaxReturnBytes) {
			t.Errorf("%s: defaults not applied: %+v", tt.name, r.o)
		}
	}
}

// TestReportNotify: only recipients whose NOTIFY asks for the report's
// kind are reported (RFC 3461 §4.1); none left means no report at all.
func TestReportNotify(t *testing.T) {
	tests := []struct {
		name   string
		notify []string
		kind   dsn.Action
		want   bool
	}{
		{"default failure", nil, dsn.Failed, true},
		{"default delay", nil, dsn.Delayed, true},
		{"default success", nil, dsn.Relayed, false},
		{"never", []string{"NEVER"}, dsn.Failed, false},
		{"never delay", []string{"NEVER"}, dsn.Delayed, false},
		{"success only, failed", []string{"SUCCESS"}, dsn.Failed, false},
		{"success, relayed", []string{"SUCCESS"}, dsn.Relayed, true},
		{"success, delivered", []string{"success"}, dsn.Delivered, true},
		{"failure only, delayed", []string{"FAILURE"}, dsn.Delayed, false},
		{"delay", []string{"DELAY", "FAILURE"}, dsn.Delayed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &ndrQueue{}
			r, st := ndrReporter(t, q, 0)
			env := ndrEnvelope()
			env.Recipients[0].Notify = tt.notify
			err := r.Report(context.Background(), ReportRequest{
				Message: &queue.Message{Envelope: env}, Kind: tt.kind, Recipients: []int{0}, Body: ndrBody(ndrOriginal),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(st.keys) == 1; got != tt.want {
				t.Errorf("stored %d reports, want a report: %v", len(st.keys), tt.want)
			}
			if got := len(q.envs) == 1; got != tt.want {
				t.Errorf("queued %d reports, want a report: %v", len(q.envs), tt.want)
			}
		})
	}
}

// TestReportPartialNotify: of two failed recipients only the one that
// wants failure reports is named.
func TestReportPartialNotify(t *testing.T) {
	r, st := ndrReporter(t, nil, 0)
	env := ndrEnvelope()
	env.Recipients[1].Notify = []string{"NEVER"}
	if err := r.Report(context.Background(), ReportRequest{
		Message: &queue.Message{Envelope: env}, Kind: dsn.Failed, Recipients: []int{0, 1}, Body: ndrBody(ndrOriginal),
	}); err != nil {
		t.Fatal(err)
	}
	_, msg := st.only(t)
	d, err := dsn.Parse(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Recipients) != 1 || d.Recipients[0].FinalRecipient != "bob@example.net" {
		t.Errorf("recipients = %+v", d.Recipients)
	}
	if strings.Contains(d.Text, "<carol@example.net>") {
		t.Errorf("the report names carol, whose NOTIFY is NEVER")
	}
}

// TestReportBounceOfBounce: a report about a message whose sender is <>
// (or that is itself a report) is stored and never queued.
func TestReportBounceOfBounce(t *testing.T) {
	for _, edit := range []func(*queue.Envelope){
		func(e *queue.Envelope) { e.From = "" },
		func(e *queue.Envelope) { e.From, e.Bounce = "", true },
		func(e *queue.Envelope) { e.Bounce = true }, // From set by mistake: still a report
	} {
		q := &ndrQueue{}
		r, st := ndrReporter(t, q, 0)
		env := ndrEnvelope()
		edit(env)
		if err := r.Report(context.Background(), ReportRequest{
			Message: &queue.Message{Envelope: env}, Kind: dsn.Failed, Recipients: []int{0}, Body: ndrBody(ndrOriginal),
		}); err != nil {
			t.Fatal(err)
		}
		_, msg := st.only(t)
		if len(q.envs) != 0 {
			t.Errorf("From=%q Bounce=%v: report queued %d times", env.From, env.Bounce, len(q.envs))
		}
		dsntest.CheckLines(t, msg)
		if _, err := dsn.Parse(bytes.NewReader(msg)); err != nil {
			t.Error(err)
		}
	}
}

// TestReportQueuedToSender: the queued copy has the null reverse-path, the
// sender as its only recipient, the report key as its ID, and the stored
// report as its body.
func TestReportQueuedToSender(t *testing.T) {
	q := &ndrQueue{}
	r, st := ndrReporter(t, q, 0)
	env := ndrEnvelope()
	if err := r.Report(context.Background(), ReportRequest{
		Message: &queue.Message{Envelope: env}, Kind: dsn.Failed, Recipients: []int{0}, Body: ndrBody(ndrOriginal),
	}); err != nil {
		t.Fatal(err)
	}
	key, msg := st.only(t)
	if len(q.envs) != 1 {
		t.Fatalf("queued %d", len(q.envs))
	}
	b := q.envs[0]
	if b.ID != key || !queue.ValidID(b.ID) || b.From != "" || !b.Bounce || b.MessageID != key+"@relay.example.org" || b.Size != int64(len(msg)) {
		t.Errorf("queued envelope = %+v", b)
	}
	if len(b.Recipients) != 1 || b.Recipients[0].Addr != "alice@example.org" || b.Recipients[0].Status != queue.StatusPending {
		t.Errorf("queued recipients = %+v", b.Recipients)
	}
	equalBytes(t, "queued body", q.bodies[0], msg)
	if env.Recipients[0].Reported {
		t.Errorf("Report changed the envelope; recording is the caller's job")
	}
}

func TestReportToSenderOff(t *testing.T) {
	q := &ndrQueue{}
	st := &ndrMemStore{}
	r, err := NewReporter(ReporterOptions{Hostname: "relay.example.org", Store: st, Queue: q, ToSender: false})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Report(context.Background(), ReportRequest{
		Message: &queue.Message{Envelope: ndrEnvelope()}, Kind: dsn.Failed, Recipients: []int{0}, Body: ndrBody(ndrOriginal),
	}); err != nil {
		t.Fatal(err)
	}
	st.only(t)
	if len(q.envs) != 0 {
		t.Errorf("queued with ToSender off")
	}
}

// TestReportErrors: a failing store or queue, or an unreadable original,
// is an error the caller retries on; nothing is queued unless it is stored.
func TestReportErrors(t *testing.T) {
	boom := errors.New("boom")
	req := func() ReportRequest {
		return ReportRequest{Message: &queue.Message{Envelope: ndrEnvelope()}, Kind: dsn.Failed, Recipients: []int{0}, Body: ndrBody(ndrOriginal)}
	}
	t.Run("store", func(t *testing.T) {
		q := &ndrQueue{}
		r, st := ndrReporter(t, q, 0)
		st.err = boom
		if err := r.Report(context.Background(), req()); !errors.Is(err, boom) {
			t.Errorf("err = %v", err)
		}
		if len(q.envs) != 0 {
			t.Errorf("queued although not stored")
		}
	})
	t.Run("queue", func(t *testing.T) {
		q := &ndrQueue{err: boom}
		r, _ := ndrReporter(t, q, 0)
		if err := r.Report(context.Background(), req()); !errors.Is(err, boom) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("body", func(t *testing.T) {
		r, st := ndrReporter(t, nil, 0)
		rq := req()
		rq.Body = func(context.Context) (io.ReadCloser, error) { return nil, boom }
		if err := r.Report(context.Background(), rq); !errors.Is(err, boom) {
			t.Errorf("err = %v", err)
		}
		if st.puts != 0 {
			t.Errorf("stored a report without the original")
		}
	})
	t.Run("index", func(t *testing.T) {
		r, _ := ndrReporter(t, nil, 0)
		rq := req()
		rq.Recipients = []int{7}
		if err := r.Report(context.Background(), rq); err == nil {
			t.Errorf("no error for an index out of range")
		}
	})
	t.Run("kind", func(t *testing.T) {
		r, _ := ndrReporter(t, nil, 0)
		rq := req()
		rq.Kind = "exploded"
		if err := r.Report(context.Background(), rq); err == nil {
			t.Errorf("no error for an unknown kind")
		}
	})
}

func TestReportKey(t *testing.T) {
	k1, _ := reportKey(ndrQueueID, dsn.Failed, []int{0, 1})
	k2, _ := reportKey(ndrQueueID, dsn.Failed, []int{0, 1})
	k3, _ := reportKey(ndrQueueID, dsn.Failed, []int{0})
	k4, _ := reportKey(ndrQueueID, dsn.Delayed, []int{0, 1})
	if k1 != k2 || k1 == k3 || k1 == k4 {
		t.Errorf("keys: %s %s %s %s", k1, k2, k3, k4)
	}
	if !strings.HasPrefix(k1, ndrQueueID+"-failed-") || !queue.ValidID(k1) {
		t.Errorf("key %q", k1)
	}
	long := strings.Repeat("A", 64)
	k, err := reportKey(long, dsn.Delivered, []int{3})
	if err != nil || !queue.ValidID(k) || len(k) != 64 {
		t.Errorf("long ID: key %q (%d), %v", k, len(k), err)
	}
	if _, err := reportKey("bad/id", dsn.Failed, []int{0}); err == nil {
		t.Errorf("no error for an invalid queue ID")
	}
}

// TestReportTwice is the crash between writing the report and recording it
// in the queue: the worker calls Report again for the same recipients. The
// real Maildir store and the real spool both hold exactly one copy.
func TestReportTwice(t *testing.T) {
	dir := t.TempDir()
	spool, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	store, err := bounce.Open("maildir:"+filepath.Join(dir, "bounces"), bounce.Options{QueueDirs: []string{spool.Dir()}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	r, err := NewReporter(ReporterOptions{
		Hostname: "relay.example.org", Store: store, Queue: spool, ToSender: true,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	env := ndrEnvelope()
	req := ReportRequest{Message: &queue.Message{Envelope: env}, Kind: dsn.Failed, Recipients: []int{0, 1}, Body: ndrBody(ndrOriginal)}
	for range 2 {
		if err := r.Report(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "bounces", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("maildir new/ holds %d files, want 1: %v", len(files), files)
	}
	if spool.Len() != 1 {
		t.Fatalf("spool holds %d messages, want 1", spool.Len())
	}

	// The queued report is the stored one, addressed to the sender.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := spool.Lease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Envelope.From != "" || !m.Envelope.Bounce || len(m.Envelope.Recipients) != 1 || m.Envelope.Recipients[0].Addr != env.From {
		t.Errorf("queued envelope = %+v", m.Envelope)
	}
	rc, err := spool.Body(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(rc)
	rc.Close()
	stored, _ := os.ReadFile(files[0])
	equalBytes(t, "queued report", body, stored)
	if filepath.Base(files[0]) != m.Envelope.ID+".edgerelay" {
		t.Errorf("maildir file %s, queued ID %s", filepath.Base(files[0]), m.Envelope.ID)
	}
	if n := strings.Count(logs.String(), "delivery status notification"); n != 2 {
		t.Errorf("%d log lines, want one per Report call:\n%s", n, logs.String())
	}
	for _, want := range []string{"queue_id=" + ndrQueueID, "kind=failed", "key=" + m.Envelope.ID, "store=maildir:", "bob@example.net", "carol@example.net"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// TestReportHostileReply: a remote reply with line breaks, control
// characters, invalid UTF-8 and a very long word cannot break the report's
// structure: no injected fields, CRLF lines of at most 998 characters, an
// ASCII delivery-status part.
func TestReportHostileReply(t *testing.T) {
	r, st := ndrReporter(t, nil, 0)
	env := ndrEnvelope()
	env.Recipients[0].Reply = &queue.Reply{Code: 550, Enhanced: "5.7.1\r\nX-Injected: 1", Lines: []string{
		"no\r\nX-Injected: 2\r\n\r\n--boundary",
		"bad \xff\xfe bytes \x00\x1b[31m and ümlauts",
		strings.Repeat("W", 3000),
	}}
	if err := r.Report(context.Background(), ReportRequest{
		Message: &queue.Message{Envelope: env}, Kind: dsn.Failed, Recipients: []int{0}, Body: ndrBody(ndrOriginal),
	}); err != nil {
		t.Fatal(err)
	}
	_, msg := st.only(t)
	dsntest.CheckLines(t, msg)
	d, err := dsn.Parse(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(msg), "\r\nX-Injected") {
		t.Errorf("a reply line became a field:\n%s", msg)
	}
	rc := d.Recipients[0]
	if rc.Status != "5.0.0" {
		t.Errorf("Status = %q, want 5.0.0 (the enhanced code was not valid)", rc.Status)
	}
	if !dsn.IsASCII([]byte(rc.DiagnosticCode)) || !strings.Contains(rc.DiagnosticCode, "bad ?? bytes") {
		t.Errorf("Diagnostic-Code = %q", rc.DiagnosticCode)
	}
	if !utf8Valid(d.Text) {
		t.Errorf("text part is not valid UTF-8")
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }
