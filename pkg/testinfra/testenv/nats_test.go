package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNATSRestartKeepsStream(t *testing.T) {
	n := StartNATS(t)
	_, js := n.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy,
	}); err != nil {
		t.Fatal(err)
	}
	ack, err := js.Publish(ctx, "s.a", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
	n.Restart(t)
	// A fresh connection sees the stored message.
	_, js2 := n.Connect(t)
	stream, err := js2.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatalf("message %d after restart: %v", ack.Sequence, err)
	}
	if string(msg.Data) != "x" {
		t.Fatalf("message after restart = %q, want x", msg.Data)
	}
}

func TestStartNATSClusterServesEveryURL(t *testing.T) {
	c := StartNATSCluster(t)
	urls := strings.Split(c.URLs(), ",")
	if len(urls) != 3 {
		t.Fatalf("URLs() = %q, want 3", c.URLs())
	}
	for _, u := range urls {
		nc, err := nats.Connect(u)
		if err != nil {
			t.Fatalf("connect to %s: %v", u, err)
		}
		nc.Close()
	}
	c.Stop(0)
	c.Restart(t, 0)
	if err := c.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
}
