package admin

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/queue"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// spoolWith opens a spool in a fresh directory with one message per
// recipient list and returns it with the IDs.
func spoolWith(t *testing.T, rcpts ...string) (*spool.Spool, []string) {
	t.Helper()
	s, err := spool.Open(filepath.Join(t.TempDir(), "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var ids []string
	for _, r := range rcpts {
		env := &queue.Envelope{From: "alice@example.org", Recipients: []queue.Recipient{{Addr: r, Status: queue.StatusPending}}}
		id, err := s.Enqueue(context.Background(), env, strings.NewReader("Subject: to "+r+"\r\n\r\nhello\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return s, ids
}

// serveSocket serves srv on a socket in a fresh directory (short: the
// socket path limit) and returns its path.
func serveSocket(t testing.TB, srv *Server) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "adm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock, err := Listen(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sock) }()
	t.Cleanup(func() {
		sock.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return sock.Path()
}

func call(t *testing.T, path string, op, id string) *Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := Call(ctx, path, Request{Op: op, ID: id}, nil)
	if err != nil {
		t.Fatalf("%s %s: %v", op, id, err)
	}
	return resp
}

// TestSocketOperations: every operation over the socket, against a spool.
func TestSocketOperations(t *testing.T) {
	s, ids := spoolWith(t, "bob@example.net", "carol@example.net")
	path := serveSocket(t, &Server{Admin: s})
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v, %v; want a socket with mode 0600", fi.Mode(), err)
	}
	if r := call(t, path, OpList, ""); !r.OK || len(r.Entries) != 2 || r.Entries[0].Envelope.ID != ids[0] {
		t.Fatalf("list: %+v", r)
	}
	if r := call(t, path, OpShow, ids[1]); !r.OK || r.Entry.Envelope.Recipients[0].Addr != "carol@example.net" {
		t.Fatalf("show: %+v", r)
	}
	var body bytes.Buffer
	if r, err := Call(context.Background(), path, Request{Op: OpBody, ID: ids[0]}, &body); err != nil || !r.OK ||
		body.String() != "Subject: to bob@example.net\r\n\r\nhello\r\n" || r.BodyBytes != int64(body.Len()) {
		t.Fatalf("body: %+v, %v, %q", r, err, body.String())
	}
	for _, op := range []string{OpHold, OpRelease, OpRetry, OpBounce} {
		if r := call(t, path, op, ids[0]); !r.OK || !r.Immediate {
			t.Fatalf("%s: %+v", op, r)
		}
	}
	if r := call(t, path, OpShow, ids[0]); r.Entry.Envelope.Operator != queue.OperatorBounce {
		t.Fatalf("after bounce: %+v", r.Entry.Envelope)
	}
	if r := call(t, path, OpRetryAll, ""); !r.OK {
		t.Fatalf("retry-all: %+v", r)
	}
	if r := call(t, path, OpDelete, ids[1]); !r.OK || !r.Immediate {
		t.Fatalf("delete: %+v", r)
	}
	for _, id := range []string{ids[1], "NOSUCHID", "../../etc/passwd"} {
		r := call(t, path, OpShow, id)
		if r.OK || r.Code != CodeNotFound || !errors.Is(r.Err(), queue.ErrNotFound) {
			t.Fatalf("show %q: %+v", id, r)
		}
	}
}

// TestSocketFile: a stale socket is replaced, a file that is not a
// socket is refused and kept, a second server is refused while the first
// holds the lock, and Close removes the socket.
func TestSocketFile(t *testing.T) {
	dir, _ := os.MkdirTemp("", "adm")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "admin.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close() // a process that died
	if _, err := Call(context.Background(), path, Request{Op: OpList}, nil); !errors.Is(err, ErrNoServer) {
		t.Fatalf("stale socket: %v, want ErrNoServer", err)
	}
	sock, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	if _, err := Listen(path); !errors.Is(err, ErrSocketInUse) {
		t.Fatalf("second Listen: %v", err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("second Listen touched the socket: %v %v", fi, err)
	}
	sock.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left after Close: %v", err)
	}
	if _, err := Call(context.Background(), path, Request{Op: OpList}, nil); !errors.Is(err, ErrNoServer) {
		t.Fatalf("no socket: %v, want ErrNoServer", err)
	}
	os.WriteFile(path, []byte("mine"), 0o600)
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "mine" {
		t.Fatal("regular file replaced")
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".as") {
			t.Fatalf("private directory %s left", e.Name())
		}
	}
}

// TestSocketPermission: a socket this user may not open is reported as
// ErrPermission (skipped as root, who may open anything).
func TestSocketPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores the socket's mode; the 0600 mode itself is checked by TestSocketOperations")
	}
	s, _ := spoolWith(t)
	path := serveSocket(t, &Server{Admin: s})
	os.Chmod(path, 0)
	defer os.Chmod(path, 0o600)
	if _, err := Call(context.Background(), path, Request{Op: OpList}, nil); !errors.Is(err, ErrPermission) {
		t.Fatalf("err %v, want ErrPermission", err)
	}
}

// rawExchange writes req to the socket, half-closes, and reads what the
// server answers until it closes, within d.
func rawExchange(t *testing.T, path string, req []byte, d time.Duration) ([]byte, error) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	go func() {
		c.Write(req)
		c.(*net.UnixConn).CloseWrite()
	}()
	return io.ReadAll(c)
}

// TestSocketBadRequests: whatever arrives, one bounded error line, then
// the connection is closed.
func TestSocketBadRequests(t *testing.T) {
	s, ids := spoolWith(t, "bob@example.net")
	path := serveSocket(t, &Server{Admin: s})
	for name, req := range map[string]string{
		"empty":       "",
		"not json":    "list\n",
		"nul":         "\x00\x00\x00\n",
		"not utf-8":   "{\"v\":1,\"op\":\"show\",\"id\":\"\xff\xfe\"}\n",
		"too long":    `{"v":1,"op":"list","id":"` + strings.Repeat("A", 10000) + "\"}\n",
		"no newline":  strings.Repeat("{", 5000),
		"version 2":   `{"v":2,"op":"list"}` + "\n",
		"no version":  `{"op":"list"}` + "\n",
		"unknown op":  `{"v":1,"op":"rm -rf"}` + "\n",
		"id on list":  `{"v":1,"op":"list","id":"` + ids[0] + "\"}\n",
		"no id":       `{"v":1,"op":"delete"}` + "\n",
		"control id":  `{"v":1,"op":"delete","id":"a\nb"}` + "\n",
		"two lines":   `{"v":1,"op":"show","id":"X"}` + "\n" + `{"v":1,"op":"delete","id":"` + ids[0] + "\"}\n",
		"json array":  "[1,2]\n",
		"huge number": `{"v":1e999,"op":"list"}` + "\n",
	} {
		out, err := rawExchange(t, path, []byte(req), 5*time.Second)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
		var r Response
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &r) != nil || r.OK || r.V != Version || r.Error == "" {
			t.Fatalf("%s: answered %q", name, out)
		}
	}
	// Nothing of the above touched the message.
	if r := call(t, path, OpShow, ids[0]); !r.OK {
		t.Fatalf("message gone: %+v", r)
	}
}

// TestSocketHungClients: clients that connect and say nothing do not
// hold the server: past MaxConns a client is told "busy" at once, and the
// silent ones are answered and closed at the read deadline.
func TestSocketHungClients(t *testing.T) {
	s, _ := spoolWith(t, "bob@example.net")
	srv := &Server{Admin: s, MaxConns: 3, ReadTimeout: 300 * time.Millisecond}
	path := serveSocket(t, srv)
	var hung []net.Conn
	for range 3 {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hung = append(hung, c)
	}
	time.Sleep(50 * time.Millisecond) // all three accepted
	start := time.Now()
	out, _ := rawExchange(t, path, []byte(`{"v":1,"op":"list"}`+"\n"), 5*time.Second)
	if !strings.Contains(string(out), `"code":"busy"`) || time.Since(start) > time.Second {
		t.Fatalf("fourth client: %q after %v", out, time.Since(start))
	}
	for _, c := range hung {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, `"code":"bad_request"`) {
			t.Fatalf("hung client: %q, %v", line, err)
		}
	}
	// Their slots come back once each connection is closed (at most the
	// short linger after the answer).
	deadline := time.Now().Add(3 * time.Second)
	for r := call(t, path, OpList, ""); !r.OK; r = call(t, path, OpList, "") {
		if time.Now().After(deadline) {
			t.Fatalf("after the hung clients: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flakyListener fails its first Accepts as a process out of file
// descriptors does.
type flakyListener struct {
	net.Listener
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeAcceptErrors: failed Accepts (EMFILE) do not stop the server.
func TestServeAcceptErrors(t *testing.T) {
	s, _ := spoolWith(t, "bob@example.net")
	dir, _ := os.MkdirTemp("", "adm")
	defer os.RemoveAll(dir)
	sock, err := Listen(filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- (&Server{Admin: s}).Serve(&flakyListener{Listener: sock, fails: 3}) }()
	if r := call(t, sock.Path(), OpList, ""); !r.OK || len(r.Entries) != 1 {
		t.Fatalf("list after accept errors: %+v", r)
	}
	sock.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
}
