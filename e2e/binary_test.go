// Package e2e runs the built edgerelay binary, configured only through
// environment variables, against real SMTP clients and a sink SMTP server
// on loopback.
package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue/spool"
)

var (
	buildDir  string // made by TestMain, removed after the tests
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// TestMain gives the binary a temporary directory of its own and removes
// it, binary included, once every test has run.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgerelay-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds edgerelay once per test run, on first use, into buildDir.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binPath = filepath.Join(buildDir, "edgerelay")
		out, err := exec.Command("go", "build", "-race", "-tags", "lambda.norpc", "-o", binPath, "..").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	return testutil.FreeAddr(t)
}

// relayProc is one running edgerelay process.
type relayProc struct {
	t                 *testing.T
	cmd               *exec.Cmd
	env               []string
	sub, sub465, http string
	logs              *logBuffer
	done              chan struct{}
	exitErr           error
}

type logBuffer = testutil.LogBuffer

// writeUsers writes a users file with the given user:password pairs,
// hashed with the binary's own hash-password command.
func writeUsers(t *testing.T, path string, users map[string]string) {
	t.Helper()
	var b strings.Builder
	for u, pw := range users {
		cmd := exec.Command(binary(t), "hash-password")
		cmd.Stdin = strings.NewReader(pw + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, strings.TrimSpace(string(out)))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the binary with RELAY_* variables from env (plus fresh
// listener addresses) and waits until it accepts connections.
func start(t *testing.T, env map[string]string) *relayProc {
	t.Helper()
	p := &relayProc{t: t, logs: &logBuffer{}, done: make(chan struct{})}
	p.sub, p.sub465, p.http = freeAddr(t), freeAddr(t), freeAddr(t)
	vars := map[string]string{
		"RELAY_SUBMISSION_ADDR":  p.sub,
		"RELAY_SUBMISSIONS_ADDR": p.sub465,
		"RELAY_HTTP_ADDR":        p.http,
		"RELAY_HOSTNAME":         "relay.e2e.test",
		"RELAY_LOG_FORMAT":       "json",
		"RELAY_LOG_LEVEL":        "debug",
	}
	for k, v := range env {
		vars[k] = v
	}
	p.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		p.env = append(p.env, k+"="+v)
	}
	p.cmd = exec.Command(binary(t))
	p.cmd.Env = p.env
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("edgerelay log:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("edgerelay exited at start: %v\n%s", p.exitErr, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("edgerelay not ready:\n%s", p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *relayProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatalf("edgerelay did not exit after SIGTERM:\n%s", p.logs.String())
	}
	if p.exitErr != nil {
		p.t.Fatalf("edgerelay exited with %v after SIGTERM:\n%s", p.exitErr, p.logs.String())
	}
}

// submit sends one message over STARTTLS with AUTH PLAIN using go-smtp's
// client and returns the reply to the final dot.
func (p *relayProc) submit(user, pw, from string, to []string, body string) error {
	c, err := smtp.DialStartTLS(p.sub, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", user, pw)); err != nil {
		return err
	}
	if err := c.SendMail(from, to, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

func msg(from, to, subject string) string {
	return "From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: " + subject + "\r\n\r\nHello from the e2e test.\r\n"
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func baseEnv(t *testing.T, dataDir, gateway string) map[string]string {
	writeUsers(t, filepath.Join(dataDir, "users"), map[string]string{"alice@example.org": "alice-pw"})
	return map[string]string{
		"RELAY_DATA_DIR":       dataDir,
		"RELAY_GATEWAY":        gateway,
		"RELAY_GATEWAY_TLS":    "none",
		"RELAY_RETRY_SCHEDULE": "300ms",
		"RELAY_SHUTDOWN_GRACE": "5s",
		// Messages under delivery at a kill are retried after this.
		"RELAY_SPOOL_LEASE_TIMEOUT": "2s",
	}
}

func TestBinarySubmitAndDeliver(t *testing.T) {
	dir := t.TempDir()
	sk := newSink(t, "127.0.0.1:0")
	p := start(t, baseEnv(t, dir, sk.addr()))
	if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{"bob@example.net"}, msg("alice@example.org", "bob@example.net", "first")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery to the sink", 60*time.Second, func() bool { return len(sk.messages()) == 1 })
	m := sk.messages()[0]
	if m.From != "alice@example.org" || len(m.To) != 1 || m.To[0] != "bob@example.net" {
		t.Fatalf("sink got %+v", m)
	}
	if !strings.Contains(string(m.Data), "with ESMTPSA") || !strings.Contains(string(m.Data), "Subject: first") {
		t.Fatalf("delivered message:\n%s", m.Data)
	}
	// Wrong password and relaying without AUTH are refused by the binary too.
	if err := p.submit("alice@example.org", "nope", "alice@example.org", []string{"bob@example.net"}, msg("alice@example.org", "bob@example.net", "x")); err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("wrong password: %v", err)
	}
	c, err := smtp.Dial(p.sub)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@example.org", nil); err == nil || !strings.Contains(err.Error(), "530") {
		t.Fatalf("MAIL without AUTH: %v", err)
	}
	c.Close()
	// The log ties acceptance to delivery with the queue ID, and never
	// shows the password.
	logs := p.logs.String()
	if !strings.Contains(logs, `"msg":"queued"`) || strings.Contains(logs, "alice-pw") {
		t.Fatalf("logs:\n%s", logs)
	}
	// The counters agree.
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`edgerelay_messages_total{result="queued"} 1`,
		`edgerelay_auth_total{result="ok"} 1`,
		`edgerelay_auth_total{result="failed"} 1`,
		`edgerelay_delivery_attempts_total{result="delivered"} 1`,
		"edgerelay_queue_messages 0",
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, mb)
		}
	}
	p.stop()
}

// TestBinaryRestartDeliversSpool: messages accepted while the gateway is
// down stay in the spool across a restart and are delivered after it.
func TestBinaryRestartDeliversSpool(t *testing.T) {
	dir := t.TempDir()
	gw := freeAddr(t) // nothing listens yet
	env := baseEnv(t, dir, gw)
	p := start(t, env)
	for i := range 3 {
		if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{fmt.Sprintf("r%d@example.net", i)}, msg("alice@example.org", "r@example.net", fmt.Sprint("restart ", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failed attempt", 60*time.Second, func() bool { return strings.Contains(p.logs.String(), "deferred") })
	p.stop()
	// Messages not yet deferred are in the spool's journal, the others in
	// msg/: count them as the spool does.
	if n := spoolLen(t, filepath.Join(dir, "spool")); n != 3 {
		t.Fatalf("%d messages in the spool after stop, want 3", n)
	}
	sk := newSink(t, gw)
	p2 := start(t, env)
	waitFor(t, "delivery after restart", 60*time.Second, func() bool { return len(sk.messages()) == 3 })
	waitFor(t, "the spool to empty", 60*time.Second, func() bool { return queueGauge(t, p2.http) == "0" })
	p2.stop()
	if n := spoolLen(t, filepath.Join(dir, "spool")); n != 0 {
		t.Fatalf("%d messages in the spool after delivery, want 0", n)
	}
}

// spoolLen opens the spool in dir (no process may hold it) and returns how
// many messages it holds, journal and msg/ together.
func spoolLen(t *testing.T, dir string) int {
	t.Helper()
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return s.Len()
}

// queueGauge returns the value of edgerelay_queue_messages on the
// process's /metrics ("" when it cannot be read).
func queueGauge(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "edgerelay_queue_messages "); ok {
			return v
		}
	}
	return ""
}

// TestBinarySIGTERMDuringSession: a transaction in progress when SIGTERM
// arrives is finished and acknowledged, then the client is told 421, and
// the process exits 0.
func TestBinarySIGTERMDuringSession(t *testing.T) {
	dir := t.TempDir()
	sk := newSink(t, "127.0.0.1:0")
	p := start(t, baseEnv(t, dir, sk.addr()))

	conn, err := net.Dial("tcp", p.sub)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	line := func() string {
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		var last string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (got %q)", err, l)
			}
			last = l
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimSpace(last)
			}
		}
	}
	say := func(s string) { io.WriteString(conn, s+"\r\n") }
	line()
	say("EHLO c.test")
	line()
	say("STARTTLS")
	line()
	tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	conn = tc
	r = bufio.NewReader(tc)
	say("EHLO c.test")
	line()
	say("AUTH PLAIN " + plainIR("alice@example.org", "alice-pw"))
	if l := line(); !strings.HasPrefix(l, "235") {
		t.Fatal(l)
	}
	say("MAIL FROM:<alice@example.org>")
	line()
	say("RCPT TO:<bob@example.net>")
	line()
	say("DATA")
	if l := line(); !strings.HasPrefix(l, "354") {
		t.Fatal(l)
	}
	io.WriteString(conn, "From: <alice@example.org>\r\nSubject: sigterm\r\n\r\nfirst half ")
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(300 * time.Millisecond)
	io.WriteString(conn, "second half\r\n.\r\n")
	if l := line(); !strings.HasPrefix(l, "250 2.0.0") {
		t.Fatalf("reply to the final dot after SIGTERM: %s", l)
	}
	if l := line(); !strings.HasPrefix(l, "421 4.3.2") {
		t.Fatalf("after the transaction: %s", l)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if p.exitErr != nil {
		t.Fatalf("exit: %v", p.exitErr)
	}
}

func plainIR(user, pw string) string {
	return b64("\x00" + user + "\x00" + pw)
}

var _ = context.Background
