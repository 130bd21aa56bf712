package auth

import (
	"log/slog"
	"strings"
	"testing"
)

// FuzzCheckJWTHeader: any bearer token a client sends goes through
// checkJWTHeader first; it must never panic, and must accept only the
// asymmetric algorithms.
func FuzzCheckJWTHeader(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.e30.sig")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Fuzz(func(t *testing.T, tok string) {
		if checkJWTHeader(tok) == nil && strings.Count(tok, ".") != 2 {
			t.Fatalf("accepted %q", tok)
		}
	})
}

// FuzzParseUsers: a users file never panics the parser, and every user it
// keeps has a well-formed bcrypt hash.
func FuzzParseUsers(f *testing.F) {
	f.Add("alice@example.org:$2b$04$abcdefghijklmnopqrstuu5nSbGAEsyJrpHM2C7tQ0SNM4BsaJbTe:a@b.c\n# x\n")
	f.Add(":::\n\x00\n")
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, data string) {
		users, _ := parseUsers([]byte(data), log)
		for k, u := range users {
			if k != strings.ToLower(u.name) || u.name == "" {
				t.Fatalf("bad key %q for %q", k, u.name)
			}
			if _, err := checkBcrypt(string(u.hash)); err != nil {
				t.Fatalf("kept user %q with a bad hash", u.name)
			}
		}
	})
}

// FuzzIPKey: throttling keys are derived from whatever the connection
// reports; never panic, never empty for a non-empty input.
func FuzzIPKey(f *testing.F) {
	for _, s := range []string{"192.0.2.1:25", "[2001:db8::1]:587", "fe80::1%eth0", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k := ipKey(s); (k == "") != (s == "") {
			t.Fatalf("ipKey(%q) = %q", s, k)
		}
	})
}
