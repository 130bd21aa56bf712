package outbound

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

const (
	bob   = "bob@example.net"
	carol = "carol@example.net"
)

func TestGatewayDelivered(t *testing.T) {
	srv := newScriptServer(t, withTLS())
	h := newHarness(t, gatewayOpts(srv, GatewayTLSStartTLS))
	id := h.enqueue(nil, bob)

	env := h.attempt()
	r := rcpt(t, env, bob)
	if r.Status != queue.StatusRelayed {
		t.Errorf("status = %s, want relayed (gateway without DSN)", r.Status)
	}
	if r.Reply == nil || r.Reply.Code != 250 || r.Reply.Enhanced != "2.0.0" {
		t.Errorf("reply = %v, want the gateway's 250 2.0.0", r.Reply)
	}
	if r.Attempts != 1 || !r.LastAttempt.Equal(h.clock.Now()) || !strings.HasPrefix(r.RemoteMTA, "127.0.0.1 [127.0.0.1]") {
		t.Errorf("attempts %d, last %v, remote %q", r.Attempts, r.LastAttempt, r.RemoteMTA)
	}
	got := srv.Received()
	if len(got) != 1 {
		t.Fatalf("gateway got %d messages, want 1", len(got))
	}
	m := got[0]
	if m.From != "alice@example.org" || m.rcptList() != bob || !m.TLS || !m.bodyHas("Hello, Bob.\r\n") {
		t.Errorf("gateway got from %q to %q tls %v body %q", m.From, m.rcptList(), m.TLS, m.Body)
	}
	if m.MailOpts.Size != int64(len(testBody)) {
		t.Errorf("SIZE = %d, want %d", m.MailOpts.Size, len(testBody))
	}
	if h.q.Len() != 0 {
		t.Errorf("queue holds %d messages after delivery of %s, want 0", h.q.Len(), id)
	}
	if c := h.rep.Calls(); len(c) != 0 {
		t.Errorf("reports %+v, want none", c)
	}
	if !strings.Contains(h.log.String(), "msg=delivered") || !strings.Contains(h.log.String(), "id="+id) {
		t.Errorf("log lacks the delivery line:\n%s", h.log)
	}
}

func TestGatewayImplicitTLS(t *testing.T) {
	srv := newScriptServer(t, withImplicitTLS())
	h := newHarness(t, gatewayOpts(srv, GatewayTLSImplicit))
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v, want relayed", r.Status, r.Reply)
	}
	if got := srv.Received(); len(got) != 1 || !got[0].TLS {
		t.Fatalf("received %+v, want one message over TLS", got)
	}
}

func TestGatewayUntrustedCertificate(t *testing.T) {
	srv := newScriptServer(t, withTLS())
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSStartTLS), func(o *Options) { o.GatewayRootCAs = nil }))
	h.enqueue(nil, bob)
	r := rcpt(t, h.attempt(), bob)
	if r.Status != queue.StatusPending || r.Reply.Enhanced != "4.7.5" {
		t.Fatalf("status %s reply %v, want pending with 4.7.5", r.Status, r.Reply)
	}
	if len(srv.Received()) != 0 {
		t.Fatal("message sent over an unverified connection")
	}
}

func TestGatewayReusesConnection(t *testing.T) {
	srv := newScriptServer(t, withTLS())
	h := newHarness(t, gatewayOpts(srv, GatewayTLSStartTLS))
	for range 3 {
		h.enqueue(nil, bob)
	}
	for range 3 {
		if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
			t.Fatalf("status %s reply %v", r.Status, r.Reply)
		}
	}
	if n := len(srv.Received()); n != 3 {
		t.Fatalf("gateway got %d messages, want 3", n)
	}
	if n := srv.Conns(); n != 1 {
		t.Fatalf("gateway saw %d connections for 3 messages, want 1", n)
	}
}

func TestGatewayPooledConnectionRetriedFresh(t *testing.T) {
	// The second MAIL, on the pooled connection, gets 421: the worker
	// gives up that connection and sends the message on a new one.
	srv := newScriptServer(t, withMail(stepOK, replyStep(421, "4.4.2", "idle too long, closing"), stepOK))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob)
	h.enqueue(nil, carol)
	h.attempt()
	env := h.attempt()
	if r := env.Recipients[0]; r.Status != queue.StatusRelayed {
		t.Fatalf("second message: status %s reply %v, want relayed on a fresh connection", r.Status, r.Reply)
	}
	if n := srv.Conns(); n != 2 {
		t.Fatalf("connections = %d, want 2", n)
	}
	if n := len(srv.Received()); n != 2 {
		t.Fatalf("received %d, want 2", n)
	}
}

func TestGatewayTemporaryThenDelivered(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(451, "4.3.0", "greylisted, come back later"), stepOK))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob)

	env := h.attempt()
	r := rcpt(t, env, bob)
	if r.Status != queue.StatusPending || r.Reply.String() != "451 4.3.0 greylisted, come back later" {
		t.Fatalf("first attempt: status %s reply %q", r.Status, r.Reply)
	}
	if env.Attempts != 1 || r.Attempts != 1 {
		t.Errorf("attempts env %d rcpt %d, want 1, 1", env.Attempts, r.Attempts)
	}
	h.noneDue()
	h.clock.Advance(5 * time.Minute) // the schedule's first step, no jitter
	env = h.attempt()
	if r := rcpt(t, env, bob); r.Status != queue.StatusRelayed || r.Attempts != 2 {
		t.Fatalf("second attempt: status %s attempts %d reply %v", r.Status, r.Attempts, r.Reply)
	}
	if h.q.Len() != 0 || len(srv.Received()) != 1 {
		t.Fatalf("queue %d, received %d", h.q.Len(), len(srv.Received()))
	}
}

func TestGatewayPartialFailure(t *testing.T) {
	srv := newScriptServer(t, withRcpt(carol, replyStep(550, "5.1.1", "<carol@example.net>: user unknown")))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob, carol)

	env := h.attempt()
	if r := rcpt(t, env, bob); r.Status != queue.StatusRelayed {
		t.Errorf("bob: %s %v, want relayed", r.Status, r.Reply)
	}
	c := rcpt(t, env, carol)
	if c.Status != queue.StatusFailed || c.Reply.String() != "550 5.1.1 <carol@example.net>: user unknown" || !c.Reported {
		t.Errorf("carol: status %s reply %q reported %v", c.Status, c.Reply, c.Reported)
	}
	calls := h.rep.Calls()
	if len(calls) != 1 || calls[0].Kind != dsn.Failed || !slices.Equal(calls[0].Rcpts, []string{carol}) {
		t.Fatalf("reports = %+v, want one failed report for carol", calls)
	}
	if got := srv.Received(); len(got) != 1 || got[0].rcptList() != bob {
		t.Fatalf("received %+v", got)
	}
	if h.q.Len() != 0 {
		t.Fatal("message still queued")
	}
}

func TestGatewayTemporaryFailures(t *testing.T) {
	tests := []struct {
		name      string
		opts      []serverOpt
		timeout   time.Duration
		wantReply string // prefix of the recorded reply
	}{
		{"421 at greeting", []serverOpt{withGreet(replyStep(421, "4.3.2", "system shutting down"), stepOK)}, 0,
			"421 4.3.2 system shutting down"},
		{"452 at RCPT", []serverOpt{withRcpt(bob, replyStep(452, "4.5.3", "too many recipients"), stepOK)}, 0,
			"452 4.5.3 too many recipients"},
		{"451 at MAIL", []serverOpt{withMail(replyStep(451, "4.3.0", "queue full"), stepOK)}, 0,
			"451 4.3.0 queue full"},
		{"451 after DATA", []serverOpt{withData(replyStep(451, "4.3.0", "content scanner down"), stepOK)}, 0,
			"451 4.3.0 content scanner down"},
		{"dropped at RCPT", []serverOpt{withRcpt(bob, stepDrop, stepOK)}, 0, "451 4.4.2 connection dropped by host"},
		{"dropped mid-DATA", []serverOpt{withData(stepDrop, stepOK)}, 0, "451 4.4.2 connection dropped by host"},
		{"stall at RCPT", []serverOpt{withRcpt(bob, stepStall, stepOK)}, 300 * time.Millisecond, "451 4.4.2 timed out waiting for host"},
		{"stall at greeting", []serverOpt{withGreet(stepStall, stepOK)}, 300 * time.Millisecond, "451 4.4.2 timed out waiting for host"},
		{"stall after DATA", []serverOpt{withData(stepStall, stepOK)}, 300 * time.Millisecond, "451 4.4.2 timed out waiting for host"},
		{"refused", nil, 0, "451 4.4.1 connection refused by host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.opts...)
			h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSNone), func(o *Options) {
				if tt.timeout > 0 {
					o.Timeouts.Command, o.Timeouts.Final = tt.timeout, tt.timeout
				}
				if tt.name == "refused" {
					o.Gateway = closedPort(t)
				}
			}))
			h.enqueue(nil, bob)
			env := h.attempt()
			r := rcpt(t, env, bob)
			if r.Status != queue.StatusPending || !strings.HasPrefix(r.Reply.String(), tt.wantReply) {
				t.Fatalf("status %s reply %q, want pending with %q", r.Status, r.Reply, tt.wantReply)
			}
			if len(h.rep.Calls()) != 0 {
				t.Fatalf("reports %+v for a temporary failure", h.rep.Calls())
			}
			if tt.name == "refused" {
				return
			}
			h.clock.Advance(5 * time.Minute)
			if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
				t.Fatalf("retry: status %s reply %v, want relayed", r.Status, r.Reply)
			}
			if got := srv.Received(); len(got) != 1 {
				t.Fatalf("gateway has %d copies, want exactly 1", len(got))
			}
		})
	}
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestGatewayPermanentDataFailure(t *testing.T) {
	srv := newScriptServer(t, withData(replyStep(552, "5.3.4", "message too big for this gateway")))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob, carol)
	env := h.attempt()
	for _, a := range []string{bob, carol} {
		if r := rcpt(t, env, a); r.Status != queue.StatusFailed || r.Reply.Code != 552 {
			t.Errorf("%s: %s %v, want failed with 552", a, r.Status, r.Reply)
		}
	}
	if calls := h.rep.Calls(); len(calls) != 1 || len(calls[0].Rcpts) != 2 {
		t.Fatalf("reports %+v, want one for both", calls)
	}
}

func TestGatewayAuthPlain(t *testing.T) {
	const password = "s3cret-gw-pass"
	srv := newScriptServer(t, withTLS(), withAuth("relayuser", password))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSStartTLS), func(o *Options) {
		o.GatewayUsername, o.GatewayPassword = "relayuser", password
	}))
	h.enqueue(nil, bob)
	if r := rcpt(t, h.attempt(), bob); r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v", r.Status, r.Reply)
	}
	if got := srv.Received(); len(got) != 1 || got[0].User != "relayuser" {
		t.Fatalf("received %+v, want one message from relayuser", got)
	}
	if strings.Contains(h.log.String(), password) {
		t.Fatal("the gateway password appears in the log")
	}
}

func TestGatewayAuthRejectedIsTemporary(t *testing.T) {
	srv := newScriptServer(t, withTLS(), withAuth("relayuser", "right"))
	h := newHarness(t, combine(gatewayOpts(srv, GatewayTLSStartTLS), func(o *Options) {
		o.GatewayUsername, o.GatewayPassword = "relayuser", "wrong-password"
	}))
	h.enqueue(nil, bob)
	r := rcpt(t, h.attempt(), bob)
	if r.Status != queue.StatusPending || r.Reply.Code != 535 {
		t.Fatalf("status %s reply %v, want pending with the gateway's 535", r.Status, r.Reply)
	}
	if strings.Contains(h.log.String(), "wrong-password") {
		t.Fatal("the gateway password appears in the log")
	}
}

func TestGatewayCredentialsNeedTLS(t *testing.T) {
	_, err := New(Options{Queue: nopQueue{}, Gateway: "gw.test:25", GatewayTLS: GatewayTLSNone, GatewayUsername: "u", GatewayPassword: "p"})
	if err == nil || strings.Contains(err.Error(), "p\"") {
		t.Fatalf("New = %v, want an error about TLS", err)
	}
}

func TestGatewayStartTLSNotOffered(t *testing.T) {
	srv := newScriptServer(t) // no TLS
	h := newHarness(t, gatewayOpts(srv, GatewayTLSStartTLS))
	h.enqueue(nil, bob)
	r := rcpt(t, h.attempt(), bob)
	if r.Status != queue.StatusPending || r.Reply.Enhanced != "4.7.4" || !strings.Contains(r.Reply.String(), "did not offer STARTTLS") {
		t.Fatalf("status %s reply %q, want pending with 4.7.4 STARTTLS not offered", r.Status, r.Reply)
	}
	if len(srv.Received()) != 0 {
		t.Fatal("message sent in plaintext")
	}
}

func TestGatewayNotifySuccessWithoutDSN(t *testing.T) {
	srv := newScriptServer(t)
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(func(e *queue.Envelope) {
		e.Recipients[0].Notify = []string{queue.NotifySuccess, queue.NotifyFailure}
		e.RET, e.EnvID = "HDRS", "env-1"
	}, bob, carol)
	env := h.attempt()
	if r := rcpt(t, env, bob); r.Status != queue.StatusRelayed || !r.Reported {
		t.Fatalf("bob: %s reported %v, want relayed and reported", r.Status, r.Reported)
	}
	calls := h.rep.Calls()
	if len(calls) != 1 || calls[0].Kind != dsn.Relayed || !slices.Equal(calls[0].Rcpts, []string{bob}) {
		t.Fatalf("reports %+v, want one relayed report for bob only", calls)
	}
	m := srv.Received()[0]
	if m.MailOpts.Return != "" || m.MailOpts.EnvelopeID != "" || len(m.RcptOpts[bob].Notify) != 0 {
		t.Fatalf("DSN parameters sent to a hop without DSN: %+v %+v", m.MailOpts, m.RcptOpts)
	}
}

func TestGatewayDSNPassedThrough(t *testing.T) {
	srv := newScriptServer(t, withDSN())
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(func(e *queue.Envelope) {
		e.RET, e.EnvID = "HDRS", "QQ314159"
		e.Recipients[0].Notify = []string{"success", "failure"}
		e.Recipients[0].ORCPT = "rfc822;Bob@Example.NET"
	}, bob)
	env := h.attempt()
	if r := rcpt(t, env, bob); r.Status != queue.StatusDelivered {
		t.Fatalf("status %s, want delivered (the hop speaks DSN)", r.Status)
	}
	if calls := h.rep.Calls(); len(calls) != 0 {
		t.Fatalf("reports %+v: the DSN-capable hop reports success itself", calls)
	}
	m := srv.Received()[0]
	if m.MailOpts.Return != smtp.DSNReturnHeaders || m.MailOpts.EnvelopeID != "QQ314159" {
		t.Errorf("MAIL options %+v", m.MailOpts)
	}
	ro := m.RcptOpts[bob]
	if !slices.Equal(ro.Notify, []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure}) ||
		ro.OriginalRecipientType != smtp.DSNAddressTypeRFC822 || ro.OriginalRecipient != "Bob@Example.NET" {
		t.Errorf("RCPT options %+v", ro)
	}
}

func TestGatewaySMTPUTF8NotOffered(t *testing.T) {
	srv := newScriptServer(t)
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(func(e *queue.Envelope) { e.SMTPUTF8 = true; e.From = "ålice@example.org" }, bob)
	r := rcpt(t, h.attempt(), bob)
	if r.Status != queue.StatusFailed || r.Reply.Enhanced != "5.6.7" {
		t.Fatalf("status %s reply %v, want failed with 5.6.7", r.Status, r.Reply)
	}
}

func TestGatewaySMTPUTF8Offered(t *testing.T) {
	srv := newScriptServer(t, withSMTPUTF8())
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(func(e *queue.Envelope) { e.SMTPUTF8 = true; e.From = "ålice@example.org" }, "bøb@example.net")
	if r := h.attempt().Recipients[0]; r.Status != queue.StatusRelayed {
		t.Fatalf("status %s reply %v", r.Status, r.Reply)
	}
	if m := srv.Received()[0]; !m.MailOpts.UTF8 || m.From != "ålice@example.org" {
		t.Fatalf("MAIL %q %+v, want SMTPUTF8", m.From, m.MailOpts)
	}
}

func TestGatewaySizeLimit(t *testing.T) {
	srv := newScriptServer(t, withMaxSize(10))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob)
	r := rcpt(t, h.attempt(), bob)
	if r.Status != queue.StatusFailed || r.Reply.Enhanced != "5.3.4" {
		t.Fatalf("status %s reply %v, want failed 5.3.4", r.Status, r.Reply)
	}
}

func TestReportFailureKeepsMessage(t *testing.T) {
	srv := newScriptServer(t, withRcpt(bob, replyStep(550, "5.1.1", "no such user")))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.rep.setErr(errors.New("bounce store down"))
	h.enqueue(nil, bob)
	env := h.attempt()
	if r := rcpt(t, env, bob); r.Status != queue.StatusFailed || r.Reported {
		t.Fatalf("status %s reported %v", r.Status, r.Reported)
	}
	if h.q.Len() != 1 {
		t.Fatal("message dropped although its report failed")
	}
	h.rep.setErr(nil)
	h.clock.Advance(time.Minute)
	env = h.attempt()
	if r := rcpt(t, env, bob); !r.Reported || r.Attempts != 1 {
		t.Fatalf("reported %v attempts %d: the retry must only report, not deliver again", r.Reported, r.Attempts)
	}
	if calls := h.rep.Calls(); len(calls) != 1 {
		t.Fatalf("reports %+v, want exactly one", calls)
	}
	if h.q.Len() != 0 {
		t.Fatal("message still queued")
	}
}

// nopQueue is a Queue for constructor tests that never delivers anything.
type nopQueue struct{ queue.Queue }

func (nopQueue) Lease(ctx context.Context) (*queue.Message, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestGatewayRecipientLimitBatches(t *testing.T) {
	// The gateway takes one recipient per transaction and answers 452 to
	// the others (RFC 5321 §4.5.3.1.10): the worker sends them in further
	// transactions on the same connection, in the same attempt.
	srv := newScriptServer(t,
		withRcpt(carol, replyStep(452, "4.5.3", "too many recipients"), stepOK),
		withRcpt("dave@example.net", replyStep(452, "4.5.3", "too many recipients"), replyStep(452, "4.5.3", "too many recipients"), stepOK))
	h := newHarness(t, gatewayOpts(srv, GatewayTLSNone))
	h.enqueue(nil, bob, carol, "dave@example.net")
	env := h.attempt()
	for _, r := range env.Recipients {
		if r.Status != queue.StatusRelayed || r.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts (%v)", r.Addr, r.Status, r.Attempts, r.Reply)
		}
	}
	got := srv.Received()
	if len(got) != 3 || got[0].rcptList() != bob || got[1].rcptList() != carol || got[2].rcptList() != "dave@example.net" {
		t.Fatalf("received %+v, want three transactions", got)
	}
	if srv.Conns() != 1 || h.q.Len() != 0 {
		t.Fatalf("conns %d, queued %d", srv.Conns(), h.q.Len())
	}
}
