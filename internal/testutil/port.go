package testutil

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// Ports handed out by FreeAddr come from below Linux's ephemeral range
// (32768–60999 by default), so that no outgoing connection of this or
// another test process takes one between FreeAddr and the listen that
// uses it, and never twice from one process: a port closed a moment ago
// is what bind(":0") tends to return next, which gave the same port to two
// listeners of one edgerelay in CI ("RELAY_HTTP_ADDR: bind: address
// already in use").
const (
	portLow  = 20000
	portHigh = 32000
)

var (
	portMu     sync.Mutex
	portIssued = map[int]bool{}
)

// FreeAddr returns a loopback address "127.0.0.1:PORT" whose port nobody
// listened on when it was chosen and that this process has not handed out
// before. The caller listens on it soon; a collision with another process
// stays possible but needs that process to pick the same port in the same
// moment.
func FreeAddr(t testing.TB) string {
	t.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for range 1000 {
		p := portLow + rand.IntN(portHigh-portLow)
		if portIssued[p] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		portIssued[p] = true
		return addr
	}
	t.Fatal("testutil.FreeAddr: no free loopback port in 1000 tries")
	return ""
}
