package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestLogFormatTextNotTerminal (issue 15, finding 8): RELAY_LOG_FORMAT=text
// into a file or pipe writes no colour codes and a full RFC 3339 time (date
// and zone), not the time of day alone.
func TestLogFormatTextNotTerminal(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&Config{LogFormat: "text", LogLevel: "info"}, &b)
	log.Info("queued", "id", "0NJ6")
	line := b.String()
	if strings.Contains(line, "\x1b[") {
		t.Errorf("colour codes in %q", line)
	}
	m := regexp.MustCompile(`^(\S+) INF queued id=0NJ6\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("line %q", line)
	}
	ts, err := time.Parse(time.RFC3339, m[1])
	if err != nil || time.Since(ts).Abs() > time.Minute {
		t.Errorf("time %q: %v", m[1], err)
	}
	// The same into a file.
	f, err := os.Create(t.TempDir() + "/log")
	if err != nil {
		t.Fatal(err)
	}
	newLogger(&Config{LogFormat: "text", LogLevel: "info"}, f).Warn("hello")
	f.Close()
	raw, _ := os.ReadFile(f.Name())
	if strings.Contains(string(raw), "\x1b[") || !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d) WRN hello\n$`).Match(raw) {
		t.Errorf("file got %q", raw)
	}
	// auto and json into a file: JSON.
	for _, format := range []string{"auto", "json"} {
		var b bytes.Buffer
		newLogger(&Config{LogFormat: format, LogLevel: "info"}, &b).Info("x")
		if !strings.HasPrefix(b.String(), `{"time":"`) {
			t.Errorf("%s: %q", format, b.String())
		}
	}
}

// TestLogFormatTextTerminal: on a terminal (a pseudo-terminal here), text
// and auto are tint with colours and the time of day; json stays JSON.
func TestLogFormatTextTerminal(t *testing.T) {
	master, slave := openPty(t)
	for _, format := range []string{"text", "auto", "json"} {
		newLogger(&Config{LogFormat: format, LogLevel: "info"}, slave).Info("hello " + format)
		buf := make([]byte, 4096)
		master.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := master.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got := string(buf[:n])
		colour := strings.Contains(got, "\x1b[")
		if colour != (format != "json") || !strings.Contains(got, "hello "+format) {
			t.Errorf("%s on a terminal: %q", format, got)
		}
	}
}

// openPty opens a pseudo-terminal pair (Linux /dev/ptmx).
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	var unlock int32
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Skipf("unlockpt: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Skipf("ptsname: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}
