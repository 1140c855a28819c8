package main

import (
	"context"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestMovesOffCutOffNode: a loader whose NATS node is cut off from the
// rest of a 3-node cluster (its TCP connection stays up, no leader answers
// through it) moves to another server of REDMS_NATS_URL and goes on
// applying, with no other replica to take its tables; before, it waited
// for the network to heal.
func TestMovesOffCutOffNode(t *testing.T) {
	t.Parallel()
	cl := testenv.StartNATSCluster(t)
	w := newWorldOn(t, cl.Node(0).URL(), 3)
	p := w.start(t, "solo", map[string]string{
		"REDMS_NATS_URL":        cl.URLs(),
		"REDMS_STREAM_REPLICAS": "3",
		"REDMS_LEASE_TTL":       "6s",
	})
	w.publish(t, "items", change{"INSERT", 1, "a"}, change{"INSERT", 2, "b"})
	testenv.Eventually(t, time.Minute, "items applied", func() bool { return w.complete(t, "items") })
	name := "redms-loader solo"
	home := cl.ClientNode(name)
	if home < 0 {
		t.Fatal("the loader is on no node")
	}
	// The test publishes through a node that stays in the cluster.
	w.connect(t, cl.Node((home+1)%cl.Len()).URL())

	cl.Partition(home)
	cut := time.Now()
	defer cl.Heal(home)
	// The rest of the cluster elects a stream leader of its own before
	// the test publishes through it.
	testenv.Eventually(t, time.Minute, "a stream leader among the nodes still in the cluster", func() bool {
		for i := range cl.Len() {
			if i != home && cl.LeadsStream(i, testStream) {
				return true
			}
		}
		return false
	})
	w.publish(t, "items", change{"UPDATE", 1, "a2"}, change{"DELETE", 2, ""}, change{"INSERT", 3, "c"})
	testenv.Eventually(t, 2*time.Minute, "the loader moving off the cut-off node", func() bool {
		n := cl.ClientNode(name)
		return n >= 0 && n != home
	})
	testenv.Eventually(t, 2*time.Minute, "the changes published while the loader's node is cut off applied", func() bool { return w.complete(t, "items") })
	t.Logf("applied %s after node %d was cut off; the loader is on node %d", time.Since(cut).Round(100*time.Millisecond), home, cl.ClientNode(name))
	if !p.Running() {
		t.Fatalf("the loader exited: %v", p.Err())
	}
}

// TestCatchesUpAfterLeaderNodeHeals cuts off, for 10 s, the node that
// leads the stream and carries the loader, publishes through the rest of
// the cluster during the cut-off and after the heal, and waits for every
// change: a consumer placed on the healed node, still catching up on the
// stream, must not hold the table back.
func TestCatchesUpAfterLeaderNodeHeals(t *testing.T) {
	t.Parallel()
	cl := testenv.StartNATSCluster(t)
	w := newWorldOn(t, cl.Node(0).URL(), 3)
	env := map[string]string{
		"REDMS_NATS_URL":        cl.URLs(),
		"REDMS_STREAM_REPLICAS": "3",
		"REDMS_LEASE_TTL":       "3s",
	}
	p := w.start(t, "solo", env)
	w.publish(t, "items", change{"INSERT", 1, "a"}, change{"INSERT", 2, "b"})
	testenv.Eventually(t, time.Minute, "items applied", func() bool { return w.complete(t, "items") })
	name := "redms-loader solo"
	home := cl.ClientNode(name)
	if home < 0 {
		t.Fatal("the loader is on no node")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.MoveStreamLeader(ctx, testStream, home); err != nil {
		t.Fatal(err)
	}
	w.connect(t, cl.Node((home+1)%cl.Len()).URL())
	cl.Partition(home)
	testenv.Eventually(t, time.Minute, "a stream leader among the nodes still in the cluster", func() bool {
		for i := range cl.Len() {
			if i != home && cl.LeadsStream(i, testStream) {
				return true
			}
		}
		return false
	})
	w.publish(t, "items", change{"UPDATE", 1, "a2"}, change{"INSERT", 3, "c"})
	time.Sleep(10 * time.Second)
	cl.Heal(home)
	healed := time.Now()
	// A new owner right after the heal recreates the consumer (its
	// predecessor left messages un-acked).
	p.Kill()
	p = w.start(t, "solo", env)
	for i := 4; i < 40; i++ {
		w.publish(t, "items", change{"INSERT", i, "x"})
		time.Sleep(100 * time.Millisecond)
	}
	testenv.Eventually(t, 3*time.Minute, "every change applied after the heal", func() bool { return w.complete(t, "items") })
	t.Logf("applied everything %s after node %d healed; the loader is on node %d", time.Since(healed).Round(100*time.Millisecond), home, cl.ClientNode(name))
	if !p.Running() {
		t.Fatalf("the loader exited: %v", p.Err())
	}
}
