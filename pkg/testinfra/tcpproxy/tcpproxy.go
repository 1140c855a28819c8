// Package tcpproxy forwards TCP connections to one target and lets its owner
// break them: Cut closes every open connection in both directions and makes
// the proxy close new ones as soon as it accepts them, until Restore; Stall
// keeps every connection open but holds the bytes read from either side
// (new connections are accepted and held too) until Unstall, as a link that
// silently stops carrying packets would. Tests put it between a service and
// Postgres, NATS or S3 to break the network on purpose.
package tcpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds each connection to the target.
const dialTimeout = 10 * time.Second

// Proxy forwards connections accepted on Addr to a target.
type Proxy struct {
	target string
	l      net.Listener

	mu     sync.Mutex
	cut    bool
	closed bool
	// flowing is closed while bytes pass; Stall replaces it with an open
	// channel that Unstall (or Close) closes.
	flowing chan struct{}
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// Start listens on listenAddr (empty: 127.0.0.1 and a free port) and
// forwards each accepted connection to target.
func Start(ctx context.Context, listenAddr, target string) (*Proxy, error) {
	if listenAddr == "" {
		listenAddr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for proxy to %s: %w", target, err)
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &Proxy{target: target, l: l, conns: map[net.Conn]struct{}{}, flowing: flowing}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the host:port to dial instead of the target.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Cut closes every open connection (both sides) and refuses new ones: they
// are accepted and closed at once, so clients see a reset link rather than a
// hang. It lasts until Restore. It returns the number of connections it
// closed (each forwarded connection is two: client and target side).
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	n := len(p.conns)
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	return n
}

// Stall holds every byte read from either side of every connection, open
// or new, until Unstall: nothing is closed, so clients see a hang until
// their own timeouts fire. It returns the number of connections open
// (client and target sides) when it began.
func (p *Proxy) Stall() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		p.flowing = make(chan struct{})
	default: // already stalled
	}
	return len(p.conns)
}

// Unstall lets the held bytes and everything after them through.
func (p *Proxy) Unstall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
	default:
		close(p.flowing)
	}
}

// gate is closed while bytes may pass.
func (p *Proxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flowing
}

// Restore makes the proxy forward new connections again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.Unstall()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	err := p.l.Close()
	p.wg.Wait()
	if err != nil {
		return fmt.Errorf("close proxy listener: %w", err)
	}
	return nil
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		client, err := p.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // transient accept error (e.g. too many open files)
		}
		if !p.track(client) {
			_ = client.Close()
			continue
		}
		p.wg.Add(1)
		go p.forward(client)
	}
}

// track registers c unless the proxy is cut or closed.
func (p *Proxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

func (p *Proxy) forward(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		p.untrack(client)
		_ = client.Close()
		return
	}
	// A Cut between accepting and dialing must not let this one through.
	if !p.track(server) {
		p.untrack(client)
		_ = client.Close()
		_ = server.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(server, client) }()
	go func() { defer wg.Done(); p.pipe(client, server) }()
	wg.Wait()
	p.untrack(client, server)
	_ = client.Close()
	_ = server.Close()
}

// pipe copies src to dst, each chunk once the proxy is not stalled. At
// src's clean EOF it half-closes dst so the peer sees the end of input but
// can still answer; on an error it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	var err error
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			<-p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
				break
			}
		}
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				err = rerr
			}
			break
		}
	}
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
	}
	_ = dst.Close()
	_ = src.Close()
}
