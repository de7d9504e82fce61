package notify

import "syscall"

// setNotSentLowat sets TCP_NOTSENT_LOWAT (netinet/tcp.h: 0x201). An error (not a TCP socket)
// leaves the socket as it was.
func setNotSentLowat(fd uintptr, n int) {
	_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, 0x201, n)
}
