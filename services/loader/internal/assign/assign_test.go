package assign

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/consume"
	"github.com/redms/redms/services/loader/internal/lease"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
	"github.com/redms/redms/services/loader/internal/window"
)

const stream = "REDMS_WAL"

// counter is an Applier that counts applied changes per table.
type counter struct {
	mu      sync.Mutex
	changes map[string]int
}

func (c *counter) Apply(_ context.Context, w apply.Window) (apply.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.changes[w.Table.String()] += len(w.Msgs)
	return apply.Result{Applied: true}, nil
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.changes {
		n += v
	}
	return n
}

type replica struct {
	coord  *Coordinator
	m      *metrics.Loader
	leases *lease.Store
	stop   context.CancelFunc
	done   chan error
}

func startReplica(t *testing.T, js jetstream.JetStream, id string, a consume.Applier) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	leases, err := lease.Open(ctx, js, id, time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	parks, err := park.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(prometheus.NewRegistry())
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := New(Config{Stream: stream, ShutdownTimeout: 5 * time.Second, Runner: consume.Config{
		Stream: stream, Replica: id, AckWait: time.Minute, Limits: window.Limits{Duration: 100 * time.Millisecond, Bytes: 1 << 20, Records: 1000},
		StallAlarm: time.Minute, Backoff: 10 * time.Millisecond, MaxBackoff: 10 * time.Millisecond, Idle: 200 * time.Millisecond, PullBatch: 100, AckMode: consume.AckPurge,
	}}, js, leases, parks, consume.Deps{JS: js, Applier: a, Parks: parks, Metrics: m, Log: log})
	r := &replica{coord: c, m: m, leases: leases, stop: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("Run of %s = %v", id, err)
		}
	})
	return r
}

func setup(t *testing.T, tables int) jetstream.JetStream {
	t.Helper()
	n := testenv.StartNATS(t)
	_, js := n.Connect(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{subject.Wildcard},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range tables {
		publish(t, js, fmt.Sprintf("t%d", i))
	}
	return js
}

func publish(t *testing.T, js jetstream.JetStream, table string) {
	t.Helper()
	ref := subject.Table{DB: "db", Schema: "public", Name: table}
	h := walheader.Meta{LSN: "0/1", CommitLSN: "0/1", Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey}.Header("db")
	h.Del(walheader.MsgID)
	if _, err := js.PublishMsg(context.Background(), &nats.Msg{Subject: subject.Subject(ref), Header: h,
		Data: []byte("table public." + table + ": INSERT: id[integer]:1")}); err != nil {
		t.Fatal(err)
	}
}

func TestReplicasSplitTablesAndHandOver(t *testing.T) {
	js := setup(t, 8)
	ca, cb := &counter{changes: map[string]int{}}, &counter{changes: map[string]int{}}
	a := startReplica(t, js, "a", ca)
	testenv.Eventually(t, 30*time.Second, "a to take every table", func() bool { return testutil.ToFloat64(a.m.OwnedTables) == 8 })
	b := startReplica(t, js, "b", cb)
	testenv.Eventually(t, 30*time.Second, "the tables to split", func() bool {
		na, nb := testutil.ToFloat64(a.m.OwnedTables), testutil.ToFloat64(b.m.OwnedTables)
		return na > 0 && nb > 0 && na+nb == 8
	})
	testenv.Eventually(t, 30*time.Second, "every table applied once", func() bool { return ca.total()+cb.total() == 8 })
	// Stopping b hands its tables back to a.
	b.stop()
	if err := <-b.done; err != nil {
		t.Fatalf("b stopped with %v", err)
	}
	b.done <- nil // for the cleanup
	testenv.Eventually(t, 30*time.Second, "a to own every table again", func() bool { return testutil.ToFloat64(a.m.OwnedTables) == 8 })
	for i := range 8 {
		publish(t, js, fmt.Sprintf("t%d", i))
	}
	testenv.Eventually(t, 30*time.Second, "a to apply the new changes", func() bool { return ca.total()+cb.total() == 16 })
}

func TestLostLeaseStopsTheTable(t *testing.T) {
	js := setup(t, 1)
	a := startReplica(t, js, "a", &counter{changes: map[string]int{}})
	testenv.Eventually(t, 30*time.Second, "a to take the table", func() bool { return testutil.ToFloat64(a.m.OwnedTables) == 1 })
	key := subject.KVKey(subject.Table{DB: "db", Schema: "public", Name: "t0"})
	kv, err := js.KeyValue(context.Background(), lease.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	// Another replica takes the lease behind a's back and keeps it.
	if _, err := kv.Put(context.Background(), key, []byte("thief")); err != nil {
		t.Fatal(err)
	}
	thief, stopThief := context.WithCancel(context.Background())
	defer stopThief()
	go func() {
		for {
			select {
			case <-thief.Done():
				return
			case <-time.After(200 * time.Millisecond):
				_, _ = kv.Put(thief, key, []byte("thief"))
			}
		}
	}()
	testenv.Eventually(t, 30*time.Second, "a to notice", func() bool { return testutil.ToFloat64(a.m.LeasesLost) == 1 })
	testenv.Eventually(t, 30*time.Second, "a to stop the table", func() bool { return testutil.ToFloat64(a.m.OwnedTables) == 0 })
	if owner, err := a.leases.Owner(context.Background(), key); err != nil || owner != "thief" {
		t.Fatalf("owner = %q, %v; a must not release a lease it lost", owner, err)
	}
}
