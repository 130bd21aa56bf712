package outbound

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue"
)

// TestAttackEndlessReplyOtherLines: net/textproto reads a multi-line reply
// until a line with the first line's code and a space; any other line
// (another code, a short or malformed line) is taken as more text of the
// same reply. replyGuard must count such lines as the same reply, or
// maxReplyBytes does not bound it: "250-start" then lines "550 more" (or
// "x") grow one reply in memory until the command timeout. Here the host
// sends 1 MiB of them, then nothing: the attempt must end at the bound,
// not at the timeout.
func TestAttackEndlessReplyOtherLines(t *testing.T) {
	for name, unit := range map[string]string{
		"lines of another code": "550 " + strings.Repeat("m", 200) + "\r\n",
		"short lines":           "x\r\n",
		"lines without a code":  strings.Repeat("m", 200) + "\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			stop := make(chan struct{})
			addr := pipeServer(t, func(c net.Conn, replies []string) {
				c.Write([]byte("250-start\r\n" + strings.Repeat(unit, (1<<20)/len(unit))))
				<-stop
			})
			t.Cleanup(func() { close(stop) })
			h := newHarness(t, func(o *Options) {
				o.Gateway, o.GatewayTLS = addr, GatewayTLSNone
				o.Timeouts.Command = 4 * time.Second
			})
			h.enqueue(nil, bob, carol)
			start := time.Now()
			var env *queue.Envelope
			testutil.ReturnsWithin(t, 10*time.Second, "an attempt against an endless reply", func() { env = h.attemptSafe() })
			for _, r := range env.Recipients {
				if r.Status != queue.StatusPending || !strings.Contains(r.Reply.String(), "reply longer than 32768 bytes") {
					t.Errorf("%s: %s %v, want pending, reply too long", r.Addr, r.Status, r.Reply)
				}
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the attempt took %v: it ended by the command timeout, not by maxReplyBytes", d)
			}
		})
	}
}

// bytesConn is a net.Conn that reads from r; everything else is unused.
type bytesConn struct {
	net.Conn
	r io.Reader
}

func (c bytesConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// FuzzAttackGuardBoundsTextproto: whatever the bytes, no reply that
// net/textproto's ReadResponse (the go-smtp client's reader) puts
// together through replyGuard is longer than maxReplyBytes: the guard's
// idea of where a reply ends must never be earlier than textproto's. The
// input is a prefix, a unit repeated up to about 96 KiB, and a suffix
// (textproto hands out a reply only once a line ends it).
func FuzzAttackGuardBoundsTextproto(f *testing.F) {
	f.Add([]byte("250-start\r\n"), []byte("550 more\r\n"), uint8(255), []byte("250 end\r\n"))
	f.Add([]byte("abc-start\r\n"), []byte("abc x\r\n"), uint8(255), []byte("abc end\r\n"))
	f.Add([]byte("099-x\r\n"), []byte("099 y\r\n"), uint8(200), []byte("099 z\r\n"))
	f.Add([]byte("250-a\r\n"), []byte("x\n"), uint8(255), []byte("250 b\n"))
	f.Add([]byte(""), []byte("250 ok\r\n"), uint8(10), []byte(""))
	f.Fuzz(func(t *testing.T, prefix, unit []byte, n uint8, suffix []byte) {
		if len(prefix) > 4096 || len(unit) == 0 || len(unit) > 4096 || len(suffix) > 4096 {
			return
		}
		reps := (96 << 10) / len(unit) * int(n) / 255
		in := append(append([]byte(nil), prefix...), bytes.Repeat(unit, reps)...)
		in = append(in, suffix...)
		g := newReplyGuard(bytesConn{r: bytes.NewReader(in)})
		tp := textproto.NewReader(bufio.NewReader(g))
		for {
			_, msg, err := tp.ReadResponse(0)
			if len(msg) > maxReplyBytes {
				t.Fatalf("a reply of %d bytes came through the guard", len(msg))
			}
			var pe textproto.ProtocolError
			if err != nil && !errors.As(err, &pe) {
				var te *textproto.Error
				if !errors.As(err, &te) {
					return // the guard's error, or the end of the bytes
				}
			}
		}
	})
}
