package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/admin"
	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestAdminHTTPOff: without RELAY_ADMIN_TOKEN everything under /admin/ is
// 404 and says how to turn it on; with it, a request without the token
// is 401.
func TestAdminHTTPOff(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	srv := &admin.Server{Admin: sp}
	for _, path := range []string{"/admin/queue", "/admin/queue/X/body", "/admin/"} {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(method, path, nil)
			req.Header.Set("Authorization", "Bearer anything")
			adminHTTP(&Config{}, srv).ServeHTTP(rec, req)
			if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "RELAY_ADMIN_TOKEN is not set") {
				t.Fatalf("%s %s without a token: %d %s", method, path, rec.Code, rec.Body)
			}
		}
	}
	rec := httptest.NewRecorder()
	adminHTTP(&Config{AdminToken: "t0ken"}, srv).ServeHTTP(rec, httptest.NewRequest("GET", "/admin/queue", nil))
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("with a token, no Authorization: %d", rec.Code)
	}
}

// TestQueueCommandErrors: usage errors exit 2, no running process exits
// 1 naming RELAY_DATA_DIR and the socket.
func TestQueueCommandErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"list", "X"}, {"show"}, {"hold", "A", "B"}, {"retry", "A", "--all"}, {"frob"}, {"--nope", "list"}} {
		var out, errb bytes.Buffer
		if code := queueCommand(args, &out, &errb); code != queueExitUsage || !strings.Contains(errb.String(), "usage: edgerelay queue") {
			t.Errorf("%v: exit %d, %s", args, code, errb.String())
		}
	}
	dir := t.TempDir()
	t.Setenv("RELAY_DATA_DIR", dir)
	var out, errb bytes.Buffer
	code := queueCommand([]string{"list"}, &out, &errb)
	want := fmt.Sprintf("no edgerelay is running with RELAY_DATA_DIR=%s: socket %s not found", dir, filepath.Join(dir, "admin.sock"))
	if code != queueExitError || !strings.Contains(errb.String(), want) {
		t.Fatalf("exit %d, %s", code, errb.String())
	}
	err := socketError(fmt.Errorf("%w: x", admin.ErrPermission), "/d/admin.sock", "/d", false)
	if !strings.Contains(err.Error(), "no permission to use /d/admin.sock (mode 0600") {
		t.Fatal(err)
	}
}

// TestQueueListText: the table and summary, and what a remote server
// sent cannot drive the operator's terminal (control characters shown
// as '?').
func TestQueueListText(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	es := []queue.Entry{{Envelope: queue.Envelope{ID: "AAAA", From: "", Size: 2048, Attempts: 3, Arrival: now.Add(-90 * time.Minute),
		NextAttempt: now.Add(5 * time.Minute), Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending, Attempts: 3,
			Reply: &queue.Reply{Code: 451, Enhanced: "4.4.1", Lines: []string{"down \x1b[2J\x07 now"}}}}}},
		{Envelope: queue.Envelope{ID: "BBBB", From: "a@example.org", Size: 100, Arrival: now.Add(-time.Minute), Hold: true,
			Recipients: []queue.Recipient{{Addr: "c@example.net", Status: queue.StatusPending}}}}}
	var b bytes.Buffer
	printQueueList(&b, es, now)
	out := b.String()
	for _, want := range []string{"AAAA  1h30m  2.0 KiB  3      in 5m00s  queued   <>", "451 4.4.1 down ?[2J? now", "BBBB  1m00s  100 B", "held",
		"-- 2 message(s), 2.1 KiB, oldest 1h30m"} {
		if !strings.Contains(out, want) {
			t.Errorf("list lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("control characters reach the terminal:\n%q", out)
	}
}

// TestQueueCommandURL: --url with --token-file runs the commands over
// /admin/; a wrong token is an error naming the refusal.
func TestQueueCommandURL(t *testing.T) {
	sp, err := spool.Open(t.TempDir(), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	env := &queue.Envelope{From: "a@example.org", Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending}}}
	id, err := sp.Enqueue(t.Context(), env, strings.NewReader("Subject: over http\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(adminHTTP(&Config{AdminToken: "tok-123"}, &admin.Server{Admin: sp}))
	defer ts.Close()
	tokFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokFile, []byte("tok-123\n"), 0o600)
	q := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := queueCommand(append([]string{"--url", ts.URL, "--token-file", tokFile}, args...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, e := q("list"); code != 0 || !strings.Contains(out, id) || !strings.Contains(out, "-- 1 message(s)") {
		t.Fatalf("list: %d %s %s", code, out, e)
	}
	if code, out, _ := q("show", id, "--body"); code != 0 || out != "Subject: over http\r\n\r\nhi\r\n" {
		t.Fatalf("show --body: %d %q", code, out)
	}
	if code, out, _ := q("hold", id); code != 0 || !strings.Contains(out, id+": on hold") {
		t.Fatalf("hold: %d %s", code, out)
	}
	if code, _, e := q("delete", "NOSUCH"); code != queueExitNotFound || !strings.Contains(e, "no such message: NOSUCH") {
		t.Fatalf("delete of an unknown ID: %d %s", code, e)
	}
	if code, out, _ := q("delete", id); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s", code, out)
	}
	os.WriteFile(tokFile, []byte("wrong"), 0o600)
	if code, _, e := q("list"); code != queueExitError || !strings.Contains(e, "bearer token is not the admin token") {
		t.Fatalf("wrong token: %d %s", code, e)
	}
}

// TestAdminSocketLifecycle: startAdmin makes the socket in RELAY_DATA_DIR
// (0600), a client that connects and says nothing does not hold the
// shutdown past its bound, and stop removes the socket.
func TestAdminSocketLifecycle(t *testing.T) {
	dir, err := os.MkdirTemp("", "adm") // short: the socket path limit
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	srv, stop := startAdmin(&Config{DataDir: dir}, sp, slog.New(slog.DiscardHandler))
	if srv == nil {
		t.Fatal("no admin server for a spool")
	}
	path := filepath.Join(dir, adminSocketName)
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	stop()
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("stop took %v with a silent client", d)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left: %v", err)
	}
}

// TestQueueShowText: show prints the envelope, an old copy's time (SQS +
// S3), and each recipient's reply with the host that gave it.
func TestQueueShowText(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := &queue.Entry{AsOf: now.Add(-3 * time.Minute), Envelope: queue.Envelope{ID: "CCCC", From: "a@example.org", Arrival: now.Add(-time.Hour),
		Attempts: 2, NextAttempt: now.Add(time.Minute), Operator: queue.OperatorBounce,
		Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusFailed, Attempts: 2, LastAttempt: now.Add(-time.Minute),
			RemoteMTA: "gw [127.0.0.1]", Reply: &queue.Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"no\rsuch user"}}}}}}
	var b bytes.Buffer
	printQueueEntry(&b, e, now)
	out := b.String()
	for _, want := range []string{"ID:           CCCC", "State:        bouncing", "As of:        2026-12-01T11:57:00Z (3m00s ago)",
		"Next attempt: 2026-12-01T12:01:00Z (in 1m00s)", "b@example.net  failed  attempts 2, last 2026-12-01T11:59:00Z",
		"reply: 550 5.1.1 no?such user (from gw [127.0.0.1])"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
}
