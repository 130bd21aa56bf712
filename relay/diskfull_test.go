package relay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/queue/spool"
)

// TestDiskFullAnswers452: with the spool's file system full, the final dot
// is answered 452 4.3.1 (RFC 5321 §4.2.2 insufficient system storage, RFC
// 3463 X.3.1 mail system full), nothing is stored, and once space is free
// the next message is accepted on the same connection, with no restart
// (issue 8 item 17). A real 3 MiB tmpfs; needs root (skipped without,
// unless EDGERELAY_REQUIRE_ROOT=1).
func TestDiskFullAnswers452(t *testing.T) {
	mnt := testutil.Tmpfs(t, "3m")
	sp, err := spool.Open(filepath.Join(mnt, "spool"), spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	e := newEnv(t, func(o *Options) { o.Queue = sp })
	e.q = sp

	filler := filepath.Join(mnt, "filler")
	testutil.Fill(t, filler)

	c := e.authed(alice, alicePW)
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", "carol@example.net")
	code, msg := c.data(message(alice, "carol@example.net", ""))
	if code != 452 || !strings.HasPrefix(msg, "4.3.1 ") {
		t.Fatalf("final dot on a full disk: %d %s, want 452 4.3.1", code, msg)
	}
	if sp.Len() != 0 {
		t.Fatalf("spool holds %d messages after the 452", sp.Len())
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	c.must(250, "", "MAIL FROM:<%s>", alice)
	c.must(250, "", "RCPT TO:<%s>", "carol@example.net")
	if code, msg := c.data(message(alice, "carol@example.net", "")); code != 250 {
		t.Fatalf("after freeing space: %d %s, want 250", code, msg)
	}
	if n := len(e.queued()); n != 1 {
		t.Fatalf("%d messages queued after freeing space, want 1", n)
	}
}
