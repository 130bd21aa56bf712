package relay

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestAbortedBDATKeepsNextTransaction (issue 8 item 1): a BDAT transaction
// aborted by RSET, EHLO or an oversized chunk must not touch the next
// transaction. go-smtp runs Data for BDAT in its own goroutine and does not
// wait for it when the transaction is aborted; the next, pipelined
// MAIL/RCPT/DATA must be stored with its own sender and recipients.
func TestAbortedBDATKeepsNextTransaction(t *testing.T) {
	chunk := "From: <" + alice + ">\r\nSubject: aborted\r\n\r\npart one\r\n"
	aborts := map[string]string{
		"RSET":      "RSET\r\n",
		"EHLO":      "EHLO again.test\r\n",
		"oversized": fmt.Sprintf("BDAT %d\r\n%s", 70*1000, strings.Repeat(strings.Repeat("x", 998)+"\r\n", 70)),
	}
	for name, abort := range aborts {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.Queue = slowFailQueue{o.Queue, 150 * time.Millisecond} })
			c := e.authed(alice, alicePW)
			c.must(250, "", "MAIL FROM:<%s>", alice)
			c.must(250, "", "RCPT TO:<first@example.net>")
			// One write: a chunk, the abort, and the next transaction.
			io.WriteString(c.conn, fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk)+abort+
				"MAIL FROM:<"+alias+">\r\nRCPT TO:<second@example.net>\r\nRCPT TO:<third@example.net>\r\nDATA\r\n")
			c.expect(250) // the chunk
			if code, msg := c.read(); code/100 == 2 && name == "oversized" {
				t.Fatalf("oversized chunk: %d %s", code, msg)
			}
			c.expect(250) // MAIL
			c.expect(250) // RCPT
			c.expect(250) // RCPT
			c.expect(354)
			// The body comes later, while the aborted Data is still ending.
			time.Sleep(300 * time.Millisecond)
			io.WriteString(c.conn, message(alias, "second@example.net", "")+".\r\n")
			code, msg := c.read()
			if code != 250 {
				t.Fatalf("second transaction: %d %s", code, msg)
			}
			got := e.stored()
			if len(got) != 1 {
				t.Fatalf("%d messages stored, want 1", len(got))
			}
			m, ok := got[queueID(msg)]
			if !ok {
				t.Fatalf("queue ID %s from the reply is not stored", queueID(msg))
			}
			var rcpts []string
			for _, r := range m.env.Recipients {
				rcpts = append(rcpts, r.Addr)
			}
			if m.env.From != alias || !slices.Equal(rcpts, []string{"second@example.net", "third@example.net"}) {
				t.Fatalf("stored envelope from=%q rcpts=%q, want %q and the second transaction's recipients", m.env.From, rcpts, alias)
			}
			if !strings.HasSuffix(m.body, message(alias, "second@example.net", "")) {
				t.Fatalf("stored body is not the second transaction's:\n%s", m.body)
			}
		})
	}
}

// TestGoSMTPResultField: settle relies on go-smtp v0.25.1's unexported
// Conn.dataResult (see bdatResult); an upgrade that changes it must fail
// here, not as a rare race.
func TestGoSMTPResultField(t *testing.T) {
	f, ok := reflect.TypeFor[smtp.Conn]().FieldByName("dataResult")
	if !ok || f.Type != reflect.TypeFor[chan error]() {
		t.Fatalf("go-smtp's Conn.dataResult is gone or changed (%v): revisit txnState.settle", f.Type)
	}
}

// TestStartTLSMidBDAT (issue 8 review): with RELAY_INSECURE_AUTH a
// transaction can be open when STARTTLS comes; go-smtp ends it without
// waiting for its BDAT goroutine, which then sends its result to whatever
// result channel the connection has by then. The next transaction, in
// the session after STARTTLS, must get its own reply and store exactly
// its own message (and -race must see no race on that channel).
func TestStartTLSMidBDAT(t *testing.T) {
	for _, chunk := range []string{"", "From: <" + alice + ">\r\nSubject: aborted\r\n"} {
		t.Run(fmt.Sprintf("chunk%d", len(chunk)), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.InsecureAuth = true })
			c := e.dial()
			c.ehlo()
			c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
			c.must(250, "", "MAIL FROM:<%s>", alice)
			c.must(250, "", "RCPT TO:<first@example.net>")
			io.WriteString(c.conn, fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
			c.expect(250)
			c.starttls()
			c.ehlo()
			c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
			c.must(250, "", "MAIL FROM:<%s>", alias)
			c.must(250, "", "RCPT TO:<second@example.net>")
			msg := message(alias, "second@example.net", "")
			code, text := c.cmd("BDAT %d LAST\r\n%s", len(msg), strings.TrimSuffix(msg, "\r\n"))
			if code != 250 {
				t.Fatalf("transaction after STARTTLS: %d %s", code, text)
			}
			got := e.stored()
			if len(got) != 1 {
				t.Fatalf("%d messages stored, want 1", len(got))
			}
			m, ok := got[queueID(text)]
			if !ok || m.env.From != alias || len(m.env.Recipients) != 1 || m.env.Recipients[0].Addr != "second@example.net" {
				t.Fatalf("stored %+v, want the second transaction's envelope", m.env)
			}
		})
	}
}
