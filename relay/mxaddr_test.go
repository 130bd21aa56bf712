package relay

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// TestMXRecipient: the MX listener's relay policy as a pure function: a
// recipient is stored only at a local domain, in canonical form, and every
// classic relay trick is refused with 550 5.7.1 (paths as go-smtp hands
// them over: it unquotes local parts and drops source routes).
func TestMXRecipient(t *testing.T) {
	local, err := NewLocalDomains([]string{"Example.ORG", "bücher.example", " corp.example "})
	if err != nil {
		t.Fatal(err)
	}
	const denied = "550"
	for _, tc := range []struct {
		in, want string // want: the stored address, or the reply code
	}{
		{"alice@example.org", "alice@example.org"},
		{"Alice@EXAMPLE.Org", "Alice@example.org"},                     // mixed case: the domain is canonical, the local part kept
		{"alice@xn--bcher-kva.example", "alice@xn--bcher-kva.example"}, // A-label
		{"alice@bücher.example", "alice@xn--bcher-kva.example"},        // U-label: routed to the same local domain
		{"alice@BÜCHER.example", "alice@xn--bcher-kva.example"},
		{"alice@ｅｘａｍｐｌｅ.org", "alice@example.org"},             // fullwidth forms map to the local domain
		{"alice@example。org", "alice@example.org"},             // ideographic full stop
		{"john smith@corp.example", "john smith@corp.example"}, // a quoted local part without routing syntax
		{"bob@other.example", denied},                          // not local
		{"bob@example.org.other.example", denied},
		{"bob@sub.example.org", denied},            // subdomains are not local
		{"user%other.example@example.org", denied}, // percent hack
		{"user%other.example@EXAMPLE.ORG", denied},
		{"other.example!user@example.org", denied},  // bang path
		{"user@other.example@example.org", denied},  // "user@other"@local, user@other@local
		{"@example.org:user@other.example", denied}, // a source route go-smtp did not drop
		{"user@other.example", denied},              // <@example.org:user@other.example> as go-smtp hands it over
		{"a,b@example.org", denied},
		{"user@[127.0.0.1]", denied}, // address literals
		{"user@[IPv6:::1]", denied},
		{"user@example.org.", denied}, // trailing dot
		{"user@example.org..", denied},
		{"user@.example.org", denied},
		{"user@exаmple.org", denied},                   // Cyrillic а: another domain
		{"user@example.org\u200b", "user@example.org"}, // zero-width space: ignored by UTS #46, routed to the local domain
		{"user@xn--example.org", denied},
		{"user@", "501"},
		{"@example.org", "501"},
		{"userexample.org", "501"},
	} {
		got, err := mxRecipient(tc.in, local)
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			got = strconv.Itoa(se.Code)
		} else if err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%q: got %q (%v), want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "[127.0.0.1]", "example.org.", "a..b", "exa mple.org"} {
		if _, err := NewLocalDomains([]string{bad}); err == nil {
			t.Errorf("NewLocalDomains(%q): no error", bad)
		}
	}
}

// FuzzMXRecipient: whatever path a client sends, an accepted recipient is
// at a local domain, with no routing syntax in its local part, and is its
// own canonical form (checking the stored address again gives it back).
func FuzzMXRecipient(f *testing.F) {
	for _, s := range []string{"alice@example.org", "a%b@example.org", "x@bücher.example", "x@ＥＸＡＭＰＬＥ.org", "a@b@example.org", "x@example.org."} {
		f.Add(s)
	}
	local, err := NewLocalDomains([]string{"example.org", "bücher.example"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := mxRecipient(in, local)
		if err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code/100 != 5 {
				t.Fatalf("%q: %v is not a 5xx reply", in, err)
			}
			return
		}
		at := strings.LastIndexByte(got, '@')
		if at <= 0 || !local[got[at+1:]] || strings.ContainsAny(got[:at], relayTrickChars) {
			t.Fatalf("%q accepted as %q", in, got)
		}
		if again, err := mxRecipient(got, local); err != nil || again != got {
			t.Fatalf("%q -> %q -> %q, %v", in, got, again, err)
		}
	})
}
