package relay

import (
	"net"
	"net/netip"
	"sync"
)

// connLimits counts a Server's client connections for MaxConnections
// and MaxConnectionsPerIP. One instance is shared by every
// listener (587 and 465), so the documented totals hold for the process;
// counted per listener they doubled.
type connLimits struct {
	max, maxPerKey int // 0: no limit

	mu     sync.Mutex
	total  int
	perKey map[string]int
}

func newConnLimits(max, maxPerKey int) *connLimits {
	return &connLimits{max: max, maxPerKey: maxPerKey, perKey: map[string]int{}}
}

// acquire counts one more connection for key, unless that would pass a
// limit: then it counts nothing and reports which limit was reached.
func (l *connLimits) acquire(key string) (overTotal, overKey bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	overTotal = l.max > 0 && l.total >= l.max
	overKey = l.maxPerKey > 0 && l.perKey[key] >= l.maxPerKey
	if overTotal || overKey {
		return overTotal, overKey
	}
	l.total++
	l.perKey[key]++
	return false, false
}

// release gives back a connection that acquire counted.
func (l *connLimits) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perKey[key]--; l.perKey[key] <= 0 {
		delete(l.perKey, key)
	}
}

// limitKey is what the per-IP connection limit counts a client as: an IPv4
// address alone, an IPv6 address by its /64, because one host or
// subscriber usually gets a whole /64 (RFC 6177, SLAAC) and could
// otherwise take a fresh address for every connection. An IPv4-mapped
// IPv6 address counts as the IPv4 address. This is the grouping the AUTH
// throttle uses (auth.ipKey), so both limits see the same clients.
func limitKey(a net.Addr) string {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ = netip.AddrFromSlice(ta.IP)
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	if !ip.IsValid() {
		return a.String()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
