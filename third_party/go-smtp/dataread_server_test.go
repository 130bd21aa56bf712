package smtp_test

import (
	"fmt"
	"io"
	"strings"
	"testing"
)

// edgerelay patch 4: the message data is read in blocks. Commands
// pipelined after the final dot, in the same write as the end of the data,
// are left for the command loop: each is answered, in order, whether the
// message was taken or refused as too big, with dot-stuffed lines on both
// sides of the read buffer's 4 KiB boundaries.
func TestDataPipelinedAfterFinalDot(t *testing.T) {
	var body, want strings.Builder
	for i := 0; body.Len() < 3*4096; i++ {
		line := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%90))
		if i%3 == 0 {
			body.WriteString(".") // dot-stuffed
		}
		body.WriteString(line + "\r\n")
		want.WriteString(line + "\r\n")
	}
	for _, limit := range []int{0, 1 << 20, 5000} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			be, s, c, scanner := testServerAuthenticated(t)
			defer s.Close()
			defer c.Close()
			s.MaxMessageBytes = int64(limit)
			reply := func(prefix string) {
				t.Helper()
				if !scanner.Scan() || !strings.HasPrefix(scanner.Text(), prefix) {
					t.Fatalf("got %q (%v), want %q...", scanner.Text(), scanner.Err(), prefix)
				}
			}
			io.WriteString(c, "MAIL FROM:<root@nsa.gov>\r\nRCPT TO:<root@gchq.gov.uk>\r\nDATA\r\n")
			reply("250 ")
			reply("250 ")
			reply("354 ")
			io.WriteString(c, body.String()+".\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
			if limit == 5000 {
				reply("552 ")
			} else {
				reply("250 ")
			}
			reply("250 ")
			reply("250 ")
			reply("354 ")
			io.WriteString(c, "..second\r\n.\r\nNOOP\r\nQUIT\r\n")
			reply("250 ")
			reply("250 ")
			reply("221 ")
			var got []string
			for _, m := range be.messages {
				got = append(got, string(m.Data))
			}
			wantMsgs := []string{want.String(), ".second\r\n"}
			if limit == 5000 {
				wantMsgs = wantMsgs[1:]
			}
			if fmt.Sprint(got) != fmt.Sprint(wantMsgs) {
				t.Fatalf("got %d messages %.80q, want %d", len(got), got, len(wantMsgs))
			}
		})
	}
}
