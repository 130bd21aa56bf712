package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
)

// needRoot skips a fault test that needs mount(8), unless
// EDGERELAY_REQUIRE_ROOT=1 makes it fail instead (CI).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("mount"); err == nil {
			return
		}
	}
	if os.Getenv("EDGERELAY_REQUIRE_ROOT") == "1" {
		t.Fatal("this fault test needs root and mount(8) (EDGERELAY_REQUIRE_ROOT=1)")
	}
	t.Skip("needs root and mount(8) for a real read-only or full file system; set EDGERELAY_REQUIRE_ROOT=1 to require it")
}

func runCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// readyz asks h and returns the status and the parts it names as not ready.
func readyz(t *testing.T, h http.Handler) (int, map[string]string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var body struct {
		NotReady map[string]string `json:"not_ready"`
	}
	if rec.Code != 200 {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("/readyz %d: body is not JSON: %q", rec.Code, rec.Body.String())
		}
	}
	return rec.Code, body.NotReady
}

func spoolReady(t *testing.T, dir string) http.Handler {
	t.Helper()
	sp, err := queue.OpenSpool(dir, queue.SpoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return readyHandler([]readyCheck{{"queue", sp.Ready}}, func() bool { return false }, 2*time.Second)
}

func wantReady(t *testing.T, h http.Handler, when string) {
	t.Helper()
	if code, parts := readyz(t, h); code != 200 {
		t.Fatalf("%s: /readyz %d %v, want 200", when, code, parts)
	}
}

func wantNotReady(t *testing.T, h http.Handler, part, when string) {
	t.Helper()
	code, parts := readyz(t, h)
	if code != 503 || parts[part] == "" {
		t.Fatalf("%s: /readyz %d naming %v, want 503 naming %q", when, code, parts, part)
	}
}

// TestReadyzSpoolReadOnly: a spool on a file system remounted read-only
// makes /readyz 503 naming the queue, and it comes back by itself.
func TestReadyzSpoolReadOnly(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "spool")
	h := spoolReady(t, dir)
	wantReady(t, h, "fresh spool")
	runCmd(t, "mount", "--bind", dir, dir)
	mounted := true
	t.Cleanup(func() {
		if mounted {
			exec.Command("umount", dir).Run()
		}
	})
	runCmd(t, "mount", "-o", "remount,bind,ro", dir)
	wantNotReady(t, h, "queue", "spool read-only")
	runCmd(t, "umount", dir)
	mounted = false
	wantReady(t, h, "spool writable again")
}

// TestReadyzSpoolFull: a spool on a full file system (a 3 MB tmpfs filled
// up) makes /readyz 503 naming the queue; freeing space brings it back.
func TestReadyzSpoolFull(t *testing.T) {
	needRoot(t)
	mnt := t.TempDir()
	runCmd(t, "mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	h := spoolReady(t, filepath.Join(mnt, "spool"))
	wantReady(t, h, "empty tmpfs")
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break // ENOSPC: full
		}
	}
	f.Close()
	wantNotReady(t, h, "queue", "tmpfs full")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	wantReady(t, h, "space freed")
}

// TestReadyzJSON: every failing part is named, with its reason; draining
// is a reason too.
func TestReadyzJSON(t *testing.T) {
	draining := false
	h := readyHandler([]readyCheck{
		{"queue", func(context.Context) error { return nil }},
		{"bounce_store", func(context.Context) error { return errors.New("read-only file system") }},
		{"identity", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	}, func() bool { return draining }, 50*time.Millisecond)
	code, parts := readyz(t, h)
	if code != 503 || parts["bounce_store"] != "read-only file system" || parts["identity"] == "" || parts["queue"] != "" {
		t.Fatalf("/readyz %d %v, want 503 naming bounce_store and identity (a check that hangs) only", code, parts)
	}
	h = readyHandler(nil, func() bool { return draining }, time.Second)
	draining = true
	if code, parts := readyz(t, h); code != 503 || parts["draining"] == "" {
		t.Fatalf("draining: /readyz %d %v, want 503 naming draining", code, parts)
	}
}
