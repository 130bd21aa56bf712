package relay

import (
	"bufio"
	"slices"
	"strings"
	"testing"

	"github.com/edgerelay/edgerelay/auth"
)

// TestOriginatorFieldsChecked (issue 8 item 9): a display name that is
// itself another address, and Sender, Resent-From and Resent-Sender fields
// with addresses that are not the user's, are refused with 550 5.7.1.
func TestOriginatorFieldsChecked(t *testing.T) {
	refused := map[string]string{
		"display name is an address":     "From: \"ceo@corp.example\" <" + alice + ">\r\n",
		"encoded-word display name":      "From: =?utf-8?B?Y2VvQGNvcnAuZXhhbXBsZQ==?= <" + alice + ">\r\n",
		"encoded-word, Q, in a name":     "From: =?iso-8859-1?Q?CEO_=3Cceo=40corp=2Eexample=3E?= <" + alice + ">\r\n",
		"fullwidth at sign":              "From: \"ceo\uff20corp.example\" <" + alice + ">\r\n",
		"comment carries the address":    "From: " + alice + " (ceo@corp.example)\r\n",
		"Sender not hers":                "From: <" + alice + ">\r\nSender: <ceo@corp.example>\r\n",
		"Resent-From not hers":           "From: <" + alice + ">\r\nResent-From: <ceo@corp.example>\r\n",
		"Resent-Sender not hers":         "From: <" + alice + ">\r\nResent-Sender: <ceo@corp.example>\r\n",
		"second Resent-From not hers":    "From: <" + alice + ">\r\nResent-From: <" + alias + ">\r\nResent-From: <ceo@corp.example>\r\n",
		"Sender display name an address": "From: <" + alice + ">\r\nSender: \"ceo@corp.example\" <" + alice + ">\r\n",
		"Sender folded":                  "From: <" + alice + ">\r\nSender:\r\n <ceo@corp.example>\r\n",
	}
	accepted := map[string]string{
		"plain":                          "From: Alice Example <" + alice + ">\r\n",
		"own address as display name":    "From: \"" + alice + "\" <" + alice + ">\r\n",
		"alias as display name":          "From: \"" + alias + "\" <" + alice + ">\r\n",
		"Sender and Resent-From hers":    "From: <" + alice + ">\r\nSender: <" + alias + ">\r\nResent-From: <" + alice + ">\r\nResent-Sender: <" + alias + ">\r\n",
		"at sign without a domain":       "From: \"Alice @ home\" <" + alice + ">\r\n",
		"Sender field absent, From list": "From: <" + alice + ">, <" + alias + ">\r\n",
	}
	e := newEnv(t)
	c := e.authed(alice, alicePW)
	send := func(hdr string) (int, string) {
		c.must(250, "", "MAIL FROM:<%s>", alice)
		c.must(250, "", "RCPT TO:<r@example.net>")
		return c.data(hdr + "Subject: x\r\n\r\nbody\r\n")
	}
	for name, hdr := range refused {
		if code, msg := send(hdr); code != 550 || !strings.HasPrefix(msg, "5.7.1") {
			t.Errorf("%s: %d %s, want 550 5.7.1", name, code, msg)
		}
	}
	// Not even valid syntax (an unquoted "@" in a display name): refused.
	if code, msg := send("From: ceo@corp.example <" + alice + ">\r\n"); code != 550 {
		t.Errorf("unquoted address as display name: %d %s, want 550", code, msg)
	}
	for name, hdr := range accepted {
		if code, msg := send(hdr); code != 250 {
			t.Errorf("%s: %d %s, want 250", name, code, msg)
		}
	}
	if n := len(e.queued()); n != len(accepted) {
		t.Errorf("%d queued, want %d", n, len(accepted))
	}

	// The display-name rule can be turned off; the address checks stay.
	e = newEnv(t, func(o *Options) { o.AllowAddressInDisplayName = true })
	c = e.authed(alice, alicePW)
	if code, msg := send(refused["display name is an address"]); code != 250 {
		t.Errorf("display-name rule off: %d %s, want 250", code, msg)
	}
	if code, msg := send(refused["Sender not hers"]); code != 550 {
		t.Errorf("display-name rule off, Sender not hers: %d %s, want 550", code, msg)
	}
}

func TestAddressesInDisplayName(t *testing.T) {
	for name, want := range map[string][]string{
		"Alice Example":                    nil,
		"ceo@corp.example":                 {"ceo@corp.example"},
		"CEO <ceo@corp.example>":           {"ceo@corp.example"},
		"ceo\uff20corp\uff0eexample":       {"ceo@corp.example"},
		"c\x00e\x00o\x00@\x00corp.example": {"ceo@corp.example"},
		"Alice @ home":                     nil,
		"me@localhost":                     nil,
		"a@b.example, c@d.example.":        {"a@b.example", "c@d.example"},
	} {
		if got := addressesIn(name); !slices.Equal(got, want) {
			t.Errorf("addressesIn(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestOriginatorNameOutsideDisplayName (issue 8 review): what a mail
// program may show besides the display name net/mail returns — a group's
// name, a comment after a display name or with quotes in it, an encoded
// word inside quotes, a name in a charset with its own at sign — is held
// to the same rule.
func TestOriginatorNameOutsideDisplayName(t *testing.T) {
	id := &auth.Identity{User: alice, Addresses: []string{alice, alias, "o'brien@example.org"}}
	refused := map[string]string{
		"group name":                 "From: \"ceo@corp.example\": <" + alice + ">;",
		"comment with quotes":        "From: <" + alice + "> (\"ceo@corp.example\")",
		"comment after display name": "From: Alice <" + alice + "> (ceo@corp.example)",
		"encoded word inside quotes": "From: \"=?utf-8?q?ceo=40corp.example?=\" <" + alice + ">",
		"iso-2022-jp fullwidth at":   "From: =?iso-2022-jp?b?Y2VvGyRCIXcbKEJjb3JwLmV4YW1wbGU=?= <" + alice + ">",
		"longer address around hers": "From: \"x" + alice + ".evil.example\" <" + alice + ">",
		"Sender comment":             "From: <" + alice + ">\r\nSender: <" + alias + "> (\"ceo@corp.example\")",
		"Resent-From group":          "From: <" + alice + ">\r\nResent-From: \"ceo@corp.example\": <" + alias + ">;",
	}
	accepted := []string{
		"From: Alice <" + alice + "> (at home)",
		"From: " + alice + " (" + alias + ")",
		"From: o'brien@example.org",
		"From: \"O'Brien\" <o'brien@example.org>, " + alice,
		"From: =?iso-2022-jp?b?GyRCJCIkJCQmGyhC?= <" + alice + ">",
		"From: \"" + alice + "\" <" + alice + ">",
	}
	check := func(hdr string) error {
		h, err := readHeader(bufio.NewReader(strings.NewReader(hdr + "\r\nSubject: x\r\n\r\nbody\r\n")))
		if err != nil {
			t.Fatalf("%q: %v", hdr, err)
		}
		if rep, _ := checkOriginators(h, id, false); rep != nil {
			return rep
		}
		return nil
	}
	for name, hdr := range refused {
		if err := check(hdr); err == nil {
			t.Errorf("%s: %q accepted, want 550 5.7.1", name, hdr)
		}
	}
	for _, hdr := range accepted {
		if err := check(hdr); err != nil {
			t.Errorf("%q: %v, want accepted", hdr, err)
		}
	}
}
