package testenv

import (
	"context"
	"testing"
	"time"

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
