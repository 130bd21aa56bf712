package relay

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// logCapture collects a server's log lines (JSON) for tests to search.
type logCapture struct{ testutil.LogBuffer }

// lines returns the log lines that contain every one of parts.
func (l *logCapture) lines(parts ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// scanEnv is a submission server scanning with the clamd at addr.
func scanEnv(t *testing.T, addr string, tune ...func(*Options)) (*env, *logCapture) {
	t.Helper()
	c, err := NewClamd(addr, 400*time.Millisecond, 4)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logCapture{}
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.Scan = &ScanOptions{Scanner: c}
		for _, f := range tune {
			f(o)
		}
	})
	return e, logs
}

func infectedMessage(from, to string) string {
	return message(from, to, "") + "Attachment follows.\r\n" + eicar + "\r\n"
}

// authedTLS is the chain greeted on 465 → EHLO → AUTH PLAIN.
func (e *env) authedTLS(user, pw string) *client {
	c := e.dialTLS()
	c.ehlo()
	c.must(235, "2.", "AUTH PLAIN %s", plain(user, pw))
	return c
}

// submit runs one whole transaction on c and returns the reply to the data.
func submit(c *client, from, to, msg string) (int, string) {
	c.t.Helper()
	c.must(250, "", "MAIL FROM:<%s>", from)
	c.must(250, "", "RCPT TO:<%s>", to)
	return c.data(msg)
}

// TestScanSubmission: on 587 after STARTTLS and on 465, with DATA and BDAT
// LAST, a clean message is queued and one carrying EICAR is refused with
// 554 5.7.1 naming the signature, nothing queued, and logged with the
// user, the client's address and the signature.
func TestScanSubmission(t *testing.T) {
	f := newFakeClamd(t, "")
	e, logs := scanEnv(t, f.addr())
	const rcpt = "r@example.net"

	c := e.authed(alice, alicePW)
	if code, msg := submit(c, alice, rcpt, message(alice, rcpt, "")); code != 250 {
		t.Fatalf("clean on 587: %d %s", code, msg)
	}
	code, msg := submit(c, alice, rcpt, infectedMessage(alice, rcpt))
	if code != 554 || !strings.HasPrefix(msg, "5.7.1 ") || !strings.Contains(msg, "Eicar-Test-Signature") {
		t.Fatalf("EICAR on 587: %d %s", code, msg)
	}
	// BDAT LAST waits for the verdict as the final dot does.
	inf := infectedMessage(alice, rcpt)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", rcpt)
	io.WriteString(c.conn, fmt.Sprintf("BDAT %d\r\n%sBDAT %d LAST\r\n%s", 40, inf[:40], len(inf)-40, inf[40:]))
	c.expect(250)
	if code, msg := c.read(); code != 554 || !strings.Contains(msg, "5.7.1") {
		t.Fatalf("EICAR in BDAT: %d %s", code, msg)
	}
	c.must(250, "", "NOOP") // the session goes on

	s := e.authedTLS(bob, bobPW)
	if code, msg := submit(s, bob, rcpt, infectedMessage(bob, rcpt)); code != 554 || !strings.Contains(msg, "Eicar-Test-Signature") {
		t.Fatalf("EICAR on 465: %d %s", code, msg)
	}
	if code, msg := submit(s, bob, rcpt, message(bob, rcpt, "")); code != 250 {
		t.Fatalf("clean on 465: %d %s", code, msg)
	}

	q := e.queued()
	if len(q) != 2 {
		t.Fatalf("%d queued, want the 2 clean ones", len(q))
	}
	for id, body := range q {
		if strings.Contains(body, "EICAR") {
			t.Errorf("%s: an infected message was queued", id)
		}
	}
	for _, user := range []string{alice, bob} {
		if l := logs.lines(`virus found"`, `"user":"`+user+`"`, `"remote":"127.0.0.1"`, `"signature":"Eicar-Test-Signature"`); len(l) == 0 {
			t.Errorf("no log line for %s's virus with user, remote and signature:\n%s", user, logs)
		}
	}
	st := e.srv.ScanStats()
	if st.Clean != 2 || st.Infected != 3 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	if n := e.srv.Stats().Refused; n != 3 {
		t.Errorf("refused %d, want 3", n)
	}
}

// TestScanLargeMessages: a message larger than the queue's small-message
// journal and than the socket buffers is streamed to both; infected at its
// very end, nothing of it is queued; clean, it is stored whole.
func TestScanLargeMessages(t *testing.T) {
	f := newFakeClamd(t, "")
	e, _ := scanEnv(t, f.addr(), func(o *Options) { o.MaxMessageBytes = 4 << 20 })
	const rcpt = "r@example.net"
	filler := strings.Repeat(strings.Repeat("y", 76)+"\r\n", 12000) // ~940 KB
	c := e.authed(alice, alicePW)
	if code, msg := submit(c, alice, rcpt, message(alice, rcpt, "")+filler+eicar+"\r\n"); code != 554 {
		t.Fatalf("large infected: %d %s", code, msg)
	}
	if code, msg := submit(c, alice, rcpt, message(alice, rcpt, "")+filler); code != 250 {
		t.Fatalf("large clean: %d %s", code, msg)
	}
	q := e.queued()
	if len(q) != 1 {
		t.Fatalf("%d queued, want 1", len(q))
	}
	for _, body := range q {
		if !strings.HasSuffix(body, filler) {
			t.Errorf("stored body is not the whole message (%d bytes)", len(body))
		}
	}
	if got := f.streams.Load(); got < int64(2*len(filler)) {
		t.Errorf("clamd got %d bytes, want both messages (%d+)", got, 2*len(filler))
	}
}

// TestScanFailClosed: clamd down, reading nothing, never answering,
// closing mid-stream, answering garbage or an error, or answering after
// the timeout: 451 4.7.1, nothing queued, within the timeout's bounds.
func TestScanFailClosed(t *testing.T) {
	const rcpt = "r@example.net"
	big := strings.Repeat(strings.Repeat("z", 76)+"\r\n", 6000) // past the socket buffers
	for _, mode := range []string{"down", "hang", "hang-reply", "close-mid", "garbage", "error", "slow"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeClamd(t, mode)
			addr := f.addr()
			if mode == "down" {
				f.close()
			}
			e, logs := scanEnv(t, addr, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
			c := e.authed(alice, alicePW)
			for _, msg := range []string{message(alice, rcpt, ""), message(alice, rcpt, "") + big} {
				start := time.Now()
				code, text := submit(c, alice, rcpt, msg)
				if code != 451 || !strings.HasPrefix(text, "4.7.1 ") {
					t.Fatalf("%d bytes: %d %s", len(msg), code, text)
				}
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("reply after %v", took)
				}
			}
			if n := len(e.queued()); n != 0 {
				t.Fatalf("%d queued", n)
			}
			if st := e.srv.ScanStats(); st.Errors != 2 {
				t.Errorf("stats %+v", st)
			}
			if len(logs.lines("fail closed")) != 2 {
				t.Errorf("want an ERROR per message:\n%s", logs)
			}
		})
	}
}

// TestScanFailOpen: with FailOpen a message is accepted unscanned when
// clamd is down or fails mid-stream, with a WARN per message and a count.
func TestScanFailOpen(t *testing.T) {
	const rcpt = "r@example.net"
	for _, mode := range []string{"down", "close-mid", "garbage"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeClamd(t, mode)
			addr := f.addr()
			if mode == "down" {
				f.close()
			}
			e, logs := scanEnv(t, addr, func(o *Options) { o.Scan.FailOpen = true })
			c := e.authed(alice, alicePW)
			for range 2 {
				if code, msg := submit(c, alice, rcpt, infectedMessage(alice, rcpt)); code != 250 {
					t.Fatalf("%d %s", code, msg)
				}
			}
			if n := len(e.queued()); n != 2 {
				t.Fatalf("%d queued", n)
			}
			if st := e.srv.ScanStats(); st.UnscannedFailOpen != 2 || st.Errors != 2 {
				t.Errorf("stats %+v", st)
			}
			if l := logs.lines(`"level":"WARN"`, "accepted unscanned"); len(l) != 2 {
				t.Errorf("%d WARN lines, want 2:\n%s", len(l), logs)
			}
		})
	}
}

// TestScanSizePolicy: a message over the scanner's limit is never scanned
// in part. Refused: 552 5.3.4 at MAIL when its SIZE says so, after the data
// otherwise. Accepted: a declared one is queued unscanned with the
// X-Edgerelay-Scan field; an undeclared one still gets 552 5.3.4. clamd's
// own limit, lower than the configured one, is 552 5.3.4 too.
func TestScanSizePolicy(t *testing.T) {
	const rcpt = "r@example.net"
	big := message(alice, rcpt, "") + strings.Repeat(strings.Repeat("s", 76)+"\r\n", 300) // ~23 KB
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprint("accept=", accept), func(t *testing.T) {
			f := newFakeClamd(t, "")
			e, _ := scanEnv(t, f.addr(), func(o *Options) {
				o.MaxMessageBytes = 1 << 20
				o.Scan.MaxBytes = 8 << 10
				o.Scan.AcceptOversize = accept
			})
			c := e.dial()
			c.ehlo()
			c.starttls()
			ehlo := c.ehlo()
			c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
			// Refused: EHLO's SIZE is the scanner's limit less the room for
			// the fix-ups (go-smtp then refuses more, 552 5.3.4).
			wantSize := "SIZE 1046528"
			if !accept {
				wantSize = "SIZE 6144"
			}
			if !strings.Contains(ehlo, wantSize) {
				t.Errorf("EHLO: %s, want %s", ehlo, wantSize)
			}
			code, msg := c.cmd("MAIL FROM:<%s> SIZE=%d", alice, len(big))
			if accept {
				if code != 250 {
					t.Fatalf("declared oversize, accept: MAIL %d %s", code, msg)
				}
				c.must(250, "", "RCPT TO:<%s>", rcpt)
				if code, msg := c.data(big); code != 250 {
					t.Fatalf("declared oversize, accept: %d %s", code, msg)
				}
			} else if code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Fatalf("declared oversize, refuse: MAIL %d %s", code, msg)
			}
			c.must(250, "", "RSET")
			code, msg = submit(c, alice, rcpt, big) // undeclared
			if code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Fatalf("undeclared oversize: %d %s", code, msg)
			}
			if code, msg := submit(c, alice, rcpt, message(alice, rcpt, "")); code != 250 {
				t.Fatalf("small: %d %s", code, msg)
			}
			if got := f.streams.Load(); got > 8<<10+2048 {
				t.Errorf("clamd got %d bytes: more than its limit", got)
			}
			q := e.queued()
			want := 1
			if accept {
				want = 2
			}
			if len(q) != want {
				t.Fatalf("%d queued, want %d", len(q), want)
			}
			n := 0
			for _, body := range q {
				if strings.Contains(body, "\r\nX-Edgerelay-Scan: not scanned: larger than the virus scanner's limit of 8192 bytes\r\n") {
					n++
				}
			}
			if accept && n != 1 || !accept && n != 0 {
				t.Errorf("%d messages with the not-scanned field", n)
			}
			st := e.srv.ScanStats()
			if accept && (st.Oversize != 1 || st.UnscannedOversize != 1) {
				t.Errorf("stats %+v", st)
			}
		})
	}
	t.Run("clamd-limit", func(t *testing.T) {
		f := newFakeClamd(t, "")
		f.maxBytes = 4 << 10
		e, logs := scanEnv(t, f.addr(), func(o *Options) {
			o.MaxMessageBytes = 1 << 20
			o.Scan.MaxBytes = 64 << 10
			o.Scan.FailOpen = true // no matter: never accepted unscanned in part
		})
		c := e.authed(alice, alicePW)
		if code, msg := submit(c, alice, rcpt, big); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
			t.Fatalf("%d %s", code, msg)
		}
		if n := len(e.queued()); n != 0 {
			t.Fatalf("%d queued", n)
		}
		if len(logs.lines("StreamMaxLength")) != 1 {
			t.Errorf("no ERROR about the limits:\n%s", logs)
		}
	})
}

// TestScanSkipSubmission: SkipSubmission leaves submissions unscanned.
func TestScanSkipSubmission(t *testing.T) {
	f := newFakeClamd(t, "")
	e, _ := scanEnv(t, f.addr(), func(o *Options) { o.Scan.SkipSubmission = true })
	c := e.authed(alice, alicePW)
	if code, msg := submit(c, alice, "r@example.net", infectedMessage(alice, "r@example.net")); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	if f.scans.Load() != 0 {
		t.Errorf("clamd was asked")
	}
}
