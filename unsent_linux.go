package notify

import "syscall"

// setNotSentLowat sets TCP_NOTSENT_LOWAT (linux/tcp.h: 25). An error (not a TCP socket) leaves
// the socket as it was.
func setNotSentLowat(fd uintptr, n int) {
	_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, 25, n)
}
