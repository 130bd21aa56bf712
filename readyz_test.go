package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue/spool"
)

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
	sp, err := spool.Open(dir, spool.Options{})
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
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "spool")
	h := spoolReady(t, dir)
	wantReady(t, h, "fresh spool")
	restore := testutil.ReadOnly(t, dir)
	wantNotReady(t, h, "queue", "spool read-only")
	restore()
	wantReady(t, h, "spool writable again")
}

// TestReadyzSpoolFull: a spool on a full file system (a 3 MB tmpfs filled
// up) makes /readyz 503 naming the queue; freeing space brings it back.
func TestReadyzSpoolFull(t *testing.T) {
	mnt := testutil.Tmpfs(t, "3m")
	h := spoolReady(t, filepath.Join(mnt, "spool"))
	wantReady(t, h, "empty tmpfs")
	filler := filepath.Join(mnt, "filler")
	testutil.Fill(t, filler)
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
