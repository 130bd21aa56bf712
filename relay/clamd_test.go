package relay

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseClamdReply(t *testing.T) {
	for _, tc := range []struct {
		reply    string
		infected bool
		sig      string
		err      error // nil: a verdict; ErrClamdReply, ErrClamdSizeLimit, or errAny
	}{
		{"stream: OK", false, "", nil},
		{"stream: Win.Test.EICAR_HDB-1 FOUND", true, "Win.Test.EICAR_HDB-1", nil},
		{"stream: Test.EICAR-Local.NDB.UNOFFICIAL FOUND", true, "Test.EICAR-Local.NDB.UNOFFICIAL", nil},
		{"INSTREAM size limit exceeded. ERROR", false, "", ErrClamdSizeLimit},
		{"stream: Can't allocate memory ERROR", false, "", errAny},
		{"UNKNOWN COMMAND", false, "", ErrClamdReply},
		{"stream:  FOUND", false, "", ErrClamdReply},
		{"stream: bad\x01name FOUND", true, "bad?name", nil},                                    // a detection all the same
		{"stream: " + strings.Repeat("x", 201) + " FOUND", true, strings.Repeat("x", 200), nil}, // cut for the reply
		{"1: stream: OK", false, "", ErrClamdReply},                                             // an IDSESSION reply: not ours
		{"", false, "", ErrClamdReply},
		{"stream: ok", false, "", ErrClamdReply},
	} {
		v, err := parseClamdReply([]byte(tc.reply))
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%q: %v", tc.reply, err)
		case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
			t.Errorf("%q: err %v, want %v", tc.reply, err, tc.err)
		case v.Infected != tc.infected || v.Signature != tc.sig:
			t.Errorf("%q: %+v, want infected=%v %q", tc.reply, v, tc.infected, tc.sig)
		}
	}
}

var errAny = errors.New("any error")

func TestParseClamdAddr(t *testing.T) {
	for in, want := range map[string]string{
		"tcp://127.0.0.1:3310":         "tcp 127.0.0.1:3310",
		"tcp://clamav:3310/":           "tcp clamav:3310",
		"tcp://[::1]:3310":             "tcp [::1]:3310",
		"unix:///run/clamav/clamd.ctl": "unix /run/clamav/clamd.ctl",
		"tcp://clamav":                 "",
		"tcp://:3310":                  "",
		"unix://relative/path":         "",
		"127.0.0.1:3310":               "",
		"":                             "",
	} {
		n, a, err := ParseClamdAddr(in)
		got := ""
		if err == nil {
			got = n + " " + a
		}
		if got != want {
			t.Errorf("%q: got %q (%v), want %q", in, got, err, want)
		}
	}
}

// scanOnce streams body to c and returns the verdict.
func scanOnce(c *Clamd, body string) (Verdict, error) {
	st, err := c.Begin(context.Background())
	if err != nil {
		return Verdict{}, err
	}
	defer st.Close()
	if _, err := st.Write([]byte(body)); err != nil {
		return Verdict{}, err
	}
	return st.Finish()
}

// TestClamdClientFaults: the client against clamd stand-ins: clean,
// infected, an error reply, garbage, a clamd that reads nothing, one that
// never answers, one that closes mid-stream, one that answers after the
// timeout, its size limit, and none at all. Each ends within the timeout
// (plus a margin) with a verdict or an error, never hangs.
func TestClamdClientFaults(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: more than the socket buffers
	for _, tc := range []struct {
		mode, body string
		infected   bool
		err        error // nil, errAny or a sentinel
	}{
		{"", "clean text\r\n", false, nil},
		{"", "before " + eicar + " after", true, nil},
		{"", big + eicar, true, nil},
		{"error", "x", false, errAny},
		{"garbage", "x", false, ErrClamdReply},
		{"hang", big, false, errAny},
		{"hang-reply", "x", false, errAny},
		{"close-mid", big, false, errAny},
		{"slow", "x", false, errAny},
		{"size-limit", big, false, ErrClamdSizeLimit},
		{"down", "x", false, errAny},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			f := newFakeClamd(t, tc.mode)
			addr := f.addr()
			if tc.mode == "down" {
				f.close()
			}
			c, err := NewClamd(addr, 500*time.Millisecond, 2)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			v, err := scanOnce(c, tc.body)
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("took %v", took)
			}
			switch {
			case tc.err == nil && err != nil:
				t.Fatalf("err %v", err)
			case tc.err == errAny && err == nil, tc.err != nil && tc.err != errAny && !errors.Is(err, tc.err):
				t.Fatalf("err %v, want %v", err, tc.err)
			case v.Infected != tc.infected:
				t.Fatalf("verdict %+v", v)
			}
			if tc.infected && v.Signature != "Eicar-Test-Signature" {
				t.Errorf("signature %q", v.Signature)
			}
			if len(c.slots) != 0 {
				t.Errorf("%d slots still held", len(c.slots))
			}
		})
	}
}

// TestClamdPoolBound: at most maxConns connections are open at once; one
// more scan waits for a slot, and fails with ErrClamdBusy when none frees
// within the timeout.
func TestClamdPoolBound(t *testing.T) {
	f := newFakeClamd(t, "")
	c, err := NewClamd(f.addr(), 300*time.Millisecond, 2)
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Begin(context.Background()); !errors.Is(err, ErrClamdBusy) {
		t.Fatalf("third Begin: %v, want ErrClamdBusy", err)
	}
	a.Close()
	a.Close() // twice: frees one slot only
	for deadline := time.Now().Add(2 * time.Second); f.open.Load() > 1 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond) // the stand-in sees the close
	}
	done := make(chan error, 1)
	go func() {
		_, err := scanOnce(c, "clean")
		done <- err
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.Close()
	if m := f.maxOpen.Load(); m > 2 {
		t.Errorf("%d connections open at once, bound 2", m)
	}
	if len(c.slots) != 0 {
		t.Errorf("%d slots held", len(c.slots))
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// TestClamdUnixSocket: unix:// addresses work.
func TestClamdUnixSocket(t *testing.T) {
	sock := t.TempDir() + "/clamd.sock"
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Skip("no unix sockets:", err)
	}
	f := &fakeClamd{t: t, ln: ln, stop: make(chan struct{})}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(f.close)
	c, err := NewClamd("unix://"+sock, time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := scanOnce(c, eicar); err != nil || !v.Infected {
		t.Fatalf("%+v %v", v, err)
	}
}
