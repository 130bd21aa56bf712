package bounce

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestMaildirReady: the probe passes on a writable Maildir, fails when tmp/
// cannot take a file, and leaves nothing behind that the dedicated-store
// check would call foreign.
func TestMaildirReady(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bounces")
	st, err := Open("maildir:"+dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := st.(*maildirStore)
	if err := m.Ready(context.Background()); err != nil {
		t.Fatalf("writable maildir: %v", err)
	}
	if _, foreign, err := scanMaildir(dir); err != nil || len(foreign) > 0 {
		t.Fatalf("after a probe: foreign %v, err %v", foreign, err)
	}
	if !ourTmpName.MatchString("1.2_3.readyprobe" + msgSuffix) {
		t.Fatal("the probe's name is not one of edgerelay's tmp names")
	}
	os.RemoveAll(filepath.Join(dir, "tmp"))
	if err := m.Ready(context.Background()); err == nil {
		t.Fatal("maildir without tmp/: ready, want an error")
	}
}
