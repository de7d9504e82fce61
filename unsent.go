package notify

import (
	"net"
	"syscall"
)

// unsentLimit bounds the bytes of a session's connection that the kernel holds unsent
// (TCP_NOTSENT_LOWAT, on Linux and macOS; elsewhere the kernel's own buffering applies).
//
// Without it the kernel's send buffer autotuning lets every connection's queue grow to
// net.ipv4.tcp_wmem's maximum (4 MiB by default on Linux) when its client stops reading, before
// the session's outbox sees any backlog: 500 such clients held 1.5 GB of kernel memory within
// 4 seconds, which put the whole host's TCP stack under memory pressure (tcp_mem) and stalled
// the writes to the clients that did read. With the bound a client that stops reading holds at
// most this much unsent, plus what its TCP window lets through, and its backlog waits in the
// outbox, where MaxQueueBytes cuts it off. Data in flight (sent, not yet acknowledged) is not
// limited, so a reader on a long, fast link keeps its throughput.
const unsentLimit = 32 << 10

// limitUnsent applies unsentLimit to the connection under nc (a TLS connection's too). It
// does nothing for connections that are not TCP.
func limitUnsent(nc net.Conn) {
	for {
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		nc = u.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) { setNotSentLowat(fd, unsentLimit) })
}
