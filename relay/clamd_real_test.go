package relay

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// realClamd is a private clamd (Debian's clamav-daemon) started as in
// shared/recipes/clamav.sh: no freshclam, a local signature database with
// EICAR only (an MD5 of the file in .hdb, its text in .ndb), listening on
// 127.0.0.1 and on a Unix socket in a temporary directory.
type realClamd struct {
	tcp, unix string // tcp://…, unix://…
	cmd       *exec.Cmd
	log       string
}

// startRealClamd starts clamd, or skips the test when clamd is not
// installed (a failure with EDGERELAY_REQUIRE_CLIENTS=1, as in CI).
func startRealClamd(t *testing.T, streamMax string) *realClamd {
	t.Helper()
	bin, err := exec.LookPath("clamd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/clamd"); serr == nil {
			bin = "/usr/sbin/clamd"
		}
	}
	if bin == "" {
		if os.Getenv("EDGERELAY_REQUIRE_CLIENTS") == "1" {
			t.Fatal("clamd is not installed (apt-get install clamav-daemon) and EDGERELAY_REQUIRE_CLIENTS=1")
		}
		t.Skip("clamd is not installed (apt-get install clamav-daemon): real-clamd tests skipped")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(eicar))
	write := func(name, s string) {
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(db, "local.hdb"), fmt.Sprintf("%s:%d:Test.EICAR-Local.HDB\n", hex.EncodeToString(sum[:]), len(eicar)))
	write(filepath.Join(db, "local.ndb"), "Test.EICAR-Local.NDB:0:*:"+hex.EncodeToString([]byte("EICAR-STANDARD-ANTIVIRUS-TEST-FILE"))+"\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	sock := filepath.Join(dir, "clamd.sock")
	logf := filepath.Join(dir, "clamd.log")
	conf := filepath.Join(dir, "clamd.conf")
	write(conf, fmt.Sprintf(`Foreground yes
DatabaseDirectory %s
TCPSocket %d
TCPAddr 127.0.0.1
LocalSocket %s
PidFile %s/clamd.pid
LogFile %s
TemporaryDirectory %s
StreamMaxLength %s
`, db, port, sock, dir, logf, dir, streamMax))
	cmd := exec.Command(bin, "--config-file="+conf)
	out, err := os.Create(filepath.Join(dir, "clamd.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &realClamd{tcp: fmt.Sprintf("tcp://127.0.0.1:%d", port), unix: "unix://" + sock, cmd: cmd, log: logf}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { r.stop(); <-exited; out.Close() })
	c, _ := NewClamd(r.tcp, time.Second, 1)
	for deadline := time.Now().Add(60 * time.Second); ; {
		if c.Ping(context.Background()) == nil {
			return r
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf)
			o, _ := os.ReadFile(out.Name())
			t.Fatalf("clamd exited:\n%s\n%s", b, o)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("clamd did not answer PING within 60 s")
		}
	}
}

func (r *realClamd) stop() {
	if r.cmd.Process != nil {
		r.cmd.Process.Kill()
	}
}

// eicarAttachment is a MIME message with EICAR as a base64 attachment, as
// a mail client sends a file: clamd decodes it to find the virus.
func eicarAttachment(from, to string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: the file\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"eicar.com\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(eicar)) + "\r\n--b1--\r\n"
}

// TestRealClamd: a real clamd behind the server. Over 587 with STARTTLS
// (Go's net/smtp client), over 465 (the raw client) and on the MX listener
// after STARTTLS: an EICAR attachment and EICAR in the text are refused
// with 554 5.7.1 naming the local signature, a clean message is queued; clamd's own StreamMaxLength
// is 552 5.3.4; over its Unix socket too; and with clamd stopped, 451
// 4.7.1 and nothing queued.
func TestRealClamd(t *testing.T) {
	r := startRealClamd(t, "200K")
	const rcpt = "r@example.net"
	for _, addr := range []string{r.tcp, r.unix} {
		t.Run(strings.SplitN(addr, ":", 2)[0], func(t *testing.T) {
			local, err := NewLocalDomains([]string{"example.org"})
			if err != nil {
				t.Fatal(err)
			}
			e, logs := scanEnv(t, addr, func(o *Options) {
				o.MaxMessageBytes = 1 << 20
				o.MX = &MXOptions{LocalDomains: local}
			})
			mx, err := e.srv.ListenMX("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			// 587, STARTTLS, AUTH PLAIN: net/smtp.
			err = netSMTPSend(e.addr587, alice, alicePW, rcpt, eicarAttachment(alice, rcpt))
			var te *textproto.Error
			if !errors.As(err, &te) || te.Code != 554 || !strings.HasPrefix(te.Msg, "5.7.1 ") || !strings.Contains(te.Msg, "Test.EICAR-Local") {
				t.Fatalf("EICAR attachment on 587: %v", err)
			}
			if err := netSMTPSend(e.addr587, alice, alicePW, rcpt, message(alice, rcpt, "")); err != nil {
				t.Fatalf("clean on 587: %v", err)
			}
			// 465: the raw client.
			c := e.authedTLS(bob, bobPW)
			if code, msg := submit(c, bob, rcpt, infectedMessage(bob, rcpt)); code != 554 || !strings.Contains(msg, "Test.EICAR-Local") {
				t.Fatalf("EICAR on 465: %d %s", code, msg)
			}
			if code, msg := submit(c, bob, rcpt, message(bob, rcpt, "")); code != 250 {
				t.Fatalf("clean on 465: %d %s", code, msg)
			}
			big := message(bob, rcpt, "") + strings.Repeat(strings.Repeat("b", 76)+"\r\n", 4000) // ~310 KB > 200K
			if code, msg := submit(c, bob, rcpt, big); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Fatalf("over clamd's StreamMaxLength: %d %s", code, msg)
			}
			// The MX listener, after STARTTLS: an EICAR attachment from the
			// Internet to a local recipient.
			m := dialMX(t, mx.String(), "127.0.0.1")
			m.ehlo()
			m.starttls()
			m.ehlo()
			const from, to = "x@internet.example", "alice@example.org"
			if code, msg := submit(m, from, to, eicarAttachment(from, to)); code != 554 || !strings.Contains(msg, "Test.EICAR-Local") {
				t.Fatalf("EICAR on MX: %d %s", code, msg)
			}
			if code, msg := submit(m, from, to, message(from, to, "")); code != 250 {
				t.Fatalf("clean on MX: %d %s", code, msg)
			}
			if n := len(e.queued()); n != 3 {
				t.Fatalf("%d queued, want the 3 clean ones", n)
			}
			if len(logs.lines(`virus found"`, `"signature":"Test.EICAR-Local`)) != 3 {
				t.Errorf("want 3 detections logged:\n%s", logs)
			}
		})
	}
	t.Run("stopped", func(t *testing.T) {
		e, _ := scanEnv(t, r.tcp)
		r.stop()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("tcp", strings.TrimPrefix(r.tcp, "tcp://")); err != nil {
				break
			} else {
				c.Close()
			}
			if time.Now().After(deadline) {
				t.Fatal("clamd still listening")
			}
		}
		err := netSMTPSend(e.addr587, alice, alicePW, rcpt, message(alice, rcpt, ""))
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != 451 || !strings.HasPrefix(te.Msg, "4.7.1 ") {
			t.Fatalf("clamd stopped: %v", err)
		}
		if n := len(e.queued()); n != 0 {
			t.Fatalf("%d queued", n)
		}
	})
}

// netSMTPSend submits msg with Go's net/smtp: STARTTLS, AUTH PLAIN, one
// recipient. The error is the server's reply (a *textproto.Error) when it
// refused.
func netSMTPSend(addr, user, pw, rcpt, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, ServerName: "relay.test"}); err != nil {
		return err
	}
	if err := c.Auth(smtp.PlainAuth("", user, pw, "127.0.0.1")); err != nil {
		return err
	}
	if err := c.Mail(user); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}
