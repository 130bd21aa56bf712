package relay

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Attack tests of the virus scan (issue 11 review): a hostile client, a
// hostile or broken clamd.

// replyClamd is a clamd stand-in on 127.0.0.1 that reads one zINSTREAM
// stream to its end and answers reply (raw bytes, NUL included or not),
// then closes, or with hang keeps the connection until the test ends.
func replyClamd(t *testing.T, reply string, hang bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := readUntilNUL(c); err != nil {
					return
				}
				var hdr [4]byte
				for {
					if _, err := io.ReadFull(c, hdr[:]); err != nil {
						return
					}
					n := binary.BigEndian.Uint32(hdr[:])
					if n == 0 {
						break
					}
					if _, err := io.CopyN(io.Discard, c, int64(n)); err != nil {
						return
					}
				}
				c.Write([]byte(reply))
				if hang {
					<-stop
				}
			}()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// TestAttackScanDeclaredSizeBypass: with AcceptOversize, a client that
// declares a SIZE over the scanner's limit and then sends a small message
// carrying EICAR must not get it queued unscanned: the message fits the
// scanner, only its (client-chosen) declaration did not.
func TestAttackScanDeclaredSizeBypass(t *testing.T) {
	f := newFakeClamd(t, "")
	e, _ := scanEnv(t, f.addr(), func(o *Options) {
		o.MaxMessageBytes = 1 << 20
		o.Scan.MaxBytes = 8 << 10
		o.Scan.AcceptOversize = true
	})
	const rcpt = "r@example.net"
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s> SIZE=%d", alice, 500<<10)
	c.must(250, "", "RCPT TO:<%s>", rcpt)
	code, msg := c.data(infectedMessage(alice, rcpt))
	for id, body := range e.queued() {
		if strings.Contains(body, "EICAR") {
			t.Errorf("%s: infected message queued unscanned after a lying SIZE (reply %d %s)", id, code, msg)
		}
	}
	if code != 554 {
		t.Errorf("reply %d %s, want 554 5.7.1", code, msg)
	}
}

// TestAttackScanOddSignatureFailOpen: clamd says FOUND, but the
// signature's name is not plain printable ASCII or is long (third-party
// databases and YARA rules name freely). That is a detection: with
// FailOpen it must not be taken for a scanner failure and queued.
func TestAttackScanOddSignatureFailOpen(t *testing.T) {
	for name, sig := range map[string]string{
		"utf8":    "Sanesecurity.Phish.Ünicode",
		"long":    "YARA." + strings.Repeat("r", 250),
		"control": "Evil\x1b[31mSig",
		"crlf":    "Evil\r\n250 OK",
	} {
		t.Run(name, func(t *testing.T) {
			addr := replyClamd(t, "stream: "+sig+" FOUND\x00", false)
			e, _ := scanEnv(t, addr, func(o *Options) { o.Scan.FailOpen = true })
			const rcpt = "r@example.net"
			c := e.authed(alice, alicePW)
			code, msg := submit(c, alice, rcpt, message(alice, rcpt, ""))
			if code != 554 || !strings.HasPrefix(msg, "5.7.1 ") {
				t.Errorf("clamd FOUND %q: reply %d %s, want 554 5.7.1", sig, code, msg)
			}
			if strings.ContainsAny(msg, "\r\n\x1b") {
				t.Errorf("reply carries control characters: %q", msg)
			}
			if n := len(e.queued()); n != 0 {
				t.Errorf("%d queued: a detection accepted as a scanner failure", n)
			}
			c.must(250, "", "NOOP") // one reply, the session goes on
		})
	}
}

// TestAttackScanClamdSizeLimitResetFailOpen: clamd answers "INSTREAM size
// limit exceeded" and closes with the client's chunks unread (a reset).
// Whatever FailOpen says, that is 552 5.3.4, never accepted unscanned.
func TestAttackScanClamdSizeLimitResetFailOpen(t *testing.T) {
	f := newFakeClamd(t, "")
	f.maxBytes = 4 << 10
	e, _ := scanEnv(t, f.addr(), func(o *Options) {
		o.MaxMessageBytes = 8 << 20
		o.Scan.MaxBytes = 8 << 20
		o.Scan.FailOpen = true
	})
	const rcpt = "r@example.net"
	big := message(alice, rcpt, "") + strings.Repeat(strings.Repeat("q", 76)+"\r\n", 40000) // ~3 MB
	c := e.authed(alice, alicePW)
	for range 3 {
		code, msg := submit(c, alice, rcpt, big)
		if code != 552 {
			t.Errorf("clamd's size limit with a reset, FailOpen: %d %s, want 552 5.3.4", code, msg)
		}
	}
	if n := len(e.queued()); n != 0 {
		t.Errorf("%d queued unscanned", n)
	}
}

// TestAttackScanReplyShapes: replies that are not a clean verdict are
// never 250 (fail closed): no NUL and the connection kept open, an endless
// reply, a huge one, a partial one cut by the close, a second reply
// glued to the first, an OK for the wrong stream name.
func TestAttackScanReplyShapes(t *testing.T) {
	for name, reply := range map[string]string{
		"no-nul-open": "stream: OK",
		"huge":        strings.Repeat("A", 1<<20) + "\x00",
		"partial":     "stream: O",
		"ok-lower":    "stream: ok\x00",
		"idsession":   "1: stream: OK\x00",
		"ok-space":    "stream: OK \x00",
		"found-first": "stream: Eicar FOUND\x00stream: OK\x00",
	} {
		t.Run(name, func(t *testing.T) {
			addr := replyClamd(t, reply, name == "no-nul-open")
			e, _ := scanEnv(t, addr)
			const rcpt = "r@example.net"
			c := e.authed(alice, alicePW)
			code, msg := submit(c, alice, rcpt, message(alice, rcpt, ""))
			if code == 250 {
				t.Errorf("reply %q: 250 %s", reply[:min(len(reply), 40)], msg)
			}
			if name == "found-first" && code != 554 {
				t.Errorf("reply %q: %d %s, want 554", reply, code, msg)
			}
			c.must(250, "", "NOOP")
		})
	}
}

// TestAttackScanSlotsFreedOnClientDrop: clients that drop the connection
// mid-DATA, or RSET mid-BDAT, give their clamd connection back: the pool
// (4 slots here) still scans after many of them.
func TestAttackScanSlotsFreedOnClientDrop(t *testing.T) {
	f := newFakeClamd(t, "")
	e, _ := scanEnv(t, f.addr())
	const rcpt = "r@example.net"
	msg := message(alice, rcpt, "") + strings.Repeat("body line\r\n", 2000)
	for i := range 12 {
		c := e.authed(alice, alicePW)
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(250, "", "RCPT TO:<%s>", rcpt)
		if i%2 == 0 {
			c.must(354, "", "DATA")
			io.WriteString(c.conn, msg[:len(msg)/2])
			time.Sleep(20 * time.Millisecond)
			c.conn.Close()
			continue
		}
		io.WriteString(c.conn, "BDAT 4000\r\n"+msg[:4000])
		c.expect(250)
		time.Sleep(20 * time.Millisecond)
		c.must(250, "", "RSET")
		c.conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.open.Load(); n != 0 {
		t.Errorf("%d clamd connections still open after the clients left", n)
	}
	c := e.authed(bob, bobPW)
	if code, text := submit(c, bob, rcpt, message(bob, rcpt, "")); code != 250 {
		t.Fatalf("after the drops: %d %s", code, text)
	}
	if code, text := submit(c, bob, rcpt, infectedMessage(bob, rcpt)); code != 554 {
		t.Fatalf("after the drops, EICAR: %d %s", code, text)
	}
	if n := len(e.queued()); n != 1 {
		t.Errorf("%d queued, want 1", n)
	}
}

// TestAttackRealClamdStreamMaxBoundary: against a real clamd, a stream of
// exactly StreamMaxLength bytes is scanned (the relay's check, n >
// MaxBytes, agrees) and one byte more is clamd's size limit.
func TestAttackRealClamdStreamMaxBoundary(t *testing.T) {
	r := startRealClamd(t, "64K")
	c, err := NewClamd(r.tcp, 5*time.Second, 2)
	if err != nil {
		t.Fatal(err)
	}
	scan := func(n int, tail string) (Verdict, error) {
		st, err := c.Begin(context.Background())
		if err != nil {
			return Verdict{}, err
		}
		defer st.Close()
		body := append(bytes.Repeat([]byte("a"), n-len(tail)), tail...)
		for len(body) > 0 { // odd chunk sizes
			k := min(len(body), 7777)
			if _, err := st.Write(body[:k]); err != nil {
				return Verdict{}, err
			}
			body = body[k:]
		}
		return st.Finish()
	}
	tail := "\r\n" + eicar + "\r\n"
	if v, err := scan(64<<10, tail); err != nil || !v.Infected {
		t.Errorf("exactly StreamMaxLength with EICAR: %+v %v", v, err)
	}
	if v, err := scan(64<<10, ""); err != nil || v.Infected {
		t.Errorf("exactly StreamMaxLength, clean: %+v %v", v, err)
	}
	if _, err := scan(64<<10+1, ""); err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Errorf("StreamMaxLength+1: %v, want the size limit", err)
	}
}

// TestAttackScanDeclaredOversizeOutcomes: with AcceptOversize, a message
// that declared a size over the limit is scanned until it goes past it.
// Really over: queued unscanned with the field and a count, clamd down or
// not. Within the limit with clamd down: the scanner's failure applies
// (451 4.7.1, fail closed), not the declaration.
func TestAttackScanDeclaredOversizeOutcomes(t *testing.T) {
	const rcpt = "r@example.net"
	big := message(alice, rcpt, "") + strings.Repeat(strings.Repeat("s", 76)+"\r\n", 300) // ~23 KB
	for _, down := range []bool{false, true} {
		f := newFakeClamd(t, "")
		addr := f.addr()
		if down {
			f.close()
		}
		e, _ := scanEnv(t, addr, func(o *Options) {
			o.MaxMessageBytes = 1 << 20
			o.Scan.MaxBytes = 8 << 10
			o.Scan.AcceptOversize = true
		})
		c := e.authed(alice, alicePW)
		c.must(250, "", "MAIL FROM:<%s> SIZE=%d", alice, len(big))
		c.must(250, "", "RCPT TO:<%s>", rcpt)
		if code, msg := c.data(big); code != 250 {
			t.Fatalf("down=%v, really over: %d %s", down, code, msg)
		}
		c.must(250, "", "MAIL FROM:<%s> SIZE=%d", alice, len(big))
		c.must(250, "", "RCPT TO:<%s>", rcpt)
		code, msg := c.data(message(alice, rcpt, ""))
		if down && code != 451 || !down && code != 250 {
			t.Fatalf("down=%v, small after a big SIZE: %d %s", down, code, msg)
		}
		q := e.queued()
		if want := map[bool]int{false: 2, true: 1}[down]; len(q) != want {
			t.Fatalf("down=%v: %d queued, want %d", down, len(q), want)
		}
		st := e.srv.ScanStats()
		if st.UnscannedOversize != 1 {
			t.Errorf("down=%v: stats %+v", down, st)
		}
	}
}

// TestAttackRealClamdReadTimeoutFailOpen: a client that pauses mid-DATA
// longer than clamd's ReadTimeout (within the relay's idle timeout) makes
// clamd end the stream with "COMMAND READ TIMED OUT". That is the client's
// doing, not a scanner outage: with FailOpen it must not queue the message
// unscanned (EICAR and all); 451 4.7.1, the client may try again.
func TestAttackRealClamdReadTimeoutFailOpen(t *testing.T) {
	r := startRealClamd(t, "1M\nReadTimeout 1\nCommandReadTimeout 1")
	e, logs := scanEnv(t, r.tcp, func(o *Options) {
		o.MaxMessageBytes = 1 << 20
		o.Scan.FailOpen = true
		o.Scan.Scanner, _ = NewClamd(r.tcp, 5*time.Second, 2)
	})
	const rcpt = "r@example.net"
	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", rcpt)
	c.must(354, "", "DATA")
	filler := message(alice, rcpt, "") + strings.Repeat("a clean line of text\r\n", 3000)
	msg := filler + eicar + "\r\n"
	cut := len(filler) // the scan has begun, clamd has the clean part
	io.WriteString(c.conn, msg[:cut])
	time.Sleep(2500 * time.Millisecond) // past clamd's ReadTimeout
	io.WriteString(c.conn, msg[cut:]+".\r\n")
	code, text := c.read()
	if code == 250 {
		t.Errorf("paused past clamd's ReadTimeout, FailOpen: 250 %s", text)
	}
	if n := len(e.queued()); n != 0 {
		t.Errorf("%d queued unscanned", n)
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("reply %d %s; logs:\n%s", code, text, logs)
	}
}

// TestAttackScanReadTimeoutReplyFailOpen: clamd's "COMMAND READ TIMED
// OUT" (the stream paused past its ReadTimeout) is 451 4.7.1 even with
// FailOpen, without a real clamd.
func TestAttackScanReadTimeoutReplyFailOpen(t *testing.T) {
	addr := replyClamd(t, "COMMAND READ TIMED OUT\x00", false)
	e, _ := scanEnv(t, addr, func(o *Options) { o.Scan.FailOpen = true })
	const rcpt = "r@example.net"
	c := e.authed(alice, alicePW)
	if code, msg := submit(c, alice, rcpt, infectedMessage(alice, rcpt)); code != 451 || !strings.HasPrefix(msg, "4.7.1 ") {
		t.Errorf("%d %s, want 451 4.7.1", code, msg)
	}
	if n := len(e.queued()); n != 0 {
		t.Errorf("%d queued unscanned", n)
	}
}

// TestAttackScanPipelinedAfterVerdict: EICAR split across BDAT chunks in
// the middle of its text, with RSET and a new transaction pipelined right
// behind BDAT LAST, and commands pipelined behind the final dot: each
// reply in order, the infected message refused, the clean one queued once.
func TestAttackScanPipelinedAfterVerdict(t *testing.T) {
	f := newFakeClamd(t, "")
	e, _ := scanEnv(t, f.addr())
	const rcpt = "r@example.net"
	c := e.authed(alice, alicePW)
	inf := infectedMessage(alice, rcpt)
	cut := strings.Index(inf, "EICAR-STANDARD") + 5
	clean := message(alice, rcpt, "")
	io.WriteString(c.conn, "MAIL FROM:<"+alice+">\r\nRCPT TO:<"+rcpt+">\r\n")
	c.expect(250)
	c.expect(250)
	io.WriteString(c.conn, "BDAT "+strconv.Itoa(cut)+"\r\n"+inf[:cut]+"BDAT "+strconv.Itoa(len(inf)-cut)+" LAST\r\n"+inf[cut:]+
		"RSET\r\nMAIL FROM:<"+alice+">\r\nRCPT TO:<"+rcpt+">\r\nDATA\r\n")
	c.expect(250)
	if code, msg := c.read(); code != 554 {
		t.Fatalf("EICAR across BDAT chunks: %d %s", code, msg)
	}
	c.expect(250) // RSET
	c.expect(250)
	c.expect(250)
	c.expect(354)
	io.WriteString(c.conn, clean+".\r\nNOOP\r\nMAIL FROM:<"+alice+">\r\nRSET\r\n")
	if code, msg := c.read(); code != 250 {
		t.Fatalf("clean after: %d %s", code, msg)
	}
	c.expect(250) // NOOP
	c.expect(250) // MAIL
	c.expect(250) // RSET
	if n := len(e.queued()); n != 1 {
		t.Errorf("%d queued, want 1", n)
	}
}
