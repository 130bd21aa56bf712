package testutil

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeAddrDistinct: many addresses from one process are all distinct,
// each can be listened on, and none is in the ephemeral range.
func TestFreeAddrDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("FreeAddr returned %s twice", a)
		}
		seen[a] = true
		_, ps, _ := net.SplitHostPort(a)
		if p, _ := strconv.Atoi(ps); p < portLow || p >= portHigh {
			t.Fatalf("FreeAddr returned %s, in the ephemeral range", a)
		}
	}
	ln, err := net.Listen("tcp", FreeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}
