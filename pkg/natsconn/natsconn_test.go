package natsconn

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

func TestUnanswered(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nats.ErrNoResponders, true},
		{fmt.Errorf("heartbeat r1: %w", jetstream.ErrNoStreamResponse), true},
		{fmt.Errorf("publish: %w", nats.ErrTimeout), true},
		{jetstream.ErrAsyncPublishTimeout, true},
		{context.DeadlineExceeded, true},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeStreamNotFound, Description: "stream not found"}, false},
		{jetstream.ErrKeyNotFound, false},
		{fmt.Errorf("renew: %w", jetstream.ErrKeyExists), false},
	} {
		if got := Unanswered(tc.err); got != tc.want {
			t.Errorf("Unanswered(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestOpenKeyValueAnswersAtOnce: a bucket OpenKeyValue returns answers its
// first read and write at once, also just created with 3 replicas on a
// cluster. Opened with CreateOrUpdateKeyValue alone, about 1 in 30 such
// buckets answered the first read with "no responders".
func TestOpenKeyValueAnswersAtOnce(t *testing.T) {
	_, js := testenv.StartNATSCluster(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range 60 {
		cfg := jetstream.KeyValueConfig{Bucket: fmt.Sprintf("fresh%d", i), Replicas: 3, Storage: jetstream.FileStorage}
		kv, err := OpenKeyValue(ctx, js, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, "k"); !errors.Is(err, jetstream.ErrKeyNotFound) {
			t.Fatalf("bucket %d: first read: %v, want key not found", i, err)
		}
		if _, err := kv.Create(ctx, "k", []byte("v")); err != nil {
			t.Fatalf("bucket %d: first write: %v", i, err)
		}
		if err := js.DeleteKeyValue(ctx, cfg.Bucket); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenKeyValueWaitsForTheCluster: with two of three nodes down a
// bucket cannot be placed (the cluster answers "no suitable peers for
// placement, peer offline", as a CI run saw while a node was slow) or
// does not answer; OpenKeyValue waits for a node to come back and opens
// the bucket. Before, the open failed with that error, and so did the
// process that called it.
func TestOpenKeyValueWaitsForTheCluster(t *testing.T) {
	cl := testenv.StartNATSCluster(t)
	_, js := testenv.ConnectNATS(t, cl.Node(0).URL())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl.Stop(1)
	cl.Stop(2)
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		time.Sleep(3 * time.Second)
		cl.Restart(t, 2)
	}()
	kv, err := OpenKeyValue(ctx, js, jetstream.KeyValueConfig{Bucket: "placed", Replicas: 2, Storage: jetstream.FileStorage})
	<-restarted
	if err != nil {
		t.Fatalf("OpenKeyValue while the cluster has no quorum for 3s: %v", err)
	}
	if _, err := kv.Create(ctx, "k", []byte("v")); err != nil {
		t.Fatalf("first write: %v", err)
	}
}
