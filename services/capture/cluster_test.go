package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// publishPause watches the stream's last sequence from a connection to
// node and returns a function that stops watching and returns the
// longest time it did not move: under a steady load, the longest pause
// in publishing.
func publishPause(t *testing.T, cl *testenv.NATSCluster, node int) func() time.Duration {
	t.Helper()
	nc, js := testenv.ConnectNATS(t, cl.Node(node).URL())
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		defer nc.Close()
		var (
			last    uint64
			movedAt = time.Now()
			longest time.Duration
		)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- max(longest, time.Since(movedAt))
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s, err := js.Stream(ctx, "REDMS_WAL")
			var info *jetstream.StreamInfo
			if err == nil {
				info, err = s.Info(ctx)
			}
			cancel()
			if err == nil && info.State.LastSeq != last {
				longest = max(longest, time.Since(movedAt))
				last, movedAt = info.State.LastSeq, time.Now()
			}
		}
	}()
	return func() time.Duration { close(stop); return <-done }
}

// TestStreamR3Failover runs capture under load against a 3-node cluster
// with REDMS_STREAM_REPLICAS=3 and, one at a time, stops the stream
// leader, the meta leader and a node leading neither (restarting each),
// then cuts off the node capture is connected to, made the stream leader. Every committed change
// reaches the stream; the longest publishing pause of each failover is
// reported.
func TestStreamR3Failover(t *testing.T) {
	pg := testenv.StartPostgres(t)
	cl := testenv.StartNATSCluster(t)
	url := pg.CreateDatabase(t, "shop")
	exec1(t, connect(t, url), loadTable)
	env := liveEnv(url, cl.URLs(), "r3")
	env["REDMS_STREAM_REPLICAS"] = "3"
	env["REDMS_ACK_TIMEOUT"] = "2s"
	env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(t)
	p := startCapture(t, env)
	p.WaitReady(env["REDMS_METRICS_ADDR"], time.Minute)

	l := startPacedLoad(t, url, 100_000, 50, 40*time.Millisecond)
	leader := cl.LeaderOf(t, "REDMS_WAL")
	other := func(not ...int) int {
		for i := range cl.Len() {
			skip := false
			for _, n := range not {
				skip = skip || i == n
			}
			if !skip {
				return i
			}
		}
		t.Fatalf("no node other than %v", not)
		return -1
	}
	var pauses []string
	failover := func(what string, node int, fault func(), heal func()) {
		t.Helper()
		watch := publishPause(t, cl, other(node))
		time.Sleep(2 * time.Second) // steady state before
		fault()
		time.Sleep(5 * time.Second)
		heal()
		time.Sleep(3 * time.Second)
		pause := watch()
		pauses = append(pauses, fmt.Sprintf("%s (node %d): %s", what, node, pause.Round(10*time.Millisecond)))
	}
	stopRestart := func(n int) (func(), func()) {
		return func() { cl.Stop(n) }, func() { cl.Restart(t, n) }
	}
	f, h := stopRestart(leader)
	failover("stream leader stopped", leader, f, h)
	meta := cl.MetaLeader()
	f, h = stopRestart(meta)
	failover("meta leader stopped", meta, f, h)
	idle := other(cl.LeaderOf(t, "REDMS_WAL"), cl.MetaLeader())
	f, h = stopRestart(idle)
	failover("non-leader stopped", idle, f, h)
	home := cl.ClientNode("redms-capture")
	if home < 0 {
		t.Fatal("capture has no NATS connection")
	}
	// The node capture is on leads the stream when it is cut off: it keeps
	// answering "duplicate message id is in process" for what it cannot
	// commit while the other two elect a leader of their own.
	lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
	defer lcancel()
	if err := cl.MoveStreamLeader(lctx, "REDMS_WAL", home); err != nil {
		t.Fatal(err)
	}
	// Cut off, its node can reach no stream leader: capture must move to
	// a node that can, not wait for the network to heal.
	failover("capture's node cut off", home, func() {
		cl.Partition(home)
		time.Sleep(time.Second)
		testenv.Eventually(t, time.Minute, "capture moving off the cut-off node", func() bool {
			n := cl.ClientNode("redms-capture")
			return n >= 0 && n != home
		})
	}, func() { cl.Heal(home) })

	if l.attempted.Load() >= int64(l.total) {
		t.Error("the load ended before the last failover: it proves less than it claims")
	}
	l.wait(t, 3*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cl.LeaderOf(t, "REDMS_WAL")
	_, js := testenv.ConnectNATS(t, cl.Node(other(home)).URL())
	want, total := expectedVersions(t, url)
	waitAllSeen(t, js, want, 2*time.Minute).verify(t, want, total)
	for _, s := range pauses {
		t.Logf("longest publishing pause, %s", s)
	}
	t.Logf("capture's NATS log:\n%s", grepLines(p.Log.String(), "nats"))
}
