package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/snaprequest"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/services/loader/internal/lease"
	"github.com/redms/redms/services/loader/internal/park"
	"github.com/redms/redms/services/loader/internal/snapshot"
)

// TestBucketsTakeStreamReplicas: on a 3-node cluster with
// REDMS_STREAM_REPLICAS=3 the loader's lease, parked and snapshot request
// buckets have 3 replicas, so a lost node loses no lease and no request;
// before, they had 1 whatever the stream had.
func TestBucketsTakeStreamReplicas(t *testing.T) {
	_, js := testenv.StartNATSCluster(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := Config{ReplicaID: "r1", LeaseTTL: 15 * time.Second, StreamReplicas: 3}
	if _, _, err := openBuckets(ctx, js, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	// The snapshot request bucket is opened on the first request.
	tab := subject.Table{DB: "shop", Schema: "public", Name: "t"}
	if err := snapshot.New(js, cfg.ReplicaID, cfg.StreamReplicas).Request(ctx, tab, "test", "0/1", "0/1"); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{lease.Bucket, park.Bucket, snaprequest.RequestsBucket} {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bs, ok := st.(*jetstream.KeyValueBucketStatus)
		if !ok || bs.StreamInfo() == nil {
			t.Fatalf("bucket %s: status %T without stream info", b, st)
		}
		if r := bs.StreamInfo().Config.Replicas; r != 3 {
			t.Errorf("bucket %s has %d replicas, want 3", b, r)
		}
	}
}
