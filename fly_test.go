package main

import (
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestFlyTomlProxyTrustIsPrivate: fly.toml trusts PROXY protocol headers
// only from Fly's private networks. Trusting 0.0.0.0/0 lets any client that
// reaches the port directly claim any address in a PROXY header, and the
// per-IP limits, the AUTH throttle and the logs then believe it.
func TestFlyTomlProxyTrustIsPrivate(t *testing.T) {
	raw, err := os.ReadFile("fly.toml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*RELAY_PROXY_PROTOCOL_FROM\s*=\s*"([^"]*)"`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("fly.toml does not set RELAY_PROXY_PROTOCOL_FROM (Fly's proxy sends PROXY v2 headers)")
	}
	public := []netip.Addr{
		netip.MustParseAddr("1.1.1.1"), netip.MustParseAddr("203.0.113.7"),
		netip.MustParseAddr("2a00:1450::1"), netip.MustParseAddr("2001:db8::1"),
	}
	for _, s := range strings.Split(string(m[1]), ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if !p.Addr().IsPrivate() {
			t.Errorf("fly.toml trusts PROXY headers from %s, which is not a private network", p)
		}
		for _, a := range public {
			if p.Contains(a) {
				t.Errorf("fly.toml trusts PROXY headers from %s, which contains the public address %s", p, a)
			}
		}
	}
}
