package spool

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/safefile"
	"github.com/edgerelay/edgerelay/queue"
)

// rootFS is the real file system that records every path used outside
// root (cleaned, so that a/../.. is seen for what it is).
type rootFS struct {
	safefile.OS
	root    string
	mu      sync.Mutex
	outside []string
}

func (r *rootFS) check(paths ...string) {
	for _, p := range paths {
		c := filepath.Clean(p)
		if c != r.root && !strings.HasPrefix(c, r.root+string(filepath.Separator)) || strings.ContainsRune(p, 0) {
			r.mu.Lock()
			r.outside = append(r.outside, p)
			r.mu.Unlock()
		}
	}
}

func (r *rootFS) MkdirAll(d string) error { r.check(d); return r.OS.MkdirAll(d) }
func (r *rootFS) CreateTemp(d, p string) (safefile.TempFile, error) {
	r.check(d, filepath.Join(d, p))
	return r.OS.CreateTemp(d, p)
}
func (r *rootFS) Rename(a, b string) error                { r.check(a, b); return r.OS.Rename(a, b) }
func (r *rootFS) Link(a, b string) error                  { r.check(a, b); return r.OS.Link(a, b) }
func (r *rootFS) Remove(p string) error                   { r.check(p); return r.OS.Remove(p) }
func (r *rootFS) RemoveAll(p string) error                { r.check(p); return r.OS.RemoveAll(p) }
func (r *rootFS) SyncDir(d string) error                  { r.check(d); return r.OS.SyncDir(d) }
func (r *rootFS) ReadFile(p string) ([]byte, error)       { r.check(p); return r.OS.ReadFile(p) }
func (r *rootFS) Open(p string) (safefile.File, error)    { r.check(p); return r.OS.Open(p) }
func (r *rootFS) OpenRW(p string) (safefile.File, error)  { r.check(p); return r.OS.OpenRW(p) }
func (r *rootFS) Create(p string) (safefile.File, error)  { r.check(p); return r.OS.Create(p) }
func (r *rootFS) ReadDirNames(d string) ([]string, error) { r.check(d); return r.OS.ReadDirNames(d) }
func (r *rootFS) Lstat(p string) (fs.FileInfo, error)     { r.check(p); return r.OS.Lstat(p) }

// FuzzAdminID: whatever ID reaches the spool's operator actions directly
// (not through internal/admin's check: '/', "..", NUL, non-UTF-8, 64 KiB),
// every action on an ID that is not queued answers ErrNotFound, changes
// nothing, and no file operation of the spool names a path outside its
// directory; the two queued messages (journal and msg/) stay whole.
func FuzzAdminID(f *testing.F) {
	for _, s := range []string{"../A", "A/../../x", "..", ".", "/etc/passwd", "A\x00", "\xff\xfe", "msg", "tmp",
		"A.msg", "A.env", "B/..", strings.Repeat("Z", 65), "06H37JRWT0J4TQ58C0NB", ""} {
		for op := range byte(7) {
			f.Add(s, op)
		}
	}
	base := f.TempDir()
	rfs := &rootFS{root: filepath.Join(base, "spool")}
	s, err := Open(rfs.root, Options{fs: rfs, PollInterval: time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	for id, n := range map[string]int{"A": 100, "B": 200 << 10} {
		env := &queue.Envelope{ID: id, From: "a@example.org", Arrival: time.Now(),
			Recipients: []queue.Recipient{{Addr: "b@example.net", Status: queue.StatusPending}}}
		if _, err := s.Enqueue(ctx, env, strings.NewReader(strings.Repeat("x", n))); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, id string, op byte) {
		if id == "A" || id == "B" {
			return
		}
		var err error
		switch op % 7 {
		case 0:
			_, err = s.Show(ctx, id)
		case 1:
			var rc interface{ Close() error }
			if rc, err = s.OpenBody(ctx, id); err == nil {
				rc.Close()
			}
		case 2:
			_, err = s.Hold(ctx, id)
		case 3:
			_, err = s.Release(ctx, id)
		case 4:
			_, err = s.Retry(ctx, id)
		case 5:
			_, err = s.Bounce(ctx, id)
		case 6:
			_, err = s.Delete(ctx, id)
		}
		if !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("op %d on %q: %v, want ErrNotFound", op%7, id, err)
		}
		rfs.mu.Lock()
		out := rfs.outside
		rfs.mu.Unlock()
		if len(out) > 0 {
			t.Fatalf("op %d on %q used paths outside the spool: %q", op%7, id, out)
		}
		for _, q := range []string{"A", "B"} {
			if en, err := s.Show(ctx, q); err != nil || en.Envelope.Hold || en.Envelope.Operator != "" {
				t.Fatalf("after op %d on %q, %s: %+v, %v", op%7, id, q, en, err)
			}
		}
	})
}
