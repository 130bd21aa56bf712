//go:build !unix

package relay

import "net"

// waitSocket does not wait where the socket cannot be asked: the read
// after it waits instead.
func waitSocket(net.Conn) {}
