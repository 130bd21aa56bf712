package queue

import "testing"

func TestValidDomain(t *testing.T) {
	for d, want := range map[string]bool{
		"example.net": true, "mail_host.example.net": true, "bücher.example": true, "xn--bcher-kva.example": true,
		"[192.0.2.1]": true, "[IPv6:2001:db8::1]": true, "[ipv6:::1]": true,
		"": false, ".example": false, "example.": false, "a..b": false, "-a.b": false, "a-.b": false, "a b": false,
		"a,b": false, `a"b`: false, "[>]": false, "[x]": false, "[tag:x]": false, "[999.0.2.1]": false,
		"[IPv6:192.0.2.1]": false, "[2001:db8::1]": false, "[IPv6:fe80::1%eth0]": false, "[192.0.2.1": false, "[]": false,
	} {
		if got := ValidDomain(d); got != want {
			t.Errorf("ValidDomain(%q) = %v, want %v", d, got, want)
		}
	}
}
