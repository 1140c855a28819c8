package source

import (
	"net"
	"time"
)

// The replication connection's socket is read in large, coalesced reads.
// The walsender sends every change as soon as it is decoded, so a reader
// faster than it gets a change or two per read and parks on the socket
// between them, and pgconn reads at most 8 KiB at a time: in the profile
// read syscalls, epoll waits and goroutine wake-ups were ~45 % of
// capture's CPU. A read that returned less than coalesceBelow bytes makes
// the next one wait coalesceWait first, so that the socket collects dozens
// of changes, and reads fill a buffer of readBuffer bytes that pgconn's
// reads are served from. A change that arrives alone waits at most
// coalesceWait longer.
const (
	coalesceBelow = 32 << 10
	coalesceWait  = time.Millisecond
	readBuffer    = 128 << 10
)

// coalescingConn is the replication connection's socket, read as above.
type coalescingConn struct {
	net.Conn
	buf   []byte
	r, w  int  // buf[r:w] is read but not handed out
	small bool // the last read returned little
}

func (c *coalescingConn) Read(p []byte) (int, error) {
	if c.r == c.w {
		if c.small {
			time.Sleep(coalesceWait)
		}
		if c.buf == nil {
			c.buf = make([]byte, readBuffer)
		}
		n, err := c.Conn.Read(c.buf)
		c.small = n < coalesceBelow
		c.r, c.w = 0, n
		if n == 0 {
			return 0, err
		}
	}
	n := copy(p, c.buf[c.r:c.w])
	c.r += n
	return n, nil
}
