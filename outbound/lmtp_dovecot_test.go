package outbound

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dovecotLMTP starts a private Dovecot whose LMTP service listens on
// 127.0.0.1 and on a Unix socket, delivering to one Maildir per user under
// the returned mail root (as uid 65534; any user exists). It is skipped
// where Dovecot's LMTP server is not installed (Debian's dovecot-lmtpd) or
// the test does not run as root, and fails there instead under
// EDGERELAY_REQUIRE_CLIENTS=1, as in CI.
func dovecotLMTP(t *testing.T) (tcpAddr, socket, mail string) {
	t.Helper()
	dovecot, err := exec.LookPath("dovecot")
	if err != nil {
		dovecot, err = exec.LookPath("/usr/sbin/dovecot")
	}
	requireTool(t, "EDGERELAY_REQUIRE_CLIENTS", err == nil, "dovecot is not installed (apt-get install dovecot-lmtpd)")
	_, err = os.Stat("/usr/lib/dovecot/lmtp")
	requireTool(t, "EDGERELAY_REQUIRE_CLIENTS", err == nil, "Dovecot's LMTP server is not installed (apt-get install dovecot-lmtpd)")
	requireTool(t, "EDGERELAY_REQUIRE_CLIENTS", os.Geteuid() == 0, "Dovecot delivering as uid 65534 needs root")

	// A short directory: the sockets' paths must fit in sun_path.
	root, err := os.MkdirTemp("", "lmtp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	mail = filepath.Join(root, "mail")
	for _, d := range []string{"run", "state", "mail"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(mail, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(tcpAddr)
	conf := filepath.Join(root, "dovecot.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`instance_name = edgerelay-lmtp-%[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
protocols = lmtp
listen = 127.0.0.1
ssl = no
log_path = %[1]s/dovecot.log
mail_location = maildir:%[1]s/mail/%%n
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[2]s
  }
  unix_listener lmtp {
    mode = 0666
  }
}
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[1]s/mail/%%n allow_all_users=yes
}
`, root, port)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dovecot, "-F", "-c", conf)
	out, err := os.Create(filepath.Join(root, "dovecot.out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := func() string {
		a, _ := os.ReadFile(filepath.Join(root, "dovecot.out"))
		b, _ := os.ReadFile(filepath.Join(root, "dovecot.log"))
		return string(a) + string(b)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		out.Close()
		if t.Failed() {
			t.Logf("dovecot's output and log:\n%s", logs())
		}
	})
	socket = filepath.Join(root, "run", "lmtp")
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", tcpAddr, time.Second); err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(line, "220 ") {
				if _, err := os.Stat(socket); err == nil {
					return tcpAddr, socket, mail
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot's LMTP did not come up:\n%s", logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLMTPDovecot: one message to two local users through Dovecot's LMTP
// server, over TCP on loopback and over its Unix socket, lands in both
// users' Maildirs, and both recipients are done.
func TestLMTPDovecot(t *testing.T) {
	tcpAddr, socket, mail := dovecotLMTP(t)
	for _, c := range []struct{ name, gw string }{
		{"tcp", "lmtp://" + tcpAddr},
		{"unix", "lmtp+unix://" + socket},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, combine(lmtpOpts(c.gw), func(o *Options) { o.Dial = nil }))
			h.enqueue(nil, localRcpt, daveRcpt)
			env := h.attempt()
			for _, a := range []string{localRcpt, daveRcpt} {
				r := lmtpWant(t, env, a, lmtpDone...)
				if r.Reply == nil || r.Reply.Code != 250 {
					t.Errorf("%s: reply %v", a, r.Reply)
				}
			}
			for _, user := range []string{"carol", "dave"} {
				files, err := filepath.Glob(filepath.Join(mail, user, "new", "*"))
				if err != nil || len(files) == 0 {
					t.Fatalf("%s's Maildir new/ holds %v (%v)", user, files, err)
				}
				found := false
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err == nil && strings.Contains(string(b), "Hello, Bob.") {
						found = true
					}
				}
				if !found {
					t.Errorf("%s's Maildir lacks the message: %v", user, files)
				}
			}
		})
	}
	// One delivery per user and transport: two each.
	for _, user := range []string{"carol", "dave"} {
		if files, _ := filepath.Glob(filepath.Join(mail, user, "new", "*")); len(files) != 2 {
			t.Errorf("%s got %d messages, want 2 (one over TCP, one over the socket)", user, len(files))
		}
	}
}
