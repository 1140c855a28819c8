package testenv

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/natslocal"
)

// natsTimeout bounds each NATS start and restart.
const natsTimeout = time.Minute

// NATS is an embedded nats-server with JetStream on a file store in a temp
// dir, keeping its port and store across Stop and Restart.
type NATS struct {
	s *natslocal.Server
}

// StartNATS starts a server and removes it and its store when the test ends.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	return StartNATSWith(t, natslocal.Options{})
}

// StartNATSWith is StartNATS with options (a Port or StoreDir given here is
// the caller's to choose and, for StoreDir, to remove).
func StartNATSWith(t testing.TB, opts natslocal.Options) *NATS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	s, err := natslocal.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Remove(); err != nil {
			t.Errorf("remove nats: %v", err)
		}
	})
	return &NATS{s: s}
}

// Server is the underlying server.
func (n *NATS) Server() *natslocal.Server { return n.s }

// URL is nats://127.0.0.1:PORT.
func (n *NATS) URL() string { return n.s.URL() }

// Addr is host:port, e.g. for StartProxy.
func (n *NATS) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.s.Port())) }

// Stop shuts the server down; clients lose their connections.
func (n *NATS) Stop() { n.s.Stop() }

// Restart stops the server if it runs and starts it on the same port and store.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	if err := n.s.Restart(ctx); err != nil {
		t.Fatalf("%v", err)
	}
}

// Connect returns a connection to the server (ConnectNATS).
func (n *NATS) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectNATS(t, n.URL())
}

// ConnectNATS returns a connection to url (one server or a comma-separated
// list) that reconnects forever, every 20ms, across restarts, and a
// JetStream handle on it; opts are added (e.g. nats.DontRandomize()). Both
// close when the test ends.
func ConnectNATS(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.Name(t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
	}, opts...)...)
	if err != nil {
		t.Fatalf("connect to nats %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// NATSCluster is a 3-node JetStream cluster of embedded servers, each with
// its own file store, whose nodes can be stopped, restarted and cut off.
type NATSCluster struct {
	*natslocal.Cluster
}

// StartNATSCluster starts a 3-node cluster and removes it and its stores
// when the test ends.
func StartNATSCluster(t testing.TB) *NATSCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	c, err := natslocal.StartCluster(ctx, natslocal.ClusterOptions{})
	if err != nil {
		t.Fatalf("start embedded nats cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Errorf("remove nats cluster: %v", err)
		}
	})
	return &NATSCluster{Cluster: c}
}

// Connect returns a connection to the cluster's nodes (ConnectNATS).
func (c *NATSCluster) Connect(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectNATS(t, c.URLs())
}

// Restart restarts node i on its ports and store.
func (c *NATSCluster) Restart(t testing.TB, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	if err := c.Cluster.Restart(ctx, i); err != nil {
		t.Fatalf("restart nats node %d: %v", i, err)
	}
}

// LeaderOf waits for stream's leader and returns its node.
func (c *NATSCluster) LeaderOf(t testing.TB, stream string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), natsTimeout)
	defer cancel()
	l, err := c.WaitStreamLeader(ctx, stream)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return l
}
