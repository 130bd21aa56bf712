package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	"github.com/edgerelay/edgerelay/internal/safefile"
)

// ErrSocketInUse: another process holds the socket's lock file.
var ErrSocketInUse = errors.New("admin socket in use by another process (lock file held)")

// Socket is the listening admin socket.
type Socket struct {
	net.Listener
	path   string
	unlock func() error
}

// Listen creates the admin socket at path, mode 0600: it takes the lock
// file path+".lock" first (ErrSocketInUse when another process has it),
// removes a stale socket left at path by a process that died (never a
// file that is not a socket), and binds the socket in a private directory
// (0700) beside path before renaming it into place, so that it is never
// reachable with a wider mode.
func Listen(path string) (*Socket, error) {
	unlock, err := safefile.Lock(path + ".lock")
	if errors.Is(err, safefile.ErrLocked) {
		return nil, ErrSocketInUse
	}
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Socket, error) {
		unlock()
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return fail(fmt.Errorf("%s exists and is not a socket; not removed", path))
		}
		if err := os.Remove(path); err != nil {
			return fail(fmt.Errorf("remove stale socket: %w", err))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".as")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	tpath := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tpath, Net: "unix"})
	if err != nil {
		return fail(err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tpath, 0o600); err != nil {
		ln.Close()
		return fail(err)
	}
	if err := os.Rename(tpath, path); err != nil {
		ln.Close()
		return fail(err)
	}
	return &Socket{Listener: ln, path: path, unlock: unlock}, nil
}

// Path returns where the socket is.
func (s *Socket) Path() string { return s.path }

// Close stops listening, removes the socket file and releases the lock.
func (s *Socket) Close() error {
	err := s.Listener.Close()
	if rerr := os.Remove(s.path); err == nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = rerr
	}
	if uerr := s.unlock(); err == nil {
		err = uerr
	}
	return err
}
