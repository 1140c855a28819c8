package main

import (
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
