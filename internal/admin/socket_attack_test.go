package admin

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttackSocketPathPlanted: what another user or a mistake left where
// the socket goes is never removed, followed or replaced: a symbolic link
// (to a stale socket, to a file, dangling), a directory, and a symbolic
// link at the lock file. Listen fails naming the path; each planted thing
// and what it points to are as they were.
func TestAttackSocketPathPlanted(t *testing.T) {
	dir, _ := os.MkdirTemp("", "adm")
	defer os.RemoveAll(dir)
	other, _ := os.MkdirTemp("", "adm-other")
	defer os.RemoveAll(other)
	staleSock := filepath.Join(other, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: staleSock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	victim := filepath.Join(other, "victim")
	os.WriteFile(victim, []byte("keep"), 0o644)
	path := filepath.Join(dir, "admin.sock")
	for name, plant := range map[string]func() error{
		"link to a stale socket": func() error { return os.Symlink(staleSock, path) },
		"link to a file":         func() error { return os.Symlink(victim, path) },
		"dangling link":          func() error { return os.Symlink(filepath.Join(other, "none"), path) },
		"directory":              func() error { return os.Mkdir(path, 0o700) },
		"link at the lock file":  func() error { return os.Symlink(filepath.Join(other, "lock"), path+".lock") },
	} {
		os.RemoveAll(path)
		os.RemoveAll(path + ".lock")
		if err := plant(); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Lstat(path)
		if s, err := Listen(path); err == nil {
			s.Close()
			t.Errorf("%s: Listen succeeded", name)
			continue
		} else if name != "link at the lock file" && !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error does not name the path: %v", name, err)
		}
		if after, _ := os.Lstat(path); (before == nil) != (after == nil) || before != nil && before.Mode() != after.Mode() {
			t.Errorf("%s: %s changed: %v → %v", name, path, before, after)
		}
		if fi, err := os.Lstat(staleSock); err != nil || fi.Mode().Type() != os.ModeSocket {
			t.Errorf("%s: the linked socket was touched: %v", name, err)
		}
		if b, _ := os.ReadFile(victim); string(b) != "keep" {
			t.Errorf("%s: the linked file was changed", name)
		}
		for _, n := range []string{"none", "lock"} {
			if _, err := os.Lstat(filepath.Join(other, n)); err == nil {
				t.Errorf("%s: %s created through a link", name, n)
			}
		}
	}
}
