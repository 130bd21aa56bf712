package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/auth"
	"github.com/edgerelay/edgerelay/internal/mdblock"
	"github.com/edgerelay/edgerelay/internal/testutil"
)

// The README's command blocks marked <!-- test: NAME --> are run here as a
// newcomer would run them (issue 15, "Keep it true"): a README edit that
// breaks one fails these tests, and so does one that removes a marker.
// e2e's TestQuickstart runs the quick-start blocks.

// readmeBlocks returns README.md's marked blocks, failing the test when one
// of names is not there.
func readmeBlocks(t *testing.T, names ...string) map[string]string {
	t.Helper()
	b, err := mdblock.File("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, ok := b[n]; !ok {
			t.Fatalf("README.md has no block marked <!-- test: %s --> (the test runs it)", n)
		}
	}
	return b
}

// TestREADMEMarkedBlocks: every marked block is run by a test; a marker
// added without a test, or a test's block renamed, is caught here.
func TestREADMEMarkedBlocks(t *testing.T) {
	b := readmeBlocks(t)
	var got []string
	for n := range b {
		got = append(got, n)
	}
	slices.Sort(got)
	want := []string{"aws-local-emulator", "aws-local-inspect", "aws-local-relay", "certbot-deploy-hook",
		"quickstart", "quickstart-send", "ses-local", "ses-local-inspect", "users-file"}
	if !slices.Equal(got, want) {
		t.Fatalf("README's marked blocks %v, the tests run %v", got, want)
	}
}

// readmeTools builds the commands the README runs with `go run` (and
// `edgerelay`) into one directory, once per test binary.
var readmeTools = struct {
	once sync.Once
	dir  string
	err  error
}{}

func buildReadmeTools(t *testing.T) string {
	t.Helper()
	readmeTools.once.Do(func() {
		dir, err := os.MkdirTemp("", "edgerelay-readme-bin")
		if err != nil {
			readmeTools.err = err
			return
		}
		readmeTools.dir = dir
		for name, pkg := range map[string]string{"edgerelay": ".", "awsemu": "./internal/awstest/awsemu", "sink": "./tools/sink"} {
			if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
				readmeTools.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if readmeTools.err != nil {
		t.Fatal(readmeTools.err)
	}
	return readmeTools.dir
}

// TestMain removes the built tools after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if readmeTools.dir != "" {
		os.RemoveAll(readmeTools.dir)
	}
	os.Exit(code)
}

// goRunArgs maps the packages the README runs with `go run` to the built
// commands.
var goRunArgs = map[string]string{".": "edgerelay", "./internal/awstest/awsemu": "awsemu", "./tools/sink": "sink"}

// asBuilt replaces the README's `go run PKG` by the command built from it;
// a `go run` of another package fails the test (teach it here).
func asBuilt(t *testing.T, script, bin string) string {
	t.Helper()
	return regexp.MustCompile(`go run (\S+)`).ReplaceAllStringFunc(script, func(m string) string {
		pkg := strings.TrimPrefix(m, "go run ")
		name, ok := goRunArgs[pkg]
		if !ok {
			t.Fatalf("the README runs %q, which the test does not build", m)
		}
		return filepath.Join(bin, name)
	})
}

// loopbackPorts gives every 127.0.0.1:PORT of the README's commands a free
// port of its own, the same one wherever the README repeats it, so that
// the commands run beside other tests (e2e's quick start uses the README's
// ports).
type loopbackPorts map[string]string

func (p loopbackPorts) rewrite(t *testing.T, s string) string {
	t.Helper()
	return regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllStringFunc(s, func(a string) string {
		if _, ok := p[a]; !ok {
			p[a] = testutil.FreeAddr(t)
		}
		return p[a]
	})
}

// readmeEnv is the environment the README's commands run in: this one
// without RELAY_*, AWS_* and the CA bundle variables (what the README does
// not set is not set), with the built commands first on PATH.
func readmeEnv(bin string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "RELAY_") || strings.HasPrefix(k, "AWS_") || k == "SSL_CERT_FILE" || k == "SSL_CERT_DIR" || k == "PATH" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// startScript runs script with bash in dir, in a process group of its own
// that is ended (SIGTERM, then SIGKILL) when the test ends. done is closed
// when bash exits.
func startScript(t *testing.T, dir, script string, env []string) (out *testutil.LogBuffer, done <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Background commands keep the output open after bash exits: do not
	// wait for them to see that it did.
	cmd.WaitDelay = time.Second
	out = &testutil.LogBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("output of\n%s\n---\n%s", script, out.String())
		}
	})
	return out, exited
}

// running reports whether done is still open.
func running(done <-chan struct{}) bool {
	select {
	case <-done:
		return false
	default:
		return true
	}
}

func eventually(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readmeReady(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestREADMEUsersFile runs the users file block (finding 10): the first
// line at a terminal (a pseudo-terminal: the prompt shows and the password
// is not echoed), the second from a pipe; the file then authenticates both
// users with their addresses.
func TestREADMEUsersFile(t *testing.T) {
	block := readmeBlocks(t, "users-file")["users-file"]
	bin := buildReadmeTools(t)
	dir := t.TempDir()
	master, slave := openPty(t)
	cmd := exec.Command("bash", "-c", asBuilt(t, block, bin))
	cmd.Dir, cmd.Env = dir, readmeEnv(bin)
	cmd.Stdin, cmd.Stderr = slave, slave
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var screen testutil.LogBuffer
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := master.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	eventually(t, "the Password: prompt", 30*time.Second, func() bool { return strings.Contains(screen.String(), "Password: ") })
	master.Write([]byte("her password\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\nstdout %q\nterminal %q", err, out.String(), screen.String())
	}
	if strings.Contains(screen.String(), "her password") {
		t.Errorf("the password was echoed: %q", screen.String())
	}
	raw, err := os.ReadFile(filepath.Join(dir, "data", "users"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(raw), "\n"); n != 2 || !regexp.MustCompile(`^alice@example\.org:\$2b\$12\$\S+:a\.example@example\.org,sales@example\.org\nbob@example\.org:\$2b\$\S+\n$`).Match(raw) {
		t.Fatalf("users file:\n%s", raw)
	}
	fb, err := auth.NewFileBackend(filepath.Join(dir, "data", "users"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		user, pw string
		addrs    []string
	}{
		{"alice@example.org", "her password", []string{"alice@example.org", "a.example@example.org", "sales@example.org"}},
		{"bob@example.org", "his password", []string{"bob@example.org"}},
	} {
		id, err := fb.CheckPassword(context.Background(), c.user, c.pw)
		if err != nil {
			t.Fatalf("%s: %v", c.user, err)
		}
		for _, a := range c.addrs {
			if !slices.Contains(id.Addresses, a) {
				t.Errorf("%s: addresses %v lack %s", c.user, id.Addresses, a)
			}
		}
	}
}

// TestREADMEAWSLocal runs the README's local AWS setup (findings 1 and 2):
// the emulator block as written (the queue, dead-letter queue and bucket it
// creates), the relay block as written (users file, sink, worker, front
// end, with `go run` replaced by the built commands and every loopback
// port by a free one), then the quick start's curl command: the message is
// queued through SQS + S3 and delivered to the sink, and neither process
// warns but for the self-signed certificate. With the AWS CLI installed,
// the inspect block runs too.
func TestREADMEAWSLocal(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	b := readmeBlocks(t, "aws-local-emulator", "aws-local-relay", "aws-local-inspect", "quickstart-send")
	bin := buildReadmeTools(t)
	dir := t.TempDir()
	env := readmeEnv(bin)
	ports := loopbackPorts{}
	emu, emuDone := startScript(t, dir, asBuilt(t, ports.rewrite(t, b["aws-local-emulator"]), bin), env)
	eventually(t, "the emulator", 60*time.Second, func() bool {
		if !running(emuDone) {
			t.Fatalf("the emulator block exited:\n%s", emu.String())
		}
		return strings.Contains(emu.String(), "ready http://")
	})
	for _, q := range []string{"edgerelay-dlq", "edgerelay"} {
		if !strings.Contains(emu.String(), fmt.Sprintf("queue %s http://%s/000000000000/%s\n", q, ports["127.0.0.1:4566"], q)) {
			t.Fatalf("the emulator did not create queue %s at the README's URL:\n%s", q, emu.String())
		}
	}
	relay, relayDone := startScript(t, dir, asBuilt(t, ports.rewrite(t, b["aws-local-relay"]), bin), env)
	for _, a := range []string{"127.0.0.1:18080", "127.0.0.1:18081"} {
		addr, ok := ports[a]
		if !ok {
			t.Fatalf("the README's relay block no longer uses %s", a)
		}
		eventually(t, "/readyz on "+a, 60*time.Second, func() bool {
			if !running(relayDone) {
				t.Fatalf("the relay block exited before %s was ready", a)
			}
			return readmeReady(addr)
		})
	}
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("EDGERELAY_REQUIRE_CLIENTS") == "1" {
			t.Fatal("EDGERELAY_REQUIRE_CLIENTS=1 but curl is not installed")
		}
		t.Skip("curl is not installed")
	}
	send := exec.Command("bash", "-c", ports.rewrite(t, b["quickstart-send"]))
	send.Dir, send.Env = dir, env
	if out, err := send.CombinedOutput(); err != nil {
		t.Fatalf("the quick start's curl command: %v\n%s", err, out)
	}
	eventually(t, "the sink to print the message", 60*time.Second, func() bool {
		return strings.Contains(relay.String(), "=== sink: message 1 from <you@example.com> to [friend@example.net]")
	})
	logs := relay.String()
	for _, w := range []string{`"msg":"queued"`, `"msg":"delivered"`, "with ESMTPSA", "Subject: hello", "relay.localhost"} {
		if !strings.Contains(logs, w) {
			t.Errorf("output lacks %s", w)
		}
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"WARN"`) && !strings.Contains(l, "self-signed certificate") {
			t.Errorf("unexpected warning: %s", l)
		}
	}
	if _, err := exec.LookPath("aws"); err != nil {
		t.Logf("the AWS CLI is not installed: the inspect block was not run")
		return
	}
	script := ports.rewrite(t, b["aws-local-inspect"])
	for _, l := range strings.Split(script, "\n") {
		// Never let a README edit send the CLI to AWS itself.
		if strings.HasPrefix(l, "aws ") && !strings.Contains(l, "--endpoint-url http://127.0.0.1:") {
			t.Fatalf("inspect block: %q has no loopback --endpoint-url", l)
		}
	}
	inspect := exec.Command("bash", "-c", script)
	inspect.Dir, inspect.Env = dir, env
	out, err := inspect.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "edgerelay-dlq") || !strings.Contains(string(out), "bounces/.edgerelay-bounce-store") {
		t.Fatalf("inspect block: %v\n%s", err, out)
	}
}
