package relay

import (
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// TestDataPooledReaderConcurrent (issue 10: the 64 KiB buffered reader a
// message is read through, and the header's buffer, come from pools): four
// connections at once, each submitting in turn, over DATA and over BDAT,
// messages that are queued (smaller and larger than the reader's buffer,
// with headers of their own smaller and larger than the header's first
// 4 KiB and than the 64 KiB kept for reuse) and messages refused at each
// point that leaves data behind in the buffer: a From that is not the
// user's (refused after the header, the body unread), a bare LF in the body,
// and a message over the size limit. Every queued message is stored
// exactly as sent after the relay's own fields, and nothing refused is
// stored. A reader or header put back in its pool while a message still
// used it, or held by a stored message, would be reported by -race or show
// another message's bytes.
func TestDataPooledReaderConcurrent(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 1 << 20 })
	const conns, rounds = 4, 3
	var mu sync.Mutex
	want := map[string]string{} // queue ID -> message as sent
	t.Run("submit", func(t *testing.T) {
		for ci := range conns {
			t.Run(fmt.Sprint(ci), func(t *testing.T) {
				t.Parallel()
				conn, err := tls.Dial("tcp", e.addr465, &tls.Config{InsecureSkipVerify: true})
				if err != nil {
					t.Fatal(err)
				}
				c := wrapClient(t, conn)
				c.expect(220)
				c.ehlo()
				c.must(235, "2.", "AUTH PLAIN %s", plain(alice, alicePW))
				for r := range rounds {
					for k, tc := range []struct {
						from string // header From
						hdr  int    // bytes of an extra folded field, about
						size int    // body bytes, about
						bad  string // appended to the body
						code int
					}{
						{alice, 0, 200, "", 250},
						{alice, 6 << 10, 100 << 10, "", 250},
						{alice, 70 << 10, 300 << 10, "", 250},
						{alice, 2 << 10, 300, "", 250},
						{bob, 0, 200 << 10, "", 550},
						{alice, 0, 100 << 10, "bare\nLF\r\n", 550},
						{alice, 5 << 10, 1<<20 + 1000, "", 552},
					} {
						marker := fmt.Sprintf("conn %d round %d case %d ", ci, r, k)
						line := strings.Repeat(marker, 76/len(marker)+1)[:76] + "\r\n"
						extra := "X-Marker: " + marker + "\r\n" + "X-Long:" + strings.Repeat("\r\n "+line[:76], tc.hdr/78) + "\r\n"
						msg := message(tc.from, "r@example.net", extra) + strings.Repeat(line, tc.size/78) + tc.bad
						for _, bdat := range []bool{false, true} {
							c.must(250, "", "MAIL FROM:<%s>", alice)
							c.must(250, "", "RCPT TO:<r@example.net>")
							var code int
							var text string
							if bdat {
								io.WriteString(c.conn, fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg), msg))
								code, text = c.read()
							} else {
								code, text = c.data(msg)
							}
							if code != tc.code {
								t.Fatalf("%sbdat=%v: %d %s, want %d", marker, bdat, code, text, tc.code)
							}
							if code == 250 {
								mu.Lock()
								want[queueID(text)] = msg
								mu.Unlock()
							}
						}
					}
				}
				c.cmd("QUIT")
			})
		}
	})
	if t.Failed() {
		return
	}
	got := e.queued()
	t.Logf("%d messages queued", len(want))
	if len(got) != len(want) {
		t.Errorf("%d messages stored, want %d", len(got), len(want))
	}
	for id, msg := range want {
		body, ok := got[id]
		if !ok {
			t.Errorf("%s: not stored", id)
			continue
		}
		if !strings.HasSuffix(body, msg) {
			i := strings.Index(body, "\r\n\r\n")
			t.Errorf("%s: stored body (%d bytes) does not end with the message sent (%d bytes); its header:\n%s", id, len(body), len(msg), body[:max(i, 0)])
		}
	}
}
