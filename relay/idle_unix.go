//go:build unix

package relay

import (
	"net"

	"golang.org/x/sys/unix"
)

// waitSocket waits until c's socket is readable (a non-blocking MSG_PEEK
// finds bytes, the end of the stream or an error), its read deadline
// passes or it is closed. Anything but a TCP socket returns at once.
func waitSocket(c net.Conn) {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	rc, err := tcp.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return err != unix.EAGAIN && err != unix.EWOULDBLOCK
	})
}
