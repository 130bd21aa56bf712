package main

import (
	"strings"
	"testing"
)

// Attacks on the gateway URL and credentials forms (issue 12 review).

// TestAttackGatewayURLAmbiguous: forms that dial something other than what
// they seem to name, or that name one gateway two ways, are refused.
//   - "+25" is a port to strconv.Atoi and to net's dialer, so
//     smtp://gw:+587 and smtp://gw:587 were two gateways (twice in a list,
//     missed by the duplicate check; a credentials entry gw:587 not found).
//   - An IPv6 address without brackets (RFC 3986 §3.2.2 wants them) ends
//     in a group that reads as a port: smtp://::1:25 was the address
//     ::1:25 on port 587, not [::1]:25.
//   - smtp+insecure:// with a name: "localhost" is resolved (/etc/hosts,
//     then DNS with the search list where the file lacks it), so the host
//     that gets mail in clear would be decided by resolution; only an IP
//     literal is known to be loopback.
func TestAttackGatewayURLAmbiguous(t *testing.T) {
	for in, why := range map[string]string{
		"smtp://gw.example:+587":      "port",
		"gw.example:+25":              "port",
		"smtp://::1:25":               "brackets",
		"smtps://2001:db8::1":         "brackets",
		"smtp+insecure://2001:db8::1": "brackets",
	} {
		if g, err := parseGatewayURL(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("parseGatewayURL(%q) = %+v, %v; want an error about %s", in, g, err, why)
		}
	}
	if _, err := parseGatewayList("smtp://gw.example:587,smtp://gw.example:+587", ","); err == nil {
		t.Error("one gateway listed twice as :587 and :+587 was accepted")
	}
	for _, in := range []string{"relay.example:+25 u p", "[relay.example]:+25 u p"} {
		if _, err := parseGatewayCreds(strings.NewReader(in)); err == nil {
			t.Errorf("credentials line %q accepted", in)
		}
	}
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.3.2.1": true, "::1": true, "::ffff:127.0.0.1": true,
		"localhost": false, "LOCALHOST": false, "localhost.localdomain": false, "127.1": false, "10.0.0.1": false,
	} {
		if got := (gatewayURL{Host: host}).loopback(); got != want {
			t.Errorf("loopback(%q) = %v, want %v (an IP literal only)", host, got, want)
		}
	}
}

// TestAttackCredsFileTruncated: a credentials file over the size read is
// an error at start, never cut silently: the cut could fall inside a
// password, which then passed as three fields and failed only at AUTH
// (mail held, no start-up error), and entries after it were dropped.
func TestAttackCredsFileTruncated(t *testing.T) {
	// 10485 comment lines of 100 bytes and one of 56: the 1 MiB read ends
	// right after "gw.example user pass".
	pad := strings.Repeat("# "+strings.Repeat("x", 97)+"\n", 10485) + "# " + strings.Repeat("x", 53) + "\n"
	p := credsFile(t, pad+"gw.example user password\n", 0o600)
	if c, err := readGatewayCreds(p); err == nil {
		t.Fatalf("a file over 1 MiB read as %d entries (gw.example: %q)", len(c), c["gw.example"].password)
	} else if !strings.Contains(err.Error(), "larger than") || strings.Contains(err.Error(), "password") {
		t.Fatalf("error %v", err)
	}
}
