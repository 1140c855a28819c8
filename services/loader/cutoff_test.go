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

// TestConsumerFollowsStreamLeader: a runner that creates or takes a
// table's consumer on a cluster moves the consumer's leadership to the
// stream's leader. A node that rejoins after a cut-off catches up on the
// stream for a while, and a consumer it leads delivers only what it holds
// (the e2e cluster run saw tables stall for a minute that way).
func TestConsumerFollowsStreamLeader(t *testing.T) {
	t.Parallel()
	cl := testenv.StartNATSCluster(t)
	w := newWorldOn(t, cl.Node(0).URL(), 3)
	env := map[string]string{
		"REDMS_NATS_URL":        cl.URLs(),
		"REDMS_STREAM_REPLICAS": "3",
		"REDMS_LEASE_TTL":       "3s",
	}
	p := w.start(t, "solo", env)
	w.publish(t, "items", change{"INSERT", 1, "a"})
	testenv.Eventually(t, time.Minute, "items applied", func() bool { return w.complete(t, "items") })
	if err := p.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop the loader: %v", err)
	}
	const consumer = "redms-shop-public-items"
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, err := cl.WaitStreamLeader(ctx, testStream)
	if err != nil {
		t.Fatal(err)
	}
	away := (leader + 1) % cl.Len()
	if err := cl.MoveConsumerLeader(ctx, testStream, consumer, away); err != nil {
		t.Fatal(err)
	}

	p = w.start(t, "solo", env)
	testenv.Eventually(t, 30*time.Second, "the consumer led by the stream's leader again", func() bool {
		return cl.LeadsConsumer(leader, testStream, consumer)
	})
	w.publish(t, "items", change{"UPDATE", 1, "b"}, change{"INSERT", 2, "c"})
	testenv.Eventually(t, time.Minute, "items applied", func() bool { return w.complete(t, "items") })
	if !p.Running() {
		t.Fatalf("the loader exited: %v", p.Err())
	}
}
