//go:build unix

package outbound

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// arrived reports, without waiting, whether the peer sent something that
// waits unread in c's receive buffer: bytes, or the end of the stream (it
// closed). known is false when c is not a socket this can ask (the caller
// then waits for bytes instead). MSG_PEEK leaves the bytes where they are.
func arrived(c net.Conn) (sent, known bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var n int
	var perr error
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true // never wait for the poller
	})
	switch {
	case err != nil:
		return true, true // closed or unusable: not quiet
	case perr == unix.EAGAIN || perr == unix.EWOULDBLOCK:
		return false, true
	case perr == unix.EINTR:
		return false, false
	case perr != nil:
		return true, true // reset and the like: not quiet
	}
	_ = n // n > 0: bytes; n == 0: the peer closed
	return true, true
}
