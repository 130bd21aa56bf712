package relay

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

func TestAuthHiddenBeforeTLS(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	caps := c.ehlo()
	if strings.Contains(caps, "AUTH") {
		t.Fatalf("AUTH offered before STARTTLS:\n%s", caps)
	}
	if !strings.Contains(caps, "STARTTLS") {
		t.Fatalf("STARTTLS not offered:\n%s", caps)
	}
	// And not accepted either.
	code, _ := c.cmd("AUTH PLAIN %s", plain(alice, alicePW))
	if code/100 != 5 {
		t.Fatalf("AUTH before TLS: got %d, want 5xx", code)
	}
	c.starttls()
	caps = c.ehlo()
	for _, m := range []string{"PLAIN", "LOGIN", "OAUTHBEARER", "XOAUTH2"} {
		if !strings.Contains(caps, m) {
			t.Errorf("after STARTTLS, %s not offered:\n%s", m, caps)
		}
	}
}

func TestRelayWithoutAuthRefused(t *testing.T) {
	e := newEnv(t)
	// Plaintext, and under TLS: MAIL before AUTH is 530 5.7.0 either way.
	c := e.dial()
	c.ehlo()
	c.must(530, "5.7.0", "MAIL FROM:<%s>", alice)
	c.must(502, "5.5.1", "RCPT TO:<x@example.net>") // go-smtp: no MAIL yet
	c.starttls()
	c.ehlo()
	c.must(530, "5.7.0", "MAIL FROM:<%s>", alice)
	// The null sender does not get around it.
	c.must(530, "5.7.0", "MAIL FROM:<>")
	if n := len(e.queued()); n != 0 {
		t.Fatalf("%d messages queued without AUTH", n)
	}
}

func TestSubmitAccepted(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(250, "2.", "MAIL FROM:<%s>", alice)
	c.must(250, "2.", "RCPT TO:<rcpt@example.net>")
	code, msg := c.data(message(alice, "rcpt@example.net", ""))
	if code != 250 || !strings.Contains(msg, "queued as ") {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	id := msg[strings.LastIndex(msg, " ")+1:]
	c.must(221, "", "QUIT")

	q := e.queued()
	body, ok := q[id]
	if !ok {
		t.Fatalf("queue ID %s from the reply is not in the queue (have %v)", id, q)
	}
	for _, want := range []string{
		"Received: from client.test ([127.0.0.1])",
		"by relay.test (edgerelay) with ESMTPSA id " + id,
		"(version=TLS 1.3 cipher=",
		"for <rcpt@example.net>;",
		"Message-ID: <" + id + "@relay.test>",
		"\r\nDate: ",
		"From: <alice@example.org>\r\n",
		"\r\n\r\nHello.\r\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("queued body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, alicePW) {
		t.Fatal("the password is in the message")
	}
}

func TestSubmitKeepsClientMessageIDAndDate(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	c.must(250, "", "RCPT TO:<rcpt2@example.net>")
	code, _ := c.data(message(alice, "rcpt@example.net", "Message-ID: <own@client.test>\r\nDate: Mon, 2 Nov 2026 10:00:00 +0000\r\n"))
	if code != 250 {
		t.Fatal(code)
	}
	for _, body := range e.queued() {
		if strings.Count(body, "Message-ID:") != 1 || strings.Count(body, "\r\nDate:") != 1 {
			t.Fatalf("fix-ups added a second Message-ID or Date:\n%s", body)
		}
		if strings.Contains(body, "for <") {
			t.Fatalf("Received names a recipient of a multi-recipient message:\n%s", body)
		}
	}
}

func TestImplicitTLSAndLogin(t *testing.T) {
	e := newEnv(t)
	c := e.dialTLS()
	caps := c.ehlo()
	if strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "AUTH") {
		t.Fatalf("465 capabilities wrong:\n%s", caps)
	}
	b64 := base64.StdEncoding.EncodeToString
	if msg := c.must(334, "", "AUTH LOGIN"); msg != b64([]byte("Username:")) {
		t.Fatalf("LOGIN prompt %q", msg)
	}
	c.must(334, "", "%s", b64([]byte(bob)))
	c.must(235, "2.", "%s", b64([]byte(bobPW)))
	c.must(250, "", "MAIL FROM:<%s>", bob)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	if code, msg := c.data(message(bob, "rcpt@example.net", "")); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	// LOGIN with the user name as initial response, too.
	c2 := e.dialTLS()
	c2.ehlo()
	c2.must(334, "", "AUTH LOGIN %s", b64([]byte(bob)))
	c2.must(235, "", "%s", b64([]byte(bobPW)))
}

func TestWrongPassword(t *testing.T) {
	e := newEnv(t)
	c := e.dial()
	c.ehlo()
	c.starttls()
	c.ehlo()
	// Wrong password and unknown user: the same reply.
	m1 := c.must(535, "5.7.8", "AUTH PLAIN %s", plain(alice, "wrong"))
	m2 := c.must(535, "5.7.8", "AUTH PLAIN %s", plain("nobody@example.org", "wrong"))
	if m1 != m2 {
		t.Fatalf("replies differ: %q vs %q", m1, m2)
	}
	// The third failure ends the session.
	c.must(421, "4.7.0", "AUTH PLAIN %s", plain(alice, "wrong"))
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.tp.ReadLine(); err == nil {
		t.Fatal("connection still open after 3 failures")
	}
}

func TestAuthzidMustBeUser(t *testing.T) {
	e := newEnv(t)
	c := e.dialTLS()
	c.ehlo()
	ir := base64.StdEncoding.EncodeToString([]byte(bob + "\x00" + alice + "\x00" + alicePW))
	c.must(535, "5.7.8", "AUTH PLAIN %s", ir)
}

func TestSenderAlignment(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(553, "5.7.1", "MAIL FROM:<%s>", bob)
	c.must(553, "5.7.1", "MAIL FROM:<>")
	// The alias from the users file is hers.
	c.must(250, "", "MAIL FROM:<%s>", alias)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	// Header From someone else's: 550 5.7.1.
	code, msg := c.data(message(bob, "rcpt@example.net", ""))
	if code != 550 || !strings.HasPrefix(msg, "5.7.1") {
		t.Fatalf("header From of another user: %d %s", code, msg)
	}
	// Header From the alias, envelope the primary: accepted.
	c.must(250, "", "MAIL FROM:<%s>", strings.ToUpper(alice))
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	if code, msg := c.data(message(alias, "rcpt@example.net", "")); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	// No From at all.
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	if code, msg := c.data("Subject: no from\r\n\r\nx\r\n"); code != 550 {
		t.Fatalf("no From: %d %s", code, msg)
	}
	// Two addresses, one not hers.
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	if code, _ := c.data("From: " + alice + ", " + bob + "\r\n\r\nx\r\n"); code != 550 {
		t.Fatalf("From with a foreign second address: %d", code)
	}
	if n := len(e.queued()); n != 1 {
		t.Fatalf("%d messages queued, want 1", n)
	}
}

func TestHeaderFromCheckOff(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.CheckHeaderFrom = false })
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	if code, msg := c.data(message(bob, "rcpt@example.net", "")); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
}

func TestOversize(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	// Declared too big: refused at MAIL.
	code, msg := c.cmd("MAIL FROM:<%s> SIZE=%d", alice, 1<<20)
	if code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Fatalf("MAIL SIZE too big: %d %s", code, msg)
	}
	// Undeclared and too big: refused after DATA, nothing queued.
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	big := strings.Repeat(strings.Repeat("x", 998)+"\r\n", 100)
	code, msg = c.data(message(alice, "rcpt@example.net", "") + big)
	if code != 552 || !strings.HasPrefix(msg, "5.3.4") {
		t.Fatalf("oversize DATA: %d %s", code, msg)
	}
	// The session goes on.
	c.must(250, "", "MAIL FROM:<%s>", alice)
	if n := len(e.queued()); n != 0 {
		t.Fatalf("%d messages queued", n)
	}
}

func TestTooManyRecipients(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	for i := range 3 {
		c.must(250, "", "RCPT TO:<r%d@example.net>", i)
	}
	c.must(452, "4.5.3", "RCPT TO:<r4@example.net>")
	if code, _ := c.data(message(alice, "r0@example.net", "")); code != 250 {
		t.Fatal(code)
	}
	for _, body := range e.queued() {
		_ = body
	}
}

func TestRecipientSyntax(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(501, "5.", "RCPT TO:<nodomain>")
	c.must(553, "5.6.7", "RCPT TO:<jürgen@example.net>") // no SMTPUTF8 in MAIL
}

// TestSmuggling sends each SMTP smuggling sequence followed by a second,
// smuggled transaction inside one DATA. Exactly one message may result
// from the client's one DATA, or none — never two — and nothing queued may
// contain a bare CR or LF that a next hop could read as end of data.
func TestSmuggling(t *testing.T) {
	seqs := map[string]string{
		"LF.LF":     "\n.\n",
		"LF.CRLF":   "\n.\r\n",
		"CR.CR":     "\r.\r",
		"CRLF.CR":   "\r\n.\r",
		"CR.CRLF":   "\r.\r\n",
		"CRLF.LF":   "\r\n.\n",
		"LF.CR":     "\n.\r",
		"CRLF.CRCR": "\r\n.\r\r\n",
	}
	for name, seq := range seqs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			c := e.authed(alice, alicePW)
			c.must(250, "", "MAIL FROM:<%s>", alice)
			c.must(250, "", "RCPT TO:<rcpt@example.net>")
			smuggled := "MAIL FROM:<" + alice + ">\r\nRCPT TO:<victim@example.net>\r\nDATA\r\n" +
				"From: <ceo@example.org>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n"
			code, _ := c.data(message(alice, "rcpt@example.net", "") + "before" + seq + smuggled)
			// Whatever the reply, the session must be in sync: NOOP answers 250.
			c.must(250, "", "NOOP")
			q := e.queued()
			if len(q) > 1 {
				t.Fatalf("%d messages from one DATA", len(q))
			}
			if code == 250 && len(q) != 1 {
				t.Fatalf("250 but %d messages queued", len(q))
			}
			for _, body := range q {
				if strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") ||
					strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\r") {
					t.Fatalf("a bare CR or LF was queued:\n%q", body)
				}
			}
		})
	}
}

func TestBareLFRefusedWithClearReply(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	code, msg := c.data("From: <" + alice + ">\r\n\r\nline one\nline two\r\n")
	if code != 550 || !strings.HasPrefix(msg, "5.6.0") {
		t.Fatalf("bare LF: %d %s", code, msg)
	}
}

// failingQueue fails every Enqueue after reading the whole body.
type failingQueue struct{ queue.Queue }

func (failingQueue) Enqueue(_ context.Context, _ *queue.Envelope, r io.Reader) (string, error) {
	io.Copy(io.Discard, r)
	return "", io.ErrShortWrite
}

func TestQueueFailureIs451(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Queue = failingQueue{o.Queue} })
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<rcpt@example.net>")
	code, msg := c.data(message(alice, "rcpt@example.net", ""))
	if code != 451 || !strings.HasPrefix(msg, "4.3.0") || strings.Contains(msg, "short write") {
		t.Fatalf("queue failure: %d %s", code, msg)
	}
}

func TestOAuthMechanisms(t *testing.T) {
	e := newEnv(t)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	// OAUTHBEARER (RFC 7628) with the initial response.
	c := e.dialTLS()
	c.ehlo()
	c.must(235, "", "AUTH OAUTHBEARER %s", b64("n,a="+alice+",\x01host=relay.test\x01port=465\x01auth=Bearer good-"+alice+"\x01\x01"))
	c.must(250, "", "MAIL FROM:<%s>", alice)

	// XOAUTH2 without the initial response.
	c = e.dialTLS()
	c.ehlo()
	c.must(334, "", "AUTH XOAUTH2")
	c.must(235, "", "%s", b64("user="+bob+"\x01auth=Bearer good-"+bob+"\x01\x01"))

	// A bad token: the JSON error challenge, the client's dummy reply, then 535.
	c = e.dialTLS()
	c.ehlo()
	ch := c.must(334, "", "AUTH OAUTHBEARER %s", b64("n,,\x01auth=Bearer bad\x01\x01"))
	js, _ := base64.StdEncoding.DecodeString(ch)
	if !strings.Contains(string(js), `"status":"invalid_token"`) {
		t.Fatalf("error challenge %q", js)
	}
	c.must(535, "5.7.8", "%s", b64("\x01"))

	c.must(334, "", "AUTH XOAUTH2 %s", b64("user="+bob+"\x01auth=Bearer bad\x01\x01"))
	c.must(535, "5.7.8", "")

	// The SASL user must be the token's.
	c = e.dialTLS()
	c.ehlo()
	c.must(334, "", "AUTH XOAUTH2 %s", b64("user="+bob+"\x01auth=Bearer good-"+alice+"\x01\x01"))
	c.must(535, "5.7.8", "")
}

func TestAuthBackendDownIs454(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Auth = newAuthWith(tokenBackend{down: true})
	})
	c := e.dialTLS()
	c.ehlo()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	c.must(454, "4.7.0", "AUTH XOAUTH2 %s", b64("user="+bob+"\x01auth=Bearer good-"+bob+"\x01\x01"))
}

func TestShutdownSays421(t *testing.T) {
	e := newEnv(t)
	idle := e.authed(alice, alicePW)
	busy := e.authed(bob, bobPW)
	busy.must(250, "", "MAIL FROM:<%s>", bob)
	busy.must(250, "", "RCPT TO:<rcpt@example.net>")
	busy.must(354, "", "DATA")
	io.WriteString(busy.conn, "From: <"+bob+">\r\n\r\nhalf")

	done := make(chan struct{})
	go func() { e.shutdown(); close(done) }()

	// The idle session is told at once.
	idle.expect(421)
	// The transaction in progress may finish and is queued.
	io.WriteString(busy.conn, " done\r\n.\r\n")
	busy.expect(250)
	busy.expect(421) // then it is told too, without asking
	<-done
	if n := len(e.queued()); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
	// New connections are refused.
	if c, err := tls.Dial("tcp", e.addr465, &tls.Config{InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Fatal("listener still open after shutdown")
	}
}

// TestSMTPUTF8OnlyWhenNeeded: a client that sends SMTPUTF8 on an all-ASCII
// message (Go's net/smtp always does) must not make the message
// undeliverable to next hops without SMTPUTF8.
func TestSMTPUTF8OnlyWhenNeeded(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s> SMTPUTF8", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	if code, _ := c.data(message(alice, "r@example.net", "")); code != 250 {
		t.Fatal(code)
	}
	c.must(250, "", "MAIL FROM:<%s> SMTPUTF8", alice)
	c.must(250, "", "RCPT TO:<jürgen@example.net>")
	if code, _ := c.data(message(alice, "jürgen@example.net", "")); code != 250 {
		t.Fatal(code)
	}
	c.must(250, "", "MAIL FROM:<%s> SMTPUTF8", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	if code, _ := c.data(message(alice, "r@example.net", "Subject: Grüße\r\n")); code != 250 {
		t.Fatal(code)
	}
	want := map[int]bool{0: false, 1: true, 2: true}
	got := map[int]bool{}
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		m, err := e.q.Lease(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := e.q.Body(context.Background(), m)
		b, _ := io.ReadAll(rc)
		rc.Close()
		switch {
		case strings.Contains(string(b), "Grüße"):
			got[2] = m.Envelope.SMTPUTF8
		case strings.Contains(m.Envelope.Recipients[0].Addr, "ü"):
			got[1] = m.Envelope.SMTPUTF8
		default:
			got[0] = m.Envelope.SMTPUTF8
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: SMTPUTF8=%v, want %v", i, got[i], want[i])
		}
	}
}

// TestHeaderFromAnyCharset: a display name in a charset Go does not decode
// (Outlook's windows-1252) must not make the From field "invalid".
func TestHeaderFromAnyCharset(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	for _, from := range []string{
		"=?windows-1252?Q?J=F6rg_M=FCller?= <" + alice + ">",
		"=?iso-2022-jp?B?GyRCJTUlcyVXJWsbKEI=?= <" + alice + ">",
		"\"Alice, Example\" <" + alias + ">",
	} {
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(250, "", "RCPT TO:<r@example.net>")
		if code, msg := c.data("From: " + from + "\r\nSubject: x\r\n\r\nbody\r\n"); code != 250 {
			t.Errorf("From: %s: %d %s", from, code, msg)
		}
	}
	// An address literal as EHLO name stays readable in Received.
	if got := sanitizeComment("[192.0.2.1]"); got != "[192.0.2.1]" {
		t.Errorf("address literal HELO: %q", got)
	}
	if got := sanitizeComment("[evil) (x]"); strings.ContainsAny(got, "()") {
		t.Errorf("HELO not sanitized: %q", got)
	}
}

// TestBDAT: CHUNKING (RFC 3030) goes through the same checks and queue as
// DATA, bare LF included.
func TestBDAT(t *testing.T) {
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	msg := message(alice, "r@example.net", "")
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	half := len(msg) / 2
	io.WriteString(c.conn, fmt.Sprintf("BDAT %d\r\n%s", half, msg[:half]))
	c.expect(250)
	io.WriteString(c.conn, fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-half, msg[half:]))
	if msg := c.expect(250); !strings.Contains(msg, "queued as") {
		t.Fatalf("BDAT LAST: %s", msg)
	}
	bad := "From: <" + alice + ">\r\n\r\nbare\nLF\r\n"
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<r@example.net>")
	io.WriteString(c.conn, fmt.Sprintf("BDAT %d LAST\r\n%s", len(bad), bad))
	if code, _ := c.read(); code != 550 {
		t.Fatalf("BDAT with a bare LF: %d", code)
	}
	if n := len(e.queued()); n != 1 {
		t.Fatalf("%d queued, want 1", n)
	}
}
