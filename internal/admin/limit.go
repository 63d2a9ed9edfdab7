package admin

import (
	"net"
	"sync"
	"sync/atomic"
)

// limitListener serves at most n connections at once: Accept waits for a
// slot, so further clients queue in the kernel's backlog instead of
// holding goroutines and buffers here. Waits are counted in capped.
type limitListener struct {
	net.Listener
	sem    chan struct{}
	capped *atomic.Uint64
	done   chan struct{}
	once   sync.Once
}

func newLimitListener(l net.Listener, n int, capped *atomic.Uint64) *limitListener {
	return &limitListener{Listener: l, sem: make(chan struct{}, n), capped: capped, done: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	default:
		l.capped.Add(1)
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
