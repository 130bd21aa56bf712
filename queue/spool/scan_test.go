package spool_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/queuetest"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestSpoolRescan damages a spool the ways a crash or a disk can, reopens
// it, and checks what Open kept, removed and quarantined, and at which
// level it logged. Envelopes are never deleted and nothing crashes.
func TestSpoolRescan(t *testing.T) {
	const id = "MSG1"
	writeFile := func(t *testing.T, path, data string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		// damage changes the spool (holding message id, closed) in dir.
		damage         func(t *testing.T, dir string)
		wantLen        int
		wantMsg        []string // files left in msg/
		wantQuarantine []string
		wantLog        string // a line with this level and text
		unleasable     bool   // kept, but its claim fails (not due again at once)
	}{
		{
			name:    "intact",
			damage:  func(t *testing.T, dir string) {},
			wantLen: 1,
			wantMsg: []string{id + ".msg"},
		},
		{
			name: "orphan body of an interrupted enqueue",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "msg", "ORPHAN.eml"), "half")
			},
			wantLen: 1,
			wantMsg: []string{id + ".msg"},
			wantLog: "level=INFO msg=\"spool: removed orphan body",
		},
		{
			name: "temporary files",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "tmp", "X.eml.123.tmp"), "partial")
				writeFile(t, filepath.Join(dir, "tmp", "X.env.456.tmp"), "{")
			},
			wantLen: 1,
			wantMsg: []string{id + ".msg"},
			wantLog: "level=INFO msg=\"spool: removed temporary files",
		},
		{
			name:           "envelope is not JSON",
			damage:         func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "msg", id+".env"), "\x00\xff garbage") },
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR msg=\"spool: message quarantined",
		},
		{
			name: "envelope truncated",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "msg", id+".env"), `{"id":"MSG1","from":"a@`)
			},
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR",
		},
		{
			name:           "envelope empty",
			damage:         func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "msg", id+".env"), "") },
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR",
		},
		{
			name:           "envelope is JSON null",
			damage:         func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "msg", id+".env"), "null") },
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR",
		},
		{
			name: "envelope of the wrong type",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "msg", id+".env"), `{"id":"MSG1","recipients":"x"}`)
			},
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR",
		},
		{
			name:           "envelope names another message",
			damage:         func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "msg", id+".env"), `{"id":"OTHER"}`) },
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR",
		},
		{
			// A read error that is not about the content (here EISDIR; in
			// life EIO, EMFILE, EACCES) is not corruption: the message stays
			// queued and its claim tries again (issue 8 item 2).
			name: "envelope is a directory",
			damage: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "msg", id+".env")
				os.Remove(p)
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			wantLen:    1,
			wantMsg:    []string{id + ".env", id + ".msg"},
			wantLog:    "level=WARN msg=\"spool: cannot read envelope; left in place",
			unleasable: true,
		},
		{
			name: "envelope without recipients",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "msg", id+".env"), `{"id":"MSG1","from":"a@b.example","recipients":[]}`)
			},
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR msg=\"spool: message quarantined",
		},
		{
			name: "envelope with a NUL in a recipient",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "msg", id+".env"), `{"id":"MSG1","recipients":[{"addr":"a@b.example\u0000@evil.example"}]}`)
			},
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR msg=\"spool: message quarantined",
		},
		{
			// A quarantine interrupted after the message file moved (issue
			// 10: the one-file layout): the envelope file of a Reschedule is
			// not a leftover to delete, it follows its message file.
			name: "quarantine interrupted after the envelope",
			damage: func(t *testing.T, dir string) {
				s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
				if err := s.Reschedule(t.Context(), mustLease(t, s), time.Now()); err != nil {
					t.Fatal(err)
				}
				s.Close()
				if err := os.Rename(filepath.Join(dir, "msg", id+".msg"), filepath.Join(dir, "quarantine", id+".msg")); err != nil {
					t.Fatal(err)
				}
			},
			wantQuarantine: []string{id + ".env", id + ".msg"},
			wantLog:        "level=ERROR msg=\"spool: message quarantined",
		},
		{
			// Issue 10: the body is in the message file; missing is cut short.
			name:           "body missing",
			damage:         func(t *testing.T, dir string) { os.Truncate(filepath.Join(dir, "msg", id+".msg"), 514) },
			wantQuarantine: []string{id + ".msg"},
			wantLog:        "level=ERROR msg=\"spool: message quarantined",
		},
		{
			name: "unknown file",
			damage: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "msg", "README"), "operator notes")
			},
			wantLen: 1,
			wantMsg: []string{id + ".msg", "README"},
			wantLog: "level=WARN",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
			env := envelope("bob@example.net")
			env.ID = id
			mustEnqueue(t, s, env, "body")
			s.Close()
			tc.damage(t, dir)

			var logs logBuffer
			s = openSpool(t, dir, spool.Options{JournalMaxBytes: -1, Logger: logs.Logger()})
			if s.Len() != tc.wantLen {
				t.Errorf("Len = %d, want %d", s.Len(), tc.wantLen)
			}
			if got := dirNames(t, filepath.Join(dir, "msg")); !equal(got, tc.wantMsg) {
				t.Errorf("msg/ = %v, want %v", got, tc.wantMsg)
			}
			if got := dirNames(t, filepath.Join(dir, "quarantine")); !equal(got, tc.wantQuarantine) {
				t.Errorf("quarantine/ = %v, want %v", got, tc.wantQuarantine)
			}
			if got := dirNames(t, filepath.Join(dir, "tmp")); len(got) != 0 {
				t.Errorf("tmp/ = %v, want empty", got)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks %q:\n%s", tc.wantLog, logs.String())
			}
			if tc.unleasable {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer cancel()
				if _, err := s.Lease(ctx); err == nil || !strings.Contains(err.Error(), id) {
					t.Errorf("Lease error = %v, want one naming %s", err, id)
				}
				noLease(t, s)
				if got := dirNames(t, filepath.Join(dir, "quarantine")); len(got) != 0 {
					t.Errorf("quarantine/ after the claim = %v, want empty", got)
				}
			} else if tc.wantLen == 1 {
				if m := mustLease(t, s); readBody(t, s, m) != "body" {
					t.Error("the intact message lost its body")
				}
			} else {
				noLease(t, s)
			}
		})
	}
}

// TestSpoolQuarantineKeepsEarlierCopies: a second quarantine of the same ID
// does not overwrite the first.
func TestSpoolQuarantineKeepsEarlierCopies(t *testing.T) {
	dir := t.TempDir()
	for range 2 {
		s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1})
		env := envelope("bob@example.net")
		env.ID = "SAME"
		mustEnqueue(t, s, env, "body")
		s.Close()
		if err := os.WriteFile(filepath.Join(dir, "msg", "SAME.env"), []byte("bad"), 0o600); err != nil {
			t.Fatal(err)
		}
		openSpool(t, dir, spool.Options{JournalMaxBytes: -1}).Close()
	}
	if got := dirNames(t, filepath.Join(dir, "quarantine")); len(got) != 4 {
		t.Fatalf("quarantine/ = %v, want 4 files", got)
	}
}

// BenchmarkSpoolEnqueue measures durable Enqueue of a 10 KiB body from
// parallel sessions (one file fsync each, since issue 10; directory fsyncs
// shared by concurrent enqueues).
func BenchmarkSpoolEnqueue(b *testing.B) {
	s := openSpool(b, b.TempDir(), spool.Options{JournalMaxBytes: -1})
	queuetest.BenchEnqueue(b, s, func() *queue.Envelope { return envelope("bob@example.net") })
}

// TestSpoolMigratesPreviousLayout: a spool written by the layout before
// issue 10 (msg/<id>.env, JSON, beside msg/<id>.eml) keeps working: Open
// turns each message into one message file with its body, envelope and
// claim, removes the old files, and quarantines an old message whose
// envelope cannot be used, body first as that layout did.
func TestSpoolMigratesPreviousLayout(t *testing.T) {
	dir := t.TempDir()
	msg := filepath.Join(dir, "msg")
	if err := os.MkdirAll(msg, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(msg, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("OLD1.eml", "Subject: old\r\n\r\nbody\r\n")
	write("OLD1.env", `{"id":"OLD1","from":"a@example.com","recipients":[{"addr":"b@example.net","status":"delivered"},{"addr":"c@example.net","status":"pending","attempts":1}],"arrival":"2026-01-01T00:00:00Z","attempts":1,"size":21}`+"\n")
	write("BAD.eml", "body")
	write("BAD.env", "{garbage")
	var logs logBuffer
	s := openSpool(t, dir, spool.Options{JournalMaxBytes: -1, Logger: logs.Logger()})
	if got := dirNames(t, msg); !equal(got, []string{"OLD1.msg"}) {
		t.Fatalf("msg/ = %v, want [OLD1.msg]", got)
	}
	if got := dirNames(t, filepath.Join(dir, "quarantine")); !equal(got, []string{"BAD.eml", "BAD.env"}) {
		t.Fatalf("quarantine/ = %v", got)
	}
	if s.Len() != 1 {
		t.Fatalf("Len = %d, want 1", s.Len())
	}
	m := mustLease(t, s)
	if m.Envelope.ID != "OLD1" || m.Envelope.Attempts != 2 || m.Envelope.Recipients[0].Status != queue.StatusDelivered || m.Envelope.Recipients[1].Attempts != 1 {
		t.Fatalf("migrated envelope = %+v", m.Envelope)
	}
	if got := readBody(t, s, m); got != "Subject: old\r\n\r\nbody\r\n" {
		t.Fatalf("migrated body = %q", got)
	}
	if !strings.Contains(logs.String(), "migrated") {
		t.Errorf("no log of the migration:\n%s", logs.String())
	}
}
