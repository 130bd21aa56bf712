package outbound

import (
	"net/netip"
)

// refusedPrefixes are the ranges beyond netip's own predicates (loopback,
// private, link-local, unspecified, multicast) that MX routing does not
// connect to: addresses that reach this host, its internal networks or no
// host at all (RFC 6890's special-purpose registry, "globally reachable:
// false"). The documentation ranges (192.0.2.0/24, 198.51.100.0/24,
// 203.0.113.0/24, 2001:db8::/32) are left alone: they are routed nowhere,
// so they reach nothing internal.
var refusedPrefixes = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},                     // RFC 1122 §3.2.1.3
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (CGNAT)"}, // RFC 6598
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},     // RFC 6890 §2.2.2
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},                 // RFC 2544
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},                       // RFC 1112 §4, and the broadcast address
	{netip.MustParsePrefix("fec0::/10"), "site-local"},                       // RFC 3879 (deprecated)
	{netip.MustParsePrefix("100::/64"), "discard-only"},                      // RFC 6666
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},             // RFC 8215
}

// refusedAddress decides whether MX routing may connect to ip, and says
// why not: loopback, private (RFC 1918, RFC 4193), link-local (RFC 3927,
// RFC 4291; 169.254.169.254 is where cloud metadata services answer),
// unspecified, multicast, and refusedPrefixes. An IPv6 address that embeds
// an IPv4 one (v4-mapped, v4-compatible, NAT64 64:ff9b::/96 of RFC 6052,
// 6to4 2002::/16 of RFC 3056) is judged by that IPv4 address too, so that
// a refused range cannot be reached in IPv6 clothing. It is a pure
// function: tests check it over a table, without dialing anything.
func refusedAddress(ip netip.Addr) (why string, refused bool) {
	if !ip.IsValid() {
		return "no address", true
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return refusedAddress(ip.Unmap())
	}
	switch {
	case ip.IsLoopback():
		return "loopback", true
	case ip.IsPrivate():
		return "private", true
	case ip.IsLinkLocalUnicast():
		return "link-local", true
	case ip.IsUnspecified():
		return "unspecified", true
	case ip.IsMulticast():
		return "multicast", true
	}
	for _, r := range refusedPrefixes {
		if r.p.Contains(ip) {
			return r.why, true
		}
	}
	if v4, ok := embeddedIPv4(ip); ok {
		if why, bad := refusedAddress(v4); bad {
			return why + " (embedded in IPv6)", true
		}
	}
	return "", false
}

var (
	nat64Prefix  = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052 §2.1
	sixToFour    = netip.MustParsePrefix("2002::/16")    // RFC 3056 §2
	v4Compatible = netip.MustParsePrefix("::/96")        // RFC 4291 §2.5.5.1 (deprecated)
)

// embeddedIPv4 returns the IPv4 address carried in an IPv6 address of the
// NAT64, 6to4 or IPv4-compatible forms.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip), v4Compatible.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
