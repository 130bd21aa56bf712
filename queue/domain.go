package queue

import (
	"net/netip"
	"strings"
)

// ValidDomain reports whether d can stand as the domain of a stored address:
// the submission side refuses any other at MAIL/RCPT, and the worker writes
// and routes only these (RFC 5321 §4.1.2, §4.1.3). It is either
//   - an address literal that can be delivered to, "[IPv4]" or "[IPv6:addr]"
//     (a General-address-literal "[tag:dcontent]" names nothing a worker can
//     dial, and its dcontent may hold '>' that ends the path early at the
//     next hop: found by outbound's FuzzWirePath, "0@[>]"), or
//   - dot-separated labels of letters, digits, '_' (DNS names carry it) and
//     inner hyphens, where a label may also be UTF-8 (an RFC 6531 U-label);
//     no label is empty, so no leading or trailing dot.
func ValidDomain(d string) bool {
	if d == "" {
		return false
	}
	if d[0] == '[' {
		return validAddressLiteral(d)
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 0x80 || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func validAddressLiteral(d string) bool {
	if len(d) < 3 || d[len(d)-1] != ']' {
		return false
	}
	in := d[1 : len(d)-1]
	if len(in) > 5 && strings.EqualFold(in[:5], "IPv6:") {
		a, err := netip.ParseAddr(in[5:])
		return err == nil && a.Is6() && a.Zone() == ""
	}
	a, err := netip.ParseAddr(in)
	return err == nil && a.Is4()
}
