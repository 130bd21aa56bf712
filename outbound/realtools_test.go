package outbound

import (
	"context"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/bounce"
	"github.com/edgerelay/edgerelay/dsn"
	"github.com/edgerelay/edgerelay/queue"
)

// The tests in this file run real third-party tools on generated reports.
// Each runs where its tool is installed and is skipped elsewhere; setting
// its variable (EDGERELAY_FLUFL=1, EDGERELAY_DOVECOT=1) turns the skip into
// a failure, for CI jobs that install the tools.

// requireTool skips (or, with env=1, fails) the test when ok is false.
func requireTool(t *testing.T, env string, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(env) == "1" {
		t.Fatalf("%s=1 but %s", env, why)
	}
	t.Skipf("%s (set %s=1 to require it)", why, env)
}

// TestNDRFluflBounce: GNU Mailman's bounce detector (Debian's
// python3-flufl.bounce) and Python's email package read our reports and
// find exactly the failed (and delayed) recipients.
func TestNDRFluflBounce(t *testing.T) {
	const python = "/usr/bin/python3"
	err := exec.Command(python, "-c", "import flufl.bounce").Run()
	requireTool(t, "EDGERELAY_FLUFL", err == nil, "python3-flufl.bounce is not importable by "+python)

	expect := map[string]struct{ failed, delayed []string }{
		"failed-550":       {failed: []string{"bob@example.net"}},
		"failed-partial":   {failed: []string{"bob@example.net", "carol@example.net"}},
		"expired-447":      {failed: []string{"bob@example.net"}},
		"delayed":          {delayed: []string{"bob@example.net"}},
		"relayed":          {},
		"ret-full":         {failed: []string{"bob@example.net"}},
		"ret-full-too-big": {failed: []string{"bob@example.net"}},
		"ret-hdrs":         {failed: []string{"bob@example.net"}},
		// flufl.bounce prefers the Original-Recipient (ORCPT).
		"orcpt-envid": {failed: []string{"Bob.Original@example.net"}},
	}
	dir := t.TempDir()
	for _, tc := range ndrCases {
		want, ok := expect[tc.name]
		if !ok {
			continue // smtputf8: message/global-delivery-status is not in flufl.bounce's repertoire
		}
		t.Run(tc.name, func(t *testing.T) {
			_, msg, _ := runNDRCase(t, tc)
			path := filepath.Join(dir, tc.name+".eml")
			if err := os.WriteFile(path, msg, 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{filepath.Join("..", "scripts", "check-ndr-flufl.py"), path, "--failed"}
			args = append(args, want.failed...)
			args = append(args, "--delayed")
			args = append(args, want.delayed...)
			out, err := exec.Command(python, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("check-ndr-flufl.py: %v\n%s", err, out)
			}
			t.Logf("%s", strings.TrimSpace(string(out)))
		})
	}
}

// TestDovecotServesBounceStore: a real Dovecot serves the bounce Maildir
// over IMAP (scripts/dovecot-test.sh) and every report in it is listed,
// fetched and parsed. Afterwards the store, now holding Dovecot's own files
// and reports Dovecot moved to cur/, still opens, and storing a report
// again adds nothing.
func TestDovecotServesBounceStore(t *testing.T) {
	dovecot, err := exec.LookPath("dovecot")
	if err != nil {
		dovecot, err = exec.LookPath("/usr/sbin/dovecot")
	}
	requireTool(t, "EDGERELAY_DOVECOT", err == nil, "dovecot is not installed")
	requireTool(t, "EDGERELAY_DOVECOT", os.Geteuid() == 0, "serving a Maildir as uid 65534 needs root")
	_, err = os.Stat("/usr/bin/python3")
	requireTool(t, "EDGERELAY_DOVECOT", err == nil, "/usr/bin/python3 is missing")
	t.Logf("using %s", dovecot)

	root := t.TempDir()
	// Dovecot's mail processes run as uid 65534: let them reach the store.
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	maildir := filepath.Join(root, "bounces")
	store, err := bounce.Open("maildir:"+maildir, bounce.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReporter(ReporterOptions{Hostname: "relay.example.org", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	reqs := []ReportRequest{
		{Kind: dsn.Failed, Recipients: []int{0, 1}},
		{Kind: dsn.Delayed, Recipients: []int{0}, WillRetryUntil: ndrRetryUntil},
	}
	for i := range reqs {
		reqs[i].Message = &queue.Message{Envelope: ndrEnvelope()}
		reqs[i].Body = ndrBody(ndrOriginal)
		if err := r.Report(context.Background(), reqs[i]); err != nil {
			t.Fatal(err)
		}
	}
	err = filepath.WalkDir(maildir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 65534, 65534)
	})
	if err != nil {
		t.Fatal(err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "dovecot-test.sh"), maildir)
	cmd.Env = append(os.Environ(), "DOVECOT_PORT="+strconv.Itoa(port), "EXPECT_COUNT=2")
	out, err := cmd.CombinedOutput()
	t.Logf("dovecot-test.sh:\n%s", out)
	if err != nil {
		t.Fatalf("dovecot-test.sh: %v", err)
	}
	for _, want := range []string{"Undelivered Mail Returned to Sender", "Delayed Mail (still being retried)", "rfc822; bob@example.net", "dovecot-test: ok"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}

	// Dovecot left its own files and moved the reports to cur/.
	entries, _ := os.ReadDir(maildir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("maildir after dovecot: %v, cur: %v", names, maildirFiles(t, maildir))
	if _, err := os.Stat(filepath.Join(maildir, "dovecot-uidlist")); err != nil {
		t.Errorf("dovecot wrote no uidlist into the store (was it served?): %v", err)
	}
	store, err = bounce.Open("maildir:"+maildir, bounce.Options{})
	if err != nil {
		t.Fatalf("store refused after dovecot served it: %v", err)
	}
	r, err = NewReporter(ReporterOptions{Hostname: "relay.example.org", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	before := len(maildirFiles(t, maildir))
	if err := r.Report(context.Background(), reqs[0]); err != nil {
		t.Fatal(err)
	}
	if after := len(maildirFiles(t, maildir)); after != before {
		t.Errorf("reporting again added a file (%d → %d): %v", before, after, maildirFiles(t, maildir))
	}
}

// maildirFiles lists the files in the Maildir's new/, cur/ and tmp/.
func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur", "tmp"} {
		es, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}
