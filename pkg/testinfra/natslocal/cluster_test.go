package natslocal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterR3SurvivesEachNode: an R3 stream keeps every stored message
// while its leader is stopped, while a node is cut off, and after each
// node is back; a cut-off node has no routes until healed.
func TestClusterR3SurvivesEachNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := StartCluster(ctx, ClusterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Error(err)
		}
	})
	connect := func(urls string) jetstream.JetStream {
		t.Helper()
		nc, err := nats.Connect(urls, nats.Name("cluster-test"), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
	js := connect(c.URLs())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	sent := 0
	publish := func(n int) {
		t.Helper()
		for range n {
			// A publish during an election may fail or time out: retry it
			// (the message id makes a stored retry a duplicate).
			for attempt := 0; ; attempt++ {
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := js.Publish(pctx, "s.x", []byte("m"), jetstream.WithMsgID(fmt.Sprint(sent)))
				pcancel()
				if err == nil {
					break
				}
				if attempt > 100 {
					t.Fatalf("publish %d: %v", sent, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			sent++
		}
	}
	check := func(when string) {
		t.Helper()
		var msgs uint64
		for range 200 {
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			s, err := js.Stream(ictx, "S")
			if err == nil {
				var info *jetstream.StreamInfo
				if info, err = s.Info(ictx); err == nil {
					msgs = info.State.Msgs
				}
			}
			icancel()
			if err == nil && msgs == uint64(sent) {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: stream holds %d messages, want %d", when, msgs, sent)
	}
	publish(50)
	if n := c.ClientNode("cluster-test"); n < 0 {
		t.Fatal("ClientNode found no node with the test's connection")
	}
	leader, err := c.WaitStreamLeader(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	c.Stop(leader)
	publish(50)
	check("stream leader stopped")
	if l, err := c.WaitStreamLeader(ctx, "S"); err != nil || l == leader {
		t.Fatalf("new stream leader %d (old %d): %v", l, leader, err)
	}
	if err := c.Restart(ctx, leader); err != nil {
		t.Fatal(err)
	}

	cut := (c.StreamLeader("S") + 1) % c.Len()
	// A client of the cut-off node would see no stream (its node has no
	// quorum): this one talks to a node on the majority side.
	js = connect(c.Node((cut + 1) % c.Len()).URL())
	c.Partition(cut)
	deadline := time.Now().Add(30 * time.Second)
	for c.Routes(cut) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node %d still has %d routes after Partition", cut, c.Routes(cut))
		}
		time.Sleep(20 * time.Millisecond)
	}
	publish(50)
	check("node partitioned")
	time.Sleep(time.Second) // routes retry meanwhile; none may get through
	if n := c.Routes(cut); n != 0 {
		t.Fatalf("partitioned node %d has %d routes", cut, n)
	}
	c.Heal(cut)
	deadline = time.Now().Add(30 * time.Second)
	for c.Routes(cut) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("node %d has no routes 30s after Heal", cut)
		}
		time.Sleep(20 * time.Millisecond)
	}
	publish(50)
	check("node healed")
}
