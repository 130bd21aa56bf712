package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/edgerelay/edgerelay/queue"
)

// queueCLI runs "edgerelay queue args…" with RELAY_DATA_DIR=dataDir, as
// an operator would in the container, and records the session.
type queueCLI struct {
	t       *testing.T
	dataDir string
	log     strings.Builder   // the session, as a terminal shows it
	mute    bool              // polling: not part of the session
	env     map[string]string // more variables (RELAY_QUEUE=sqs …)
}

func (c *queueCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(binary(c.t), append([]string{"queue"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range c.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "RELAY_DATA_DIR="+c.dataDir)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatal(err)
	}
	if !c.mute {
		c.log.WriteString("$ edgerelay queue " + strings.Join(args, " ") + "\n" + o.String() + e.String())
		if code != 0 {
			c.log.WriteString("(exit status " + string(rune('0'+code)) + ")\n")
		}
		c.log.WriteString("\n")
	}
	return o.String(), e.String(), code
}

func (c *queueCLI) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("queue %v: exit %d: %s%s", args, code, out, errOut)
	}
	return out
}

func (c *queueCLI) list(t *testing.T) []queue.Entry {
	t.Helper()
	c.mute = true
	out, _, code := c.run("list", "--json")
	c.mute = false
	var es []queue.Entry
	if code != 0 || json.Unmarshal([]byte(out), &es) != nil {
		t.Fatalf("list --json: exit %d: %s", code, out)
	}
	return es
}

// entryTo returns the ID of the queued message to rcpt.
func entryTo(es []queue.Entry, rcpt string) (queue.Entry, bool) {
	for _, e := range es {
		for _, r := range e.Envelope.Recipients {
			if r.Addr == rcpt {
				return e, true
			}
		}
	}
	return queue.Entry{}, false
}

// TestBinaryQueueCommands is the day-two session of the README, run on
// the built binary: the gateway is down, mail queues; the operator lists
// and inspects it, deletes a message, holds one; the gateway recovers,
// retry --all delivers what it can, release delivers the held one, and
// the message the gateway keeps deferring is bounced (NDR in the bounce
// store and to the sender). Then the errors: no such ID (exit 3), no
// running process (exit 1), and the socket's mode; /admin/ over HTTP
// with and without the token. EDGERELAY_DAYTWO_OUT=FILE writes the
// session (real output: IDs and times change with every run).
func TestBinaryQueueCommands(t *testing.T) {
	dir := t.TempDir()
	gw := freeAddr(t) // nothing listens: the gateway is down
	env := baseEnv(t, dir, gw)
	env["RELAY_RETRY_SCHEDULE"] = "10m"
	env["RELAY_ADMIN_TOKEN"] = "e2e-admin-token"
	p := start(t, env)
	cli := &queueCLI{t: t, dataDir: dir}

	sock := filepath.Join(dir, "admin.sock")
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("admin socket: %v %v; want a socket, mode 0600", fi, err)
	}
	for _, to := range []string{"bob@example.net", "carol@example.net", "dave@example.net", "eve@example.net"} {
		if err := p.submit("alice@example.org", "alice-pw", "alice@example.org", []string{to},
			msg("alice@example.org", to, "report for "+strings.Split(to, "@")[0])); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "four failed attempts", 60*time.Second, func() bool {
		es := cli.list(t)
		n := 0
		for _, e := range es {
			if e.Envelope.Recipients[0].Reply != nil && !e.Leased {
				n++
			}
		}
		return len(es) == 4 && n == 4
	})
	cli.log.Reset()

	// The outage, as the operator sees it.
	out := cli.ok("list")
	for _, want := range []string{"bob@example.net", "dave@example.net", "-- 4 message(s)", "oldest", "connection refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	// The next attempt, 10m ±10% (outbound.DefaultJitter) after each
	// failure: "in 9m…" or "in 10m…" ("in 9m" alone failed when all four
	// drew a delay over 10m, one run in 16).
	if n := len(regexp.MustCompile(`in (9|10)m\d+s`).FindAllString(out, -1)); n != 4 {
		t.Errorf("list shows %d next attempts in 9–11 minutes, want 4:\n%s", n, out)
	}
	es := cli.list(t)
	bob, _ := entryTo(es, "bob@example.net")
	carol, _ := entryTo(es, "carol@example.net")
	dave, _ := entryTo(es, "dave@example.net")
	eve, _ := entryTo(es, "eve@example.net")
	out = cli.ok("show", bob.Envelope.ID)
	if !strings.Contains(out, "bob@example.net  pending  attempts 1") || !strings.Contains(out, "reply: 4") {
		t.Errorf("show:\n%s", out)
	}
	body := cli.ok("show", bob.Envelope.ID, "--body")
	if !strings.Contains(body, "Subject: report for bob") {
		t.Errorf("show --body:\n%s", body)
	}
	if out := cli.ok("delete", eve.Envelope.ID); !strings.Contains(out, "deleted") {
		t.Errorf("delete: %s", out)
	}
	if out := cli.ok("hold", carol.Envelope.ID); !strings.Contains(out, "on hold") {
		t.Errorf("hold: %s", out)
	}
	cli.ok("list")

	// The gateway is back, but dave's mailbox is full.
	sk := newSink(t, gw)
	sk.setReject(func(rcpt string) error {
		if rcpt == "dave@example.net" {
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}
		}
		return nil
	})
	out = cli.ok("retry", "--all")
	if !strings.Contains(out, "2 message(s) due now") {
		t.Errorf("retry --all: %s", out)
	}
	waitFor(t, "bob's delivery", 60*time.Second, func() bool { return len(sk.messages()) == 1 })
	waitFor(t, "dave's second attempt", 60*time.Second, func() bool {
		e, ok := entryTo(cli.list(t), "dave@example.net")
		return ok && e.Envelope.Recipients[0].Reply != nil && strings.HasPrefix(e.Envelope.Recipients[0].Reply.String(), "452") && !e.Leased
	})
	cli.ok("list")
	cli.ok("release", carol.Envelope.ID)
	waitFor(t, "carol's delivery", 60*time.Second, func() bool { return len(sk.messages()) == 2 })
	cli.ok("show", dave.Envelope.ID)
	cli.ok("bounce", dave.Envelope.ID)
	waitFor(t, "the report to alice", 60*time.Second, func() bool { return len(sk.messages()) == 3 })
	waitFor(t, "an empty queue", 60*time.Second, func() bool { return len(cli.list(t)) == 0 })
	cli.ok("list")
	session := cli.log.String()

	report := sk.messages()[2]
	if report.From != "" || report.To[0] != "alice@example.org" ||
		!strings.Contains(string(report.Data), "Status: 5.3.0") || !strings.Contains(string(report.Data), "deleted by the operator") {
		t.Fatalf("report to the sender:\n%s", report.Data)
	}
	stored, _ := filepath.Glob(filepath.Join(dir, "bounces", "new", "*"))
	if len(stored) != 1 {
		t.Fatalf("%d reports in the bounce store, want 1", len(stored))
	}
	for _, m := range sk.messages() {
		if slicesContain(m.To, "eve@example.net") {
			t.Fatal("the deleted message was delivered")
		}
	}
	if !regexp.MustCompile(`"level":"WARN","msg":"spool: message deleted by the operator",[^\n]*"id":"` + eve.Envelope.ID + `","from":"alice@example.org","rcpts":1`).MatchString(p.logs.String()) {
		t.Errorf("no WARN line for the deletion")
	}

	// Errors.
	if _, errOut, code := cli.run("show", "NOSUCHMESSAGE"); code != 3 || !strings.Contains(errOut, "no such message: NOSUCHMESSAGE") {
		t.Errorf("show of an unknown ID: exit %d, %s", code, errOut)
	}
	if _, _, code := cli.run("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	other := &queueCLI{t: t, dataDir: t.TempDir()}
	if _, errOut, code := other.run("list"); code != 1 ||
		!strings.Contains(errOut, "no edgerelay is running with RELAY_DATA_DIR="+other.dataDir+": socket "+other.dataDir+"/admin.sock not found") {
		t.Errorf("no running process: exit %d, %s", code, errOut)
	}
	errorsSession := other.log.String()

	// /admin/ over HTTP: the token, and nothing without it.
	get := func(auth string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+p.http+"/admin/queue", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, b := get(""); code != 401 {
		t.Errorf("/admin/queue without a token: %d %s", code, b)
	}
	if code, b := get("Bearer wrong"); code != 401 {
		t.Errorf("/admin/queue with a wrong token: %d %s", code, b)
	}
	if code, b := get("Bearer e2e-admin-token"); code != 200 || !strings.Contains(b, `"ok":true`) {
		t.Errorf("/admin/queue with the token: %d %s", code, b)
	}

	permissionDenied(t, dir)

	p.stop()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after the process stopped: %v", err)
	}
	if _, errOut, code := cli.run("list"); code != 1 || !strings.Contains(errOut, "no edgerelay is running") {
		t.Errorf("after stop: exit %d, %s", code, errOut)
	}
	t.Logf("session:\n%s%s", session, errorsSession)
	if f := os.Getenv("EDGERELAY_DAYTWO_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(session+errorsSession), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// permissionDenied runs "edgerelay queue list" as another user (nobody,
// 65534) against the socket in dataDir, reachable but mode 0600: the
// command must say that it has no permission, not that nothing runs. Only
// root can start a process as another user; others skip this part (the
// 0600 mode is checked above, and internal/admin's TestSocketPermission
// covers the error as a non-root user).
func permissionDenied(t *testing.T, dataDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: the socket's permission error is tested by internal/admin as this user")
		return
	}
	// A copy of the binary nobody may run, and the way to the socket open
	// to everyone: only the socket's own mode stands in the way.
	binDir, err := os.MkdirTemp("", "edgerelay-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(binDir)
	os.Chmod(binDir, 0o755)
	data, err := os.ReadFile(binary(t))
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "edgerelay")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dataDir; d != "/" && d != "."; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o005)
			defer os.Chmod(d, fi.Mode().Perm())
		}
	}
	cmd := exec.Command(bin, "queue", "list")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "RELAY_DATA_DIR=" + dataDir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(string(out), "no permission to use "+filepath.Join(dataDir, "admin.sock")+" (mode 0600") {
		t.Errorf("queue list as nobody: %v\n%s", err, out)
	}
}
