package natslocal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/testinfra/tcpproxy"
)

// ClusterOptions configure a cluster.
type ClusterOptions struct {
	// Nodes is the number of servers. Zero: 3, the production shape.
	Nodes int
	// Logger receives every node's log lines, with a "node" attribute. Nil:
	// the nodes log nothing.
	Logger *slog.Logger
	// MaxPayload as in Options, for every node.
	MaxPayload int32
	// StoreDir, when set, holds node i's file store in StoreDir/n<i>, kept
	// by Remove. Empty: a temp dir per node that Remove deletes.
	StoreDir string
}

// Cluster is a JetStream cluster of embedded servers on 127.0.0.1, each with
// its own file store. Every route between two nodes runs through a proxy of
// its own, so that Partition can cut one node off from the others while its
// clients stay connected to it — what a network partition looks like.
type Cluster struct {
	nodes []*Server
	// links[i][j] carries the route node i dials to node j.
	links [][]*tcpproxy.Proxy
}

// StartCluster starts the nodes and waits until each accepts clients and
// the cluster is ready (WaitReady).
func StartCluster(ctx context.Context, opts ClusterOptions) (c *Cluster, err error) {
	n := opts.Nodes
	if n == 0 {
		n = 3
	}
	if n < 1 {
		return nil, fmt.Errorf("start nats cluster: %d nodes", n)
	}
	c = &Cluster{nodes: make([]*Server, n), links: make([][]*tcpproxy.Proxy, n)}
	defer func() {
		if err != nil {
			_ = c.Remove()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	for i := range n {
		c.links[i] = make([]*tcpproxy.Proxy, n)
		for j := range n {
			if i == j {
				continue
			}
			p, err := tcpproxy.Start(ctx, "", fmt.Sprintf("127.0.0.1:%d", ports[j]))
			if err != nil {
				return nil, fmt.Errorf("start nats cluster: route proxy %d->%d: %w", i, j, err)
			}
			c.links[i][j] = p
		}
	}
	type started struct {
		i   int
		s   *Server
		err error
	}
	done := make(chan started, n)
	for i := range n {
		node := &clusterNode{name: fmt.Sprintf("n%d", i), clusterName: "redms", port: ports[i]}
		for j := range n {
			if i != j {
				node.routes = append(node.routes, c.links[i][j].Addr())
			}
		}
		logger := opts.Logger
		if logger != nil {
			logger = logger.With("node", node.name)
		}
		// Each node waits for a route to become ready, so start them all at once.
		var store string
		if opts.StoreDir != "" {
			store = filepath.Join(opts.StoreDir, node.name)
		}
		go func() {
			s, err := Start(ctx, Options{Logger: logger, MaxPayload: opts.MaxPayload, StoreDir: store, cluster: node})
			done <- started{i, s, err}
		}()
	}
	var errs []error
	for range n {
		r := <-done
		c.nodes[r.i] = r.s
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", r.i, r.err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("start nats cluster: %w", err)
	}
	if err := c.WaitReady(ctx); err != nil {
		return nil, fmt.Errorf("start nats cluster: %w", err)
	}
	return c, nil
}

// freePort is a 127.0.0.1 port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// apply makes so a node of the cluster.
func (c *clusterNode) apply(so *server.Options) {
	so.ServerName = c.name
	so.Cluster = server.ClusterOpts{
		Name: c.clusterName,
		Host: "127.0.0.1",
		Port: c.port,
		// Gossip would teach each node the others' real route ports and let
		// it bypass the proxies; every pair is configured, so none is needed:
		// the advertised address is a port nothing listens on.
		Advertise: "127.0.0.1:1",
	}
	for _, r := range c.routes {
		so.Routes = append(so.Routes, &url.URL{Scheme: "nats", Host: r})
	}
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Node is node i (0-based).
func (c *Cluster) Node(i int) *Server { return c.nodes[i] }

// URLs is every node's client URL, comma-separated, as clients take it.
func (c *Cluster) URLs() string {
	urls := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// MetaLeader is the node that leads the JetStream meta group, or -1 when no
// running node does.
func (c *Cluster) MetaLeader() int {
	for i, s := range c.nodes {
		if srv := s.server(); srv != nil && srv.JetStreamIsLeader() {
			return i
		}
	}
	return -1
}

// LeadsStream reports whether node i leads stream's group in the global
// account (a node cut off may go on believing it does for a while).
func (c *Cluster) LeadsStream(i int, stream string) bool {
	srv := c.nodes[i].server()
	return srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream)
}

// StreamLeader is the node that leads stream's group in the global account,
// or -1 when no running node does.
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.nodes {
		if srv := s.server(); srv != nil && srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitReady waits until a meta leader is elected that sees every running
// node as an online JetStream peer, so a stream of as many replicas as
// running nodes can be placed (or ctx ends).
func (c *Cluster) WaitReady(ctx context.Context) error {
	return c.wait(ctx, "a jetstream meta leader with every running node as a peer", func() bool {
		l := c.MetaLeader()
		if l < 0 {
			return false
		}
		running := 0
		for _, s := range c.nodes {
			if s.Running() {
				running++
			}
		}
		srv := c.nodes[l].server()
		return srv != nil && len(srv.JetStreamClusterPeers()) == running
	})
}

// MoveStreamLeader asks stream's leader to step down in favour of node i
// and waits until node i leads it.
func (c *Cluster) MoveStreamLeader(ctx context.Context, stream string, i int) error {
	return c.stepDown(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, "stream "+stream, i,
		func() bool { return c.LeadsStream(i, stream) })
}

// MoveConsumerLeader asks the leader of stream's consumer to step down in
// favour of node i and waits until node i leads it.
func (c *Cluster) MoveConsumerLeader(ctx context.Context, stream, consumer string, i int) error {
	return c.stepDown(ctx, "$JS.API.CONSUMER.LEADER.STEPDOWN."+stream+"."+consumer, "consumer "+consumer, i,
		func() bool { return c.LeadsConsumer(i, stream, consumer) })
}

// LeadsConsumer reports whether node i leads stream's consumer in the
// global account.
func (c *Cluster) LeadsConsumer(i int, stream, consumer string) bool {
	srv := c.nodes[i].server()
	return srv != nil && srv.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, consumer)
}

// stepDown sends a leader step-down request with node i preferred, unless
// leads already says it leads, and waits until it does.
func (c *Cluster) stepDown(ctx context.Context, subject, what string, i int, leads func() bool) error {
	if leads() {
		return nil
	}
	nc, err := nats.Connect(c.nodes[i].URL())
	if err != nil {
		return fmt.Errorf("connect to node %d: %w", i, err)
	}
	defer nc.Close()
	req := fmt.Sprintf(`{"placement":{"preferred":"n%d"}}`, i)
	resp, err := nc.RequestWithContext(ctx, subject, []byte(req))
	if err != nil {
		return fmt.Errorf("step down the leader of %s: %w", what, err)
	}
	var r struct {
		Error *struct {
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return fmt.Errorf("step down the leader of %s: %w", what, err)
	}
	if r.Error != nil {
		return fmt.Errorf("step down the leader of %s: %s", what, r.Error.Description)
	}
	return c.wait(ctx, fmt.Sprintf("node %d leading %s", i, what), leads)
}

// WaitStreamLeader waits until stream has a leader and returns it.
func (c *Cluster) WaitStreamLeader(ctx context.Context, stream string) (int, error) {
	var l int
	err := c.wait(ctx, "a leader of stream "+stream, func() bool { l = c.StreamLeader(stream); return l >= 0 })
	return l, err
}

func (c *Cluster) wait(ctx context.Context, what string, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, defaultReadyTimeout)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !ok() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// Stop shuts node i down; its clients lose their connections.
func (c *Cluster) Stop(i int) { c.nodes[i].Stop() }

// Restart stops node i if it runs and starts it again on the same ports
// and store, and waits until the meta leader sees it again (WaitReady); it
// catches up on its streams by itself.
func (c *Cluster) Restart(ctx context.Context, i int) error {
	if err := c.nodes[i].Restart(ctx); err != nil {
		return err
	}
	return c.WaitReady(ctx)
}

// Partition cuts every route to and from node i until Heal; its clients
// stay connected to it and it keeps running, alone.
func (c *Cluster) Partition(i int) {
	for j := range c.nodes {
		if i != j {
			c.links[i][j].Cut()
			c.links[j][i].Cut()
		}
	}
}

// Heal lets node i's routes connect again.
func (c *Cluster) Heal(i int) {
	for j := range c.nodes {
		if i != j {
			c.links[i][j].Restore()
			c.links[j][i].Restore()
		}
	}
}

// ClientNode is the node a client connection named name (nats.Name) is
// connected to, or -1 when none is.
func (c *Cluster) ClientNode(name string) int {
	for i, s := range c.nodes {
		srv := s.server()
		if srv == nil {
			continue
		}
		cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 16})
		if err != nil {
			continue
		}
		for _, ci := range cz.Conns {
			if ci.Name == name {
				return i
			}
		}
	}
	return -1
}

// ClientsOn is the names (nats.Name) of the client connections on node i,
// sorted; nil when it is stopped.
func (c *Cluster) ClientsOn(i int) []string {
	srv := c.nodes[i].server()
	if srv == nil {
		return nil
	}
	cz, err := srv.Connz(&server.ConnzOptions{Limit: 1 << 16})
	if err != nil {
		return nil
	}
	var names []string
	for _, ci := range cz.Conns {
		names = append(names, ci.Name)
	}
	slices.Sort(names)
	return names
}

// Routes is the number of route connections node i has (0 when stopped).
func (c *Cluster) Routes(i int) int {
	if srv := c.nodes[i].server(); srv != nil {
		return srv.NumRoutes()
	}
	return 0
}

// Remove stops every node, deletes their stores and closes the proxies.
func (c *Cluster) Remove() error {
	var errs []error
	for _, s := range c.nodes {
		if s != nil {
			errs = append(errs, s.Remove())
		}
	}
	for _, row := range c.links {
		for _, p := range row {
			if p != nil {
				errs = append(errs, p.Close())
			}
		}
	}
	return errors.Join(errs...)
}
