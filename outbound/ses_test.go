package outbound

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/internal/awstest"
	"github.com/edgerelay/edgerelay/queue"
)

// sesHarness is a harness whose RELAY_GATEWAY is one ses:// gateway with
// client c.
func sesHarness(t *testing.T, c SESAPI, configure func(*Options)) *harness {
	t.Helper()
	return newHarness(t, func(o *Options) {
		o.Gateways = []GatewayConfig{{URL: "ses://us-east-1", SES: c, SESRegion: "us-east-1", ConfigurationSet: "relay-cs"}}
		if configure != nil {
			configure(o)
		}
	})
}

// sesHop is the harness worker's SES hop.
func (h *harness) sesHop() *sesHop { return h.w.main.hops[0].(*sesHop) }

// sesBody is a message with a Bcc recipient (in the envelope only), a
// marker to find it in the emulator's store, and bytes that any
// re-encoding would change: 8-bit text, a lone LF, trailing white space.
func sesBody(marker string) string {
	return "From: Alice <alice@example.org>\r\n" +
		"To: Bob <bob@example.net>\r\n" +
		"Cc: carol@example.net\r\n" +
		"Subject: SES " + marker + "\r\n" +
		"Message-ID: <" + marker + "@example.org>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Grüße aus Köln \t \r\n" +
		"a lone LF\nends here\r\n" +
		".leading dot\r\n"
}

// countSends is an emulator front that counts SendEmail calls.
func countSends(n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails" {
				n.Add(1)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// sesFault answers SendEmail calls for which fail says true with an SES
// v2 error as the service writes it (REST-JSON: the code in
// X-Amzn-Errortype, the message in the body) and passes the rest to the
// emulator.
func sesFault(status int, code, message string, fail func(n int64) bool) func(http.Handler) http.Handler {
	var calls atomic.Int64
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/v2/email/outbound-emails" && fail(calls.Add(1)) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Amzn-Errortype", code+":http://internal.amazon.com/coral/com.amazonaws.sesv2/")
				w.Header().Set("X-Amzn-Requestid", "req-1")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"message":%q}`, message)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// TestSESDelivered: a message delivered through ses:// arrives at SES (the
// emulator) with its raw content byte for byte, every envelope recipient
// as the destination (the Bcc one, which no header names, included), the
// envelope sender as From and feedback address, and the configuration
// set; each recipient is relayed (SES offers no DSN), the message leaves
// the queue, and SES's message ID is logged with the queue ID.
func TestSESDelivered(t *testing.T) {
	s := awstest.Start(t)
	h := sesHarness(t, s.SESV2(), nil)
	marker := awstest.UniqueName("ses-delivered")
	body := sesBody(marker)
	rcpts := []string{"bob@example.net", "carol@example.net", "dave-bcc@example.com"}
	id := h.enqueueBody(body, nil, rcpts...)

	env := h.attempt()
	for _, a := range rcpts {
		r := rcpt(t, env, a)
		if r.Status != queue.StatusRelayed || r.Reply == nil || r.Reply.Code != 250 || r.RemoteMTA != strings.TrimPrefix(s.URL, "http://")+" (SES)" {
			t.Errorf("%s: %s %v from %q, want relayed 250 from the SES endpoint", a, r.Status, r.Reply, r.RemoteMTA)
		}
	}
	h.noneDue()
	got := s.FindSent(t, marker)
	if len(got) != 1 {
		t.Fatalf("SES got %d messages, want 1: %v", len(got), got)
	}
	e := got[0]
	if !bytes.Equal(e.RawData, []byte(body)) {
		t.Errorf("raw content differs:\n got %q\nwant %q", e.RawData, body)
	}
	if !slices.Equal(e.Destination.ToAddresses, rcpts) || len(e.Destination.CcAddresses)+len(e.Destination.BccAddresses) != 0 {
		t.Errorf("destination %+v, want ToAddresses %v", e.Destination, rcpts)
	}
	if e.FromEmailAddress != "alice@example.org" || e.ConfigurationSetName != "relay-cs" {
		t.Errorf("from %q, configuration set %q", e.FromEmailAddress, e.ConfigurationSetName)
	}
	if !strings.Contains(rcpt(t, env, "bob@example.net").Reply.String(), e.MessageID) {
		t.Errorf("reply %q does not name SES's message ID %s", rcpt(t, env, "bob@example.net").Reply, e.MessageID)
	}
	var logged bool
	for l := range strings.SplitSeq(h.log.String(), "\n") {
		if strings.Contains(l, "level=INFO") && strings.Contains(l, "id="+id) && strings.Contains(l, "ses_message_id="+e.MessageID) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no INFO line with the queue ID and SES's message ID:\n%s", h.log.String())
	}
}

// TestSESRecipientGroups: SES takes at most 50 recipients per message, so
// 120 go out in three calls (50, 50, 20) that together name each
// recipient once.
func TestSESRecipientGroups(t *testing.T) {
	s := awstest.Start(t)
	h := sesHarness(t, s.SESV2(), nil)
	marker := awstest.UniqueName("ses-groups")
	var rcpts []string
	for i := range 120 {
		rcpts = append(rcpts, fmt.Sprintf("r%03d@example.net", i))
	}
	h.enqueueBody(sesBody(marker), nil, rcpts...)
	env := h.attempt()
	if p := env.Pending(); len(p) != 0 {
		t.Fatalf("%d recipients pending", len(p))
	}
	got := s.FindSent(t, marker)
	var sizes []int
	var all []string
	for _, e := range got {
		sizes = append(sizes, len(e.Recipients()))
		all = append(all, e.Recipients()...)
	}
	slices.Sort(all)
	if !slices.Equal(sizes, []int{50, 50, 20}) || !slices.Equal(all, rcpts) {
		t.Errorf("calls with %v recipients; every recipient once: %v", sizes, slices.Equal(all, rcpts))
	}
}

// TestSESNullSender: a report (null reverse-path) names no sender:
// SES takes the From header, and no feedback address is set.
func TestSESNullSender(t *testing.T) {
	s := awstest.Start(t)
	h := sesHarness(t, s.SESV2(), nil)
	marker := awstest.UniqueName("ses-null")
	h.enqueueBody(sesBody(marker), func(e *queue.Envelope) { e.From, e.Bounce = "", true }, "bob@example.net")
	if r := rcpt(t, h.attempt(), "bob@example.net"); r.Status != queue.StatusRelayed {
		t.Fatalf("%s %v", r.Status, r.Reply)
	}
	got := s.FindSent(t, marker)
	if len(got) != 1 || got[0].FromEmailAddress != "" {
		t.Errorf("stored %v, want one without FromEmailAddress", got)
	}
}

// TestSESRejectedNDR: SES refusing the message (MessageRejected, as the
// service writes it, parsed by the real SDK client) fails every recipient
// of the call, and the Reporter's NDR carries SES's error in its
// Diagnostic-Code, the SES endpoint as Remote-MTA.
func TestSESRejectedNDR(t *testing.T) {
	const why = "Email address is not verified. The following identities failed the check in region US-EAST-1: bob@example.net"
	s := awstest.Start(t).Front(t, sesFault(400, "MessageRejected", why, func(int64) bool { return true }))
	q := &ndrQueue{}
	rep, st := ndrReporter(t, q, 0)
	h := sesHarness(t, s.SESV2(), func(o *Options) { o.Reporter = rep })
	h.enqueueBody(sesBody(awstest.UniqueName("ses-rejected")), nil, "bob@example.net", "dave-bcc@example.com")
	env := h.attempt()
	want := "554 5.6.0 Amazon SES rejected the message: MessageRejected: " + why
	for _, r := range env.Recipients {
		if r.Status != queue.StatusFailed || r.Reply.String() != want {
			t.Errorf("%s: %s %q, want failed %q", r.Addr, r.Status, r.Reply, want)
		}
	}
	h.noneDue()
	_, raw := st.only(t)
	rp, err := dsn.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, raw)
	}
	if len(rp.Recipients) != 2 {
		t.Fatalf("report names %d recipients, want 2", len(rp.Recipients))
	}
	host := strings.TrimPrefix(s.URL, "http://")
	for _, r := range rp.Recipients {
		if r.Action != dsn.Failed || r.Status != "5.6.0" || r.DiagnosticCode != want || r.RemoteMTA != host {
			t.Errorf("report for %s: %s %s %q from %q", r.FinalRecipient, r.Action, r.Status, r.DiagnosticCode, r.RemoteMTA)
		}
	}
	if len(q.envs) != 1 || q.envs[0].Recipients[0].Addr != "alice@example.org" {
		t.Errorf("report not queued to the sender: %v", q.envs)
	}
}

// TestSESThrottledRetried: throttling (429 TooManyRequestsException) leaves
// every recipient pending with SES's reply, reports the gateway down, and
// reschedules the message on the retry schedule: no report, no bounce,
// however many attempts, until SES takes it.
func TestSESThrottledRetried(t *testing.T) {
	var throttle atomic.Bool
	throttle.Store(true)
	s := awstest.Start(t).Front(t, sesFault(429, "TooManyRequestsException", "Maximum sending rate exceeded.",
		func(int64) bool { return throttle.Load() }))
	h := sesHarness(t, s.SESV2(), nil)
	marker := awstest.UniqueName("ses-throttled")
	h.enqueueBody(sesBody(marker), nil, "bob@example.net", "dave-bcc@example.com")
	for n := range 3 {
		if n > 0 {
			h.clock.Advance(5 * time.Hour) // past any jittered retry step
		}
		env := h.attempt()
		for _, r := range env.Recipients {
			if r.Status != queue.StatusPending || r.Reply.Code != 451 || r.Reply.Enhanced != "4.4.5" ||
				!strings.Contains(r.Reply.String(), "TooManyRequestsException: Maximum sending rate exceeded.") {
				t.Fatalf("attempt %d, %s: %s %q, want pending 451 4.4.5 with SES's words", n+1, r.Addr, r.Status, r.Reply)
			}
		}
		h.noneDue()
		if gs := h.w.GatewayStatus(); len(gs) != 1 || gs[0].DownSince.IsZero() {
			t.Errorf("gateway status %+v, want down", gs)
		}
	}
	if calls := h.rep.Calls(); len(calls) != 0 {
		t.Errorf("reports while throttled: %+v", calls)
	}
	throttle.Store(false)
	h.clock.Advance(5 * time.Hour)
	env := h.attempt()
	if p := env.Pending(); len(p) != 0 || len(s.FindSent(t, marker)) != 1 {
		t.Errorf("after throttling ended: %d pending, %d sent", len(p), len(s.FindSent(t, marker)))
	}
	if gs := h.w.GatewayStatus(); !gs[0].DownSince.IsZero() {
		t.Errorf("gateway still down after a success: %+v", gs)
	}
}

// TestSESLaterGroupThrottled: when SES answered the first group (took it,
// or refused it for good) and throttles the second, the first keeps its
// result, the rest stay pending, and the hop is not down (the list would
// fail over with every recipient, sending the message to the first group
// again).
func TestSESLaterGroupThrottled(t *testing.T) {
	for _, first := range []struct {
		name   string
		status int
		code   string
		want   queue.RcptStatus
	}{
		{"accepted", 0, "", queue.StatusRelayed},
		{"rejected", 400, "MessageRejected", queue.StatusFailed},
	} {
		t.Run(first.name, func(t *testing.T) {
			front := sesFault(429, "TooManyRequestsException", "Maximum sending rate exceeded.", func(n int64) bool { return n >= 2 })
			if first.status != 0 {
				// The first call is refused here and never reaches the
				// throttling front, which throttles every call it sees.
				rejectFirst := sesFault(first.status, first.code, "no", func(n int64) bool { return n == 1 })
				throttle := sesFault(429, "TooManyRequestsException", "Maximum sending rate exceeded.", func(int64) bool { return true })
				front = func(next http.Handler) http.Handler { return rejectFirst(throttle(next)) }
			}
			s := awstest.Start(t).Front(t, front)
			h := sesHarness(t, s.SESV2(), nil)
			var rcpts []string
			for i := range 60 {
				rcpts = append(rcpts, fmt.Sprintf("g%02d@example.net", i))
			}
			h.enqueueBody(sesBody(awstest.UniqueName("ses-later")), nil, rcpts...)
			m, err := h.q.Lease(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			idx := m.Envelope.Pending()
			res, down := h.sesHop().deliver(context.Background(), m, idx)
			if down {
				t.Error("down after SES answered the first group")
			}
			for n, i := range idx {
				want := first.want
				if n >= sesMaxRecipients {
					want = queue.StatusPending
				}
				if res[i].status != want {
					t.Fatalf("recipient %d: %s, want %s", n, res[i].status, want)
				}
			}
		})
	}
}

// TestSESTooBig: a message larger than SES takes fails with 552 5.3.4
// before any call, whether its recorded size says so (unfit) or only its
// body does (the spool records the size it wrote, so the first case is
// made on the leased envelope).
func TestSESTooBig(t *testing.T) {
	var calls atomic.Int64
	s := awstest.Start(t).Front(t, countSends(&calls))
	h := sesHarness(t, s.SESV2(), nil)

	h.enqueueBody("Subject: x\r\n\r\nsmall body, large recorded size\r\n", nil, "bob@example.net")
	m, err := h.q.Lease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m.Envelope.Size = sesMaxMessage + 1
	res, down := h.sesHop().deliver(context.Background(), m, m.Envelope.Pending())
	if r := res[0]; down || r.status != queue.StatusFailed || r.reply.Code != 552 || r.reply.Enhanced != "5.3.4" {
		t.Errorf("recorded size over the limit: %s %q, down %v", r.status, r.reply, down)
	}

	big := "Subject: x\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", sesMaxMessage/1000+1)
	h.enqueueBody(big, nil, "bob@example.net")
	r := rcpt(t, h.attempt(), "bob@example.net")
	if r.Status != queue.StatusFailed || r.Reply.Code != 552 || r.Reply.Enhanced != "5.3.4" ||
		!strings.Contains(r.Reply.String(), "Amazon SES") {
		t.Errorf("message over the limit: %s %q", r.Status, r.Reply)
	}
	h.enqueueBody(big, nil, "bob@example.net")
	if m, err = h.q.Lease(context.Background()); err != nil {
		t.Fatal(err)
	}
	m.Envelope.Size = 100 // only the body tells
	res, down = h.sesHop().deliver(context.Background(), m, m.Envelope.Pending())
	if r := res[0]; down || r.status != queue.StatusFailed || r.reply.Code != 552 {
		t.Errorf("body over the limit, recorded size under it: %s %q, down %v", r.status, r.reply, down)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("%d SendEmail calls for messages over the limit", n)
	}
}

// TestSESNeedsSMTPUTF8: SES does not support SMTPUTF8; such a message
// fails as for an SMTP hop without it (553 5.6.7), without a call.
func TestSESNeedsSMTPUTF8(t *testing.T) {
	var calls atomic.Int64
	s := awstest.Start(t).Front(t, countSends(&calls))
	h := sesHarness(t, s.SESV2(), nil)
	h.enqueueBody("Subject: x\r\n\r\nx\r\n", func(e *queue.Envelope) { e.SMTPUTF8 = true }, "bob@example.net")
	r := rcpt(t, h.attempt(), "bob@example.net")
	if r.Status != queue.StatusFailed || r.Reply.String() != replyNeedsSMTPUTF8().String() || calls.Load() != 0 {
		t.Errorf("%s %q after %d calls", r.Status, r.Reply, calls.Load())
	}
}

// TestSESUnreachable: SES's endpoint unreachable (the emulator's clients
// fail every SES request with a transport error) leaves the recipients
// pending, the gateway down; a hanging endpoint is cut by the call's
// timeout and does the same.
func TestSESUnreachable(t *testing.T) {
	s := awstest.Start(t).Front(t, func(next http.Handler) http.Handler { return next })
	s.SetDown("sesv2", true)
	h := sesHarness(t, s.SESV2(), nil)
	h.enqueueBody(sesBody(awstest.UniqueName("ses-down")), nil, "bob@example.net")
	r := rcpt(t, h.attempt(), "bob@example.net")
	if r.Status != queue.StatusPending || r.Reply.Code != 451 {
		t.Errorf("unreachable: %s %q", r.Status, r.Reply)
	}

	hang := make(chan struct{})
	s2 := awstest.Start(t).Front(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then a client hanging up cancels r's context
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		})
	})
	t.Cleanup(func() { close(hang) }) // before the front's Close, which waits for its handlers
	h2 := sesHarness(t, s2.SESV2(), nil)
	h2.sesHop().timeout = 200 * time.Millisecond
	h2.enqueueBody(sesBody(awstest.UniqueName("ses-hang")), nil, "bob@example.net")
	start := time.Now()
	r = rcpt(t, h2.attempt(), "bob@example.net")
	if r.Status != queue.StatusPending || r.Reply.Code != 451 || time.Since(start) > 10*time.Second {
		t.Errorf("hanging endpoint: %s %q after %v", r.Status, r.Reply, time.Since(start))
	}
	if gs := h2.w.GatewayStatus(); gs[0].DownSince.IsZero() {
		t.Errorf("hanging endpoint: gateway not down")
	}
}

// TestSESRelayedDSN: a sender who asked for NOTIFY=SUCCESS gets
// edgerelay's "relayed" report for a recipient SES accepted (SES offers no
// DSN to pass the request on to, RFC 3461 §6.2.2); one who did not gets
// none.
func TestSESRelayedDSN(t *testing.T) {
	s := awstest.Start(t)
	rep, st := ndrReporter(t, nil, 0)
	h := sesHarness(t, s.SESV2(), func(o *Options) { o.Reporter = rep })
	h.enqueueBody(sesBody(awstest.UniqueName("ses-relayed")), func(e *queue.Envelope) {
		e.Recipients[0].Notify = []string{queue.NotifySuccess}
	}, "bob@example.net", "carol@example.net")
	env := h.attempt()
	if p := env.Pending(); len(p) != 0 {
		t.Fatalf("%d pending", len(p))
	}
	_, raw := st.only(t)
	rp, err := dsn.Parse(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(rp.Recipients) != 1 || rp.Recipients[0].Action != dsn.Relayed || !strings.Contains(rp.Recipients[0].FinalRecipient, "bob@example.net") {
		t.Errorf("report recipients %+v, want bob relayed only", rp.Recipients)
	}
}

// TestSESLargeMessageSlots: a large message waits for one of the hop's
// sesLargeSlots; while they are taken it stays pending when its context
// ends (no call, the hop not down), and goes out once one is free.
func TestSESLargeMessageSlots(t *testing.T) {
	var calls atomic.Int64
	s := awstest.Start(t).Front(t, countSends(&calls))
	h := sesHarness(t, s.SESV2(), nil)
	big := "Subject: large\r\n\r\n" + strings.Repeat(strings.Repeat("y", 998)+"\r\n", sesLargeMessage/1000+1)
	h.enqueueBody(big, nil, "bob@example.net")
	m, err := h.q.Lease(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hop := h.sesHop()
	for range sesLargeSlots {
		hop.large <- struct{}{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	res, down := hop.deliver(ctx, m, []int{0})
	if down || res[0].status != queue.StatusPending || res[0].reply.String() != replySESBusy().String() || calls.Load() != 0 {
		t.Errorf("slots taken: %s %q, down %v, %d calls", res[0].status, res[0].reply, down, calls.Load())
	}
	<-hop.large
	res, down = hop.deliver(context.Background(), m, []int{0})
	if down || res[0].status != queue.StatusRelayed || calls.Load() != 1 || len(hop.large) != sesLargeSlots-1 {
		t.Errorf("a slot free: %s %q, down %v, %d calls, %d slots taken", res[0].status, res[0].reply, down, calls.Load(), len(hop.large))
	}
}
