package testenv

import (
	"context"
	"testing"

	"github.com/redms/redms/pkg/testinfra/tcpproxy"
)

// Proxy is a TCP proxy to a target that the test can cut and restore.
type Proxy struct {
	p *tcpproxy.Proxy
}

// StartProxy listens on 127.0.0.1 and a free port, forwarding to target
// (host:port), and closes when the test ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := tcpproxy.Start(context.Background(), "", target)
	if err != nil {
		t.Fatalf("start proxy: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return &Proxy{p: p}
}

// Addr is the host:port to dial instead of the target.
func (p *Proxy) Addr() string { return p.p.Addr() }

// Cut closes every open connection and refuses new ones until Restore; it
// returns how many connections (client and target sides) it closed.
func (p *Proxy) Cut() int { return p.p.Cut() }

// Restore accepts and forwards again.
func (p *Proxy) Restore() { p.p.Restore() }

// Stall holds every byte of open and new connections, closing nothing,
// until Unstall; it returns how many connections were open.
func (p *Proxy) Stall() int { return p.p.Stall() }

// Unstall lets held bytes through again.
func (p *Proxy) Unstall() { p.p.Unstall() }
