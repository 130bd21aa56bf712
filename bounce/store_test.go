package bounce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestMaildir(t *testing.T, dir string, queueDirs ...string) *maildirStore {
	t.Helper()
	st, err := Open("maildir:"+dir, Options{QueueDirs: queueDirs})
	if err != nil {
		t.Fatal(err)
	}
	return st.(*maildirStore)
}

func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur", "tmp"} {
		es, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, sub+"/"+e.Name())
		}
	}
	return out
}

func TestMaildirCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "bounces")
	st := openTestMaildir(t, dir)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(dir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("%s: %v", sub, err)
		}
	}
	marker, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil || !strings.Contains(string(marker), "edgerelay") {
		t.Errorf("marker: %q, %v", marker, err)
	}
	if got := maildirFiles(t, dir); len(got) != 0 {
		t.Errorf("fresh store holds %v", got)
	}
	if !strings.HasPrefix(st.String(), "maildir:/") {
		t.Errorf("String() = %q", st.String())
	}
	// Reopening is fine, and so is a store with reports in it.
	if err := st.Put(context.Background(), "K1-failed-0a1b2c3d4e", strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	openTestMaildir(t, dir)
}

func TestMaildirPutOnce(t *testing.T) {
	dir := t.TempDir()
	st := openTestMaildir(t, dir)
	ctx := context.Background()
	const key = "01KB4Z3QX8N2M5P7R9T1-failed-0a1b2c3d4e"
	if err := st.Put(ctx, key, strings.NewReader("first\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, key, strings.NewReader("second\r\n")); err != nil {
		t.Fatal(err)
	}
	got := maildirFiles(t, dir)
	if len(got) != 1 || got[0] != "new/"+key+".edgerelay" {
		t.Fatalf("files = %v", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, got[0])); string(b) != "first\r\n" {
		t.Errorf("content %q: the second Put replaced the first", b)
	}

	// An IMAP server moved it to cur/ and flagged it \Seen: still there.
	if err := os.Rename(filepath.Join(dir, got[0]), filepath.Join(dir, "cur", key+".edgerelay:2,S")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, key, strings.NewReader("third\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := maildirFiles(t, dir); len(got) != 1 || got[0] != "cur/"+key+".edgerelay:2,S" {
		t.Errorf("after a move to cur/: files = %v", got)
	}
	// A key that is a prefix of another is a different report.
	if err := st.Put(ctx, key[:len(key)-1], strings.NewReader("other\r\n")); err != nil {
		t.Fatal(err)
	}
	if got := maildirFiles(t, dir); len(got) != 2 {
		t.Errorf("files = %v", got)
	}
	for _, bad := range []string{"", "../x", "a/b", "a:2,S", strings.Repeat("k", 65)} {
		if err := st.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) succeeded", bad)
		}
	}
}

// TestMaildirPutConcurrent: many Puts of the same and of different keys at
// once store each key exactly once (run with -race).
func TestMaildirPutConcurrent(t *testing.T) {
	dir := t.TempDir()
	st := openTestMaildir(t, dir)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			key := fmt.Sprintf("K%d-failed-abc", i%8)
			errs <- st.Put(context.Background(), key, strings.NewReader(fmt.Sprintf("report %d\r\n", i)))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got := maildirFiles(t, dir)
	if len(got) != 8 {
		t.Errorf("%d files, want 8: %v", len(got), got)
	}
	for _, f := range got {
		if !strings.HasPrefix(f, "new/") {
			t.Errorf("left behind: %s", f)
		}
	}
}

func TestMaildirPutCanceled(t *testing.T) {
	st := openTestMaildir(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := st.Put(ctx, "K", strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

// TestMaildirDovecotFiles: the files Dovecot keeps beside a Maildir it
// serves are tolerated, and so are report files it renamed.
func TestMaildirDovecotFiles(t *testing.T) {
	dir := t.TempDir()
	openTestMaildir(t, dir)
	for _, name := range []string{
		"dovecot-uidlist", "dovecot-uidlist.lock", "dovecot-uidvalidity", "dovecot-uidvalidity.5f2b3c4d",
		"dovecot.index", "dovecot.index.log", "dovecot.index.log.2", "dovecot.index.cache",
		"dovecot.list.index", "dovecot.list.index.log", "dovecot.mailbox.log", "dovecot-keywords",
		"subscriptions", "maildirfolder",
		"cur/K1-failed-abc.edgerelay:2,S", "cur/K2-failed-abc.edgerelay,S=1234:2,", "cur/K3-failed-abc.edgerelay,S=12,W=14:2,RS",
		"new/K4-delayed-abc.edgerelay", "tmp/1764417600000000000.42_7.K5-failed-abc.edgerelay",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	openTestMaildir(t, dir)
	// Without the marker too: a store of ours whose marker was lost is
	// adopted again.
	if err := os.Remove(filepath.Join(dir, markerName)); err != nil {
		t.Fatal(err)
	}
	openTestMaildir(t, dir)
	if _, err := os.Stat(filepath.Join(dir, markerName)); err != nil {
		t.Errorf("marker not rewritten: %v", err)
	}
}

func TestMaildirStaleTmp(t *testing.T) {
	dir := t.TempDir()
	openTestMaildir(t, dir)
	old := filepath.Join(dir, "tmp", "1.1_1.K-failed-abc.edgerelay")
	fresh := filepath.Join(dir, "tmp", "2.1_2.K-failed-abd.edgerelay")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	openTestMaildir(t, dir)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale tmp file kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh tmp file removed: %v", err)
	}
}

// TestBounceStoreRefusals: the store is never the queue's location, never
// holds anything edgerelay did not write, and the errors say so.
func TestBounceStoreRefusals(t *testing.T) {
	root := t.TempDir()
	queueDir := filepath.Join(root, "spool")
	if err := os.MkdirAll(filepath.Join(queueDir, "msg"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(queueDir, filepath.Join(root, "spool-link")); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "plain-file")
	os.WriteFile(file, []byte("x"), 0o600)

	mk := func(files ...string) string {
		d, err := os.MkdirTemp(root, "store")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			p := filepath.Join(d, f)
			if strings.HasSuffix(f, "/") {
				os.MkdirAll(p, 0o750)
				continue
			}
			os.MkdirAll(filepath.Dir(p), 0o750)
			if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	tests := []struct {
		name string
		spec string
		want string
	}{
		{"queue dir", "maildir:" + queueDir, "is the queue directory"},
		{"queue dir, unclean", "maildir:" + queueDir + "/msg/..", "is the queue directory"},
		{"queue dir through a symlink", "maildir:" + filepath.Join(root, "spool-link"), "is the queue directory"},
		{"inside the queue", "maildir:" + filepath.Join(queueDir, "bounces"), "is inside the queue directory"},
		{"inside the queue, not yet existing, via symlink", "maildir:" + filepath.Join(root, "spool-link", "x", "bounces"), "is inside the queue directory"},
		{"contains the queue", "maildir:" + root, "contains the queue directory"},
		{"not a directory", "maildir:" + file, "is not a directory"},
		{"foreign file at top", "maildir:" + mk("notes.txt"), "holds files edgerelay did not write (notes.txt)"},
		{"foreign message in new", "maildir:" + mk("new/1764417600.M1P2.host,S=10"), "new/1764417600.M1P2.host,S=10"},
		{"foreign message in cur", "maildir:" + mk("cur/1764417600.M1P2.host:2,S"), "cur/1764417600.M1P2.host:2,S"},
		{"a mailbox folder", "maildir:" + mk(".Sent/cur/"), "holds files edgerelay did not write (.Sent)"},
		{"foreign with marker", "maildir:" + mk(markerName, "cur/", "new/", "tmp/", "new/mail.eml"), "new/mail.eml"},
		{"dovecot name as a directory", "maildir:" + mk("dovecot.index/"), "(dovecot.index)"},
		{"many foreign files", "maildir:" + mk("a", "b", "c", "d", "e", "f", "g"), "and 2 more"},
		{"no path", "maildir:", "no path"},
		{"unknown scheme", "/var/bounces", "want maildir:PATH or s3://bucket/prefix"},
		{"s3 without opener", "s3://bucket/prefix", "needs an S3 client"},
		{"s3 without bucket", "s3:///prefix", "no bucket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.spec, Options{QueueDirs: []string{queueDir}})
			if err == nil {
				t.Fatalf("Open(%q) succeeded", tt.spec)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "bounce store") {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
	if _, err := Open("s3://bucket/prefix", Options{}); !errors.Is(err, ErrNoS3Client) {
		t.Errorf("s3 without opener: %v, want ErrNoS3Client", err)
	}
	// A refused directory is left as it was: no marker, no cur/new/tmp.
	d := mk("notes.txt")
	Open("maildir:"+d, Options{})
	if es, _ := os.ReadDir(d); len(es) != 1 {
		t.Errorf("refused directory was changed: %v", es)
	}
	// A sibling whose name starts like the queue's is fine.
	if _, err := Open("maildir:"+queueDir+"-bounces", Options{QueueDirs: []string{queueDir}}); err != nil {
		t.Errorf("sibling directory refused: %v", err)
	}
}

func TestBounceStoreS3Opener(t *testing.T) {
	var gotBucket, gotPrefix string
	want := &fakeStore{}
	st, err := Open("s3://ndr-bucket/edge/bounces/", Options{
		S3: func(bucket, prefix string) (Store, error) {
			gotBucket, gotPrefix = bucket, prefix
			return want, nil
		},
	})
	if err != nil || st != want || gotBucket != "ndr-bucket" || gotPrefix != "edge/bounces" {
		t.Errorf("got %v %v %q %q", st, err, gotBucket, gotPrefix)
	}
	_, err = Open("s3://b/p", Options{S3: func(string, string) (Store, error) {
		return nil, errors.New("holds objects edgerelay did not write")
	}})
	if err == nil || !strings.Contains(err.Error(), "bounce store") || !strings.Contains(err.Error(), "did not write") {
		t.Errorf("err = %v", err)
	}
}

// fakeStore is a Store that an S3 opener hands back; it stores nothing.
type fakeStore struct{}

func (*fakeStore) Put(context.Context, string, io.Reader) error { return nil }
func (*fakeStore) String() string                               { return "fake" }
