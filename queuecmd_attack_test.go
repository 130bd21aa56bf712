package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/admin"
	"github.com/edgerelay/edgerelay/queue"
)

// hostileEntry carries, in every text field show or list prints, what a
// submitter or a remote server controls: terminal escapes (ESC, the C1
// CSI, BEL), NUL and bytes that are not UTF-8. The Message-ID is the
// client's header as sent (relay/message.go), and on an MX listener
// the client is anyone.
func hostileEntry(now time.Time) *queue.Entry {
	esc := "\x1b]0;owned\x07\x1b[2J\u009b31m\x00\xff"
	return &queue.Entry{Envelope: queue.Envelope{ID: "HOSTILE1", From: "a" + esc + "@example.org", Arrival: now.Add(-time.Hour),
		User: "u" + esc, MessageID: "<m" + esc + "@x>", EnvID: "e" + esc, RET: "FULL" + esc, Route: "r" + esc,
		Recipients: []queue.Recipient{{Addr: "b" + esc + "@example.net", Status: queue.RcptStatus("pending" + esc), Attempts: 1,
			RemoteMTA: "gw" + esc, Reply: &queue.Reply{Code: 451, Enhanced: "4.0.0", Lines: []string{"r" + esc}}}}}}
}

// unsafeByte returns the first byte of out a terminal acts on (C0 but
// line feed, DEL, a C1 control as UTF-8) or that is not UTF-8, or -1.
func unsafeByte(out string) int {
	for i, r := range out {
		if r == '\n' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r == 0xfffd && !strings.HasPrefix(out[i:], "\uFFFD")) {
			return i
		}
	}
	return -1
}

// TestAttackQueueShowSanitised: edgerelay queue show and list print no
// control character and no invalid UTF-8 from the envelope (show printed
// the Message-ID, the user, ENVID, RET and the route raw: a Message-ID
// header with ESC ] 0 ; … BEL retitled the operator's terminal, ESC [ 2 J
// cleared it). --json stays valid JSON.
func TestAttackQueueShowSanitised(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	e := hostileEntry(now)
	var b bytes.Buffer
	printQueueEntry(&b, e, now)
	if i := unsafeByte(b.String()); i >= 0 {
		t.Errorf("show prints an unsafe byte at %d: %q", i, b.String())
	}
	b.Reset()
	printQueueList(&b, []queue.Entry{*e}, now)
	if i := unsafeByte(b.String()); i >= 0 {
		t.Errorf("list prints an unsafe byte at %d: %q", i, b.String())
	}
	for _, op := range []string{admin.OpShow, admin.OpList} {
		b.Reset()
		resp := &admin.Response{V: admin.Version, OK: true, Entry: e, Entries: []queue.Entry{*e}}
		if code := printQueueResponse(&b, admin.Request{Op: op, ID: "HOSTILE1"}, resp, true, now); code != 0 {
			t.Fatalf("%s --json: exit %d", op, code)
		}
		if !json.Valid(b.Bytes()) || bytes.ContainsAny(b.Bytes(), "\x1b\x07\x00") {
			t.Errorf("%s --json: not valid JSON, or raw control bytes: %q", op, b.String())
		}
	}
}

// TestAttackDeleteDuringDeliveryText: a delete or bounce that lands while
// a worker is delivering the message is recorded for after the attempt;
// the operator is told that what the attempt delivers is not taken back
// (the remote may already have the message: a delete cannot recall it).
func TestAttackDeleteDuringDeliveryText(t *testing.T) {
	for _, op := range []string{admin.OpDelete, admin.OpBounce} {
		out := actionText(admin.Request{Op: op, ID: "X1"}, false)
		if !strings.Contains(out, "recorded") || !strings.Contains(out, "already delivered stay delivered") {
			t.Errorf("%s while delivering: %q", op, out)
		}
	}
	if out := actionText(admin.Request{Op: admin.OpHold, ID: "X1"}, false); strings.Contains(out, "already delivered") {
		t.Errorf("hold while delivering: %q", out)
	}
}
