// Package tcpproxy forwards TCP connections to one target and lets its owner
// cut them: Cut closes every open connection in both directions and makes
// the proxy close new ones as soon as it accepts them, until Restore. Tests
// put it between a service and Postgres or NATS to break the network on
// purpose.
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
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
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
	p := &Proxy{target: target, l: l, conns: map[net.Conn]struct{}{}}
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
// hang. It lasts until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
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
	go func() { defer wg.Done(); pipe(server, client) }()
	go func() { defer wg.Done(); pipe(client, server) }()
	wg.Wait()
	p.untrack(client, server)
	_ = client.Close()
	_ = server.Close()
}

// pipe copies src to dst. At src's clean EOF it half-closes dst so the peer
// sees the end of input but can still answer; on an error it closes both.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
			return
		}
	}
	_ = dst.Close()
	_ = src.Close()
}
