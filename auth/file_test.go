package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/edgerelay/edgerelay/internal/testutil"
)

// testHash returns a cheap bcrypt hash of pw (tests use the minimum cost).
func testHash(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return "$2b$" + strings.TrimPrefix(string(h), "$2a$")
}

// logBuffer is a slog handler target tests can read concurrently.
type logBuffer = testutil.LogBuffer

func newTestLogger() (*slog.Logger, *logBuffer) {
	lb := &logBuffer{}
	return lb.Logger(), lb
}

// writeFileAtomic replaces path like an editor that writes and renames.
func writeFileAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func newTestFileBackend(t *testing.T, content string) (*FileBackend, string, *logBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "users")
	writeFileAtomic(t, path, content)
	log, lb := newTestLogger()
	fb, err := NewFileBackend(path, log)
	if err != nil {
		t.Fatal(err)
	}
	fb.checkEvery = 0
	return fb, path, lb
}

func TestFileBackendParse(t *testing.T) {
	good := testHash(t, "secret")
	// $2y$ is what htpasswd -B writes; x/crypto/bcrypt reads it as is.
	y := "$2y$" + strings.TrimPrefix(testHash(t, "ypass"), "$2b$")
	a := "$2a$" + strings.TrimPrefix(testHash(t, "apass"), "$2b$")
	file := strings.Join([]string{
		"# comment",
		"",
		"alice@example.org:" + good + ":a.alias@example.org, sales@example.org",
		"bob:" + y,
		"carol:" + a + ":carol@example.org",
		"badhash:$1$abc$def",               // line 6: MD5 crypt
		":" + good,                         // line 7: empty user
		"ALICE@example.org:" + good,        // line 8: duplicate (case)
		"dave:" + good + ":not-an-address", // line 9: bad address
		"erin:" + good[:59],                // line 10: truncated hash
		"frank",                            // line 11: no hash
		"gina:$2x$" + strings.TrimPrefix(good, "$2b$"), // line 12: $2x$ is the buggy variant
		"  # indented comment",
	}, "\n")
	fb, _, lb := newTestFileBackend(t, file)

	tests := []struct {
		user, pass string
		ok         bool
		addrs      []string
	}{
		{"alice@example.org", "secret", true, []string{"alice@example.org", "a.alias@example.org", "sales@example.org"}},
		{"Alice@Example.org", "secret", true, []string{"alice@example.org", "a.alias@example.org", "sales@example.org"}},
		{"bob", "ypass", true, nil},
		{"carol", "apass", true, []string{"carol@example.org"}},
		{"bob", "secret", false, nil},
		{"badhash", "x", false, nil},
		{"", "secret", false, nil},
		{"dave", "secret", false, nil},
		{"erin", "secret", false, nil},
		{"frank", "", false, nil},
		{"gina", "secret", false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.user+"/"+tc.pass, func(t *testing.T) {
			id, err := fb.CheckPassword(context.Background(), tc.user, tc.pass)
			if !tc.ok {
				if !errors.Is(err, ErrBadCredentials) {
					t.Fatalf("got %v, %v; want ErrBadCredentials", id, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.Backend != "file" || !strings.EqualFold(id.User, tc.user) {
				t.Errorf("identity %+v", id)
			}
			if strings.Join(id.Addresses, " ") != strings.Join(tc.addrs, " ") {
				t.Errorf("addresses %q, want %q", id.Addresses, tc.addrs)
			}
		})
	}
	if fb.Len() != 3 {
		t.Errorf("Len = %d, want 3", fb.Len())
	}
	logs := lb.String()
	for _, n := range []string{"line=6", "line=7", "line=8", "line=9", "line=10", "line=11", "line=12"} {
		if !strings.Contains(logs, n+" ") {
			t.Errorf("no log for %s in:\n%s", n, logs)
		}
	}
	if strings.Contains(logs, good[7:]) {
		t.Error("a hash reached the log")
	}
}

func TestFileBackendMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope")
	_, err := NewFileBackend(path, nil)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

func TestFileBackendUnknownUserSameAsWrongPassword(t *testing.T) {
	fb, _, _ := newTestFileBackend(t, "alice:"+testHash(t, "secret")+"\n")
	_, errWrong := fb.CheckPassword(context.Background(), "alice", "wrong")
	_, errUnknown := fb.CheckPassword(context.Background(), "mallory", "wrong")
	if !errors.Is(errWrong, ErrBadCredentials) || !errors.Is(errUnknown, ErrBadCredentials) {
		t.Fatalf("errors %v / %v", errWrong, errUnknown)
	}
	if errWrong.Error() != errUnknown.Error() {
		t.Errorf("distinguishable errors: %q vs %q", errWrong, errUnknown)
	}
	// The unknown-user path compares against a dummy hash of the file's cost.
	if c, _ := bcrypt.Cost(fb.users.Load().dummy); c != bcrypt.MinCost {
		t.Errorf("dummy cost %d, want %d", c, bcrypt.MinCost)
	}
}

func TestFileBackendReload(t *testing.T) {
	fb, path, lb := newTestFileBackend(t, "alice:"+testHash(t, "one")+"\n")
	ctx := context.Background()
	if _, err := fb.CheckPassword(ctx, "alice", "one"); err != nil {
		t.Fatal(err)
	}
	writeFileAtomic(t, path, "alice:"+testHash(t, "two")+"\nbob:"+testHash(t, "b")+"\n")
	if _, err := fb.CheckPassword(ctx, "alice", "one"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old password after reload: %v", err)
	}
	if _, err := fb.CheckPassword(ctx, "alice", "two"); err != nil {
		t.Fatalf("new password: %v", err)
	}
	if _, err := fb.CheckPassword(ctx, "bob", "b"); err != nil {
		t.Fatalf("new user: %v", err)
	}

	// The file vanishes: the last good set stays, with an error logged once.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := fb.CheckPassword(ctx, "alice", "two"); err != nil {
			t.Fatalf("after removal: %v", err)
		}
	}
	if n := strings.Count(lb.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d ERROR lines after removal, want 1:\n%s", n, lb.String())
	}
	// It comes back: reloaded.
	writeFileAtomic(t, path, "carol:"+testHash(t, "c")+"\n")
	if _, err := fb.CheckPassword(ctx, "carol", "c"); err != nil {
		t.Fatalf("after restore: %v", err)
	}
	if _, err := fb.CheckPassword(ctx, "alice", "two"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("removed user still accepted: %v", err)
	}
}

func TestFileBackendInPlaceEdit(t *testing.T) {
	fb, path, _ := newTestFileBackend(t, "alice:"+testHash(t, "one")+"\n")
	// Same inode, different size.
	if err := os.WriteFile(path, []byte("# now with a comment\nalice:"+testHash(t, "two")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fb.CheckPassword(context.Background(), "alice", "two"); err != nil {
		t.Fatal(err)
	}
}

func TestHashPassword(t *testing.T) {
	if HashCost < 12 {
		t.Errorf("HashCost = %d, want at least 12", HashCost)
	}
	// The real cost takes seconds under -race; the code path is the same.
	h, err := hashPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2b$04$") {
		t.Errorf("hash %q, want $2b$04$ prefix", h)
	}
	if _, err := checkBcrypt(h); err != nil {
		t.Error(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("correct horse")) != nil {
		t.Error("hash does not verify")
	}
	if _, err := hashPassword(nil, bcrypt.MinCost); err == nil {
		t.Error("empty password hashed")
	}
	if _, err := hashPassword(bytes.Repeat([]byte("x"), 73), bcrypt.MinCost); err == nil {
		t.Error("73-byte password hashed")
	}
}
