package smtp

import "testing"

// TestAttackMailPipelinedUsesBlockDotWriter: patch 6 made the client's
// DATA writer dot-stuff in blocks (dotWriter); MailPipelined (patch 5),
// which every message to a host offering PIPELINING goes through, must
// hand out the same writer as Data, not net/textproto's byte-at-a-time
// DotWriter. The bytes are the same either way (FuzzDotWriterBlocks).
func TestAttackMailPipelinedUsesBlockDotWriter(t *testing.T) {
	_, dc, _ := pipelined(t, "250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n", "b@x.test")
	if dc == nil {
		t.Fatal("no DataCommand")
	}
	if _, ok := dc.wc.(*dotWriter); !ok {
		t.Fatalf("MailPipelined's DATA writer is %T, want *dotWriter (patch 6)", dc.wc)
	}
}
