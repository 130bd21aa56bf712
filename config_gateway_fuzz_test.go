package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgerelay/edgerelay/internal/testutil"
	"github.com/edgerelay/edgerelay/outbound"
	"github.com/edgerelay/edgerelay/queue"
)

// fuzzSecret stands for a password: no error text may contain it.
const fuzzSecret = "Zk9Secret"

// FuzzGatewayConfig: whatever RELAY_GATEWAY and RELAY_ROUTES hold, reading
// them never panics and returns in time; what is accepted builds gateway
// lists that outbound.New accepts, and every gateway's URL parses back to
// itself; what is refused names its variable; no error shows a password,
// whether it was in RELAY_GATEWAY_PASSWORD or written into the URL.
func FuzzGatewayConfig(f *testing.F) {
	for _, s := range [][2]string{
		{"smtp://a.example,smtps://b.example:465", "example.org=smtp+insecure://127.0.0.1|ses://eu-west-1"},
		{"gw.example.net:2525", ""}, {"smtp://[::1]", "bücher.example=smtps://r.example"},
		{"smtp://u:" + fuzzSecret + "@gw", "x=smtp://" + fuzzSecret + "@gw"}, {"smtp://gw/" + fuzzSecret, "a.example=smtp://gw?" + fuzzSecret},
		{"smtp://gw\x00:25", "\xff=\xfe"}, {strings.Repeat("smtp://a.example,", 200), strings.Repeat("=", 1000)},
		{",", "a=,"}, {"ses://", "A.EXAMPLE=smtp://x|smtp://X:587"}, {"smtp+insecure://localhost", "[1.2.3.4]=smtp://x"},
		{"smtp://0,smtp://1", "\xe400=0000:1"}, // found: a route domain that was not UTF-8
		{fuzzSecret + ":25", "a.example=smtp://" + fuzzSecret},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, gw, routes string) {
		var bad string
		testutil.ReturnsWithin(t, 2*time.Second, "gatewayPlan", func() { bad = checkGatewayFuzz(gw, routes) })
		if bad != "" {
			t.Fatal(bad)
		}
	})
}

// checkGatewayFuzz returns what is wrong, "" when the invariants hold (it
// runs outside the test's goroutine, where t.Fatal may not be called).
// The password is looked for in error texts only where the input does not
// hold it as a host name: an entry's host is shown, and a host that
// happens to spell the password is not a password.
func checkGatewayFuzz(gw, routes string) string {
	hostSecret := strings.Contains(gw+routes, fuzzSecret)
	c := &Config{Gateway: gw, Routes: routes, GatewayTLS: "starttls", GatewayBackoff: time.Minute, GatewayTLSVerify: true,
		GatewayAllowInsecure: len(gw)%2 == 0, GatewayUsername: "user", GatewayPassword: fuzzSecret}
	var errs []string
	c.gatewayPlan(func(name, format string, args ...any) {
		errs = append(errs, "RELAY_"+name+": "+fmt.Sprintf(format, args...))
	})
	for _, e := range errs {
		if !hostSecret && strings.Contains(e, fuzzSecret) {
			return fmt.Sprintf("error shows the password: %q", e)
		}
		if !strings.HasPrefix(e, "RELAY_GATEWAY") && !strings.HasPrefix(e, "RELAY_ROUTES") {
			return fmt.Sprintf("error names no gateway variable: %q", e)
		}
	}
	for _, g := range []string{"smtp://u:" + fuzzSecret + "@" + gw, "smtps://" + gw + "/" + fuzzSecret, gw + "?" + fuzzSecret} {
		_, err := parseGatewayURL(g)
		if err == nil || !hostSecret && strings.Contains(err.Error(), fuzzSecret) {
			return fmt.Sprintf("parseGatewayURL(%q) = %v: accepted, or shows the secret", g, err)
		}
	}
	if len(errs) > 0 || strings.Contains(strings.ToLower(gw+routes), "ses:") {
		return "" // ses:// needs an AWS client: built in the SES tests
	}
	main, rts, err := c.outboundGateways(context.Background(), nil)
	if err != nil {
		return fmt.Sprintf("accepted by validate, refused by the build: %v", err)
	}
	if _, err := outbound.New(outbound.Options{Queue: struct{ queue.Queue }{}, Hostname: "relay.test", Gateways: main, Routes: rts}); err != nil {
		return fmt.Sprintf("outbound.New refuses what config accepted (%q, %q): %v", gw, routes, err)
	}
	all := main
	for _, l := range rts {
		all = append(all, l...)
	}
	for _, g := range all {
		back, err := parseGatewayURL(g.URL)
		if err != nil || back.URL != g.URL || back.Addr != g.Addr {
			return fmt.Sprintf("%q parses back as %+v, %v", g.URL, back, err)
		}
	}
	return ""
}

// FuzzGatewayCreds: a credentials file of any bytes is read without panic
// and in time; every entry it accepts has a key that reads back as itself
// and a user and password without white space or control characters; no
// error shows a password.
func FuzzGatewayCreds(f *testing.F) {
	for _, s := range []string{
		"# c\nrelay.example u p\n", "[r.example]:465 u p\r\n\n", "a u p\na v q", "x\x00 u p", "\xff\xfe u p",
		strings.Repeat("a", 5000), "h u p q", "[::1]:25 u p", "[h] u p", "[h]: u p", "h:99999 u p",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var bad string
		testutil.ReturnsWithin(t, 2*time.Second, "parseGatewayCreds", func() { bad = checkCredsFuzz(data) })
		if bad != "" {
			t.Fatal(bad)
		}
	})
}

// checkCredsFuzz returns what is wrong, "" when the invariants hold.
func checkCredsFuzz(data []byte) string {
	in := string(data) + "\nsecret.example user " + fuzzSecret + " oops\n"
	if _, err := parseGatewayCreds(strings.NewReader(in)); err == nil || strings.Contains(err.Error(), fuzzSecret) {
		return fmt.Sprintf("a 4-field line was accepted, or its error shows the password: %v", err)
	}
	c, err := parseGatewayCreds(strings.NewReader(string(data)))
	if err != nil {
		return ""
	}
	for k, e := range c {
		if back, ok := credKey(k); !ok || back != k {
			return fmt.Sprintf("key %q reads back as %q, %v", k, back, ok)
		}
		for _, s := range []string{e.user, e.password} {
			if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				return fmt.Sprintf("entry %q has field %q", k, s)
			}
		}
	}
	return ""
}
