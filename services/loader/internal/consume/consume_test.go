package consume

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/loader/internal/metrics"
	"github.com/redms/redms/services/loader/internal/park"
	"github.com/redms/redms/services/loader/internal/window"
)

const stream = "REDMS_WAL"

// recorder is an Applier that records windows and answers with decide.
type recorder struct {
	mu      sync.Mutex
	windows [][]uint64
	calls   int
	decide  func(w apply.Window, call int) error
}

var _ Applier = (*recorder)(nil)

func (r *recorder) Apply(_ context.Context, w apply.Window) (apply.Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.decide != nil {
		if err := r.decide(w, r.calls); err != nil {
			return apply.Result{}, err
		}
	}
	var seqs []uint64
	for _, m := range w.Msgs {
		seqs = append(seqs, m.Seq)
	}
	r.windows = append(r.windows, seqs)
	return apply.Result{Applied: true, Rows: map[string]int{"upsert": len(seqs)}, LastCommit: time.Now()}, nil
}

func (r *recorder) got() [][]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.windows)
}

type env struct {
	ns    *testenv.NATS
	nc    *nats.Conn
	js    jetstream.JetStream
	parks *park.Store
	m     *metrics.Loader
	table Table
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	n := testenv.StartNATS(t)
	nc, js := n.Connect(t)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{subject.Wildcard}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew,
	}); err != nil {
		t.Fatal(err)
	}
	parks, err := park.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	tab := subject.Table{DB: "shop", Schema: "public", Name: "orders"}
	return &env{ns: n, nc: nc, js: js, parks: parks, m: metrics.New(prometheus.NewRegistry()), table: Table{
		Ref: tab, Subject: subject.Subject(tab), Consumer: subject.ConsumerName(tab), Key: subject.KVKey(tab), Label: tab.String(),
	}}
}

// publish sends bodies as consecutive changes of the test table.
func (e *env) publish(t *testing.T, bodies ...string) {
	t.Helper()
	for i, b := range bodies {
		lsn := fmt.Sprintf("0/%X", 0x1000+i*16+int(time.Now().UnixNano()%16))
		meta := walheader.Meta{LSN: lsn, CommitLSN: lsn, Xid: 700, CommitTime: time.Now(), Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey}
		h := meta.Header("shop")
		h.Del(walheader.MsgID) // bodies may repeat in a test; let every publish count
		msg := &natsMsg{subject: e.table.Subject, header: h, data: []byte(b)}
		if _, err := e.js.PublishMsg(context.Background(), msg.nats()); err != nil {
			t.Fatal(err)
		}
	}
}

func insert(id int) string {
	return fmt.Sprintf("table public.orders: INSERT: id[integer]:%d note[text]:'n%d'", id, id)
}

func (e *env) run(t *testing.T, cfg Config, a Applier) (stop func()) {
	t.Helper()
	hard, cancelHard := context.WithCancel(context.Background())
	soft, cancelSoft := context.WithCancel(hard)
	r := NewRunner(e.table, cfg, Deps{JS: e.js, Applier: a, Parks: e.parks, Metrics: e.m, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	done := make(chan error, 1)
	go func() { done <- r.Run(hard, soft) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancelSoft()
			cancelHard()
			if err := <-done; err != nil {
				t.Errorf("Run = %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func config(l window.Limits) Config {
	return Config{Stream: stream, Replica: "test", AckWait: time.Hour, Limits: l, StallAlarm: time.Minute,
		Backoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Idle: 100 * time.Millisecond, PullBatch: 100, AckMode: AckPurge}
}

// eventually waits up to 20s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, what, cond)
}

func (e *env) streamMsgs(t *testing.T) uint64 {
	t.Helper()
	s, err := e.js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestWindowClosesByTimerWithoutMoreData(t *testing.T) {
	e := setup(t)
	rec := &recorder{}
	e.publish(t, insert(1), insert(2), insert(3))
	e.run(t, config(window.Limits{Duration: 300 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), rec)
	eventually(t, "the window to close by age", func() bool { return len(rec.got()) == 1 })
	if got := fmt.Sprint(rec.got()); got != "[[1 2 3]]" {
		t.Fatalf("windows = %s, want [[1 2 3]]", got)
	}
	eventually(t, "the window's messages to be acked", func() bool { return e.streamMsgs(t) == 0 })
	if v := testutil.ToFloat64(e.m.WindowsApplied.WithLabelValues("public.orders")); v != 1 {
		t.Fatalf("windows applied = %v", v)
	}
}

func TestWindowClosesOnRecords(t *testing.T) {
	e := setup(t)
	rec := &recorder{}
	var bodies []string
	for i := range 10 {
		bodies = append(bodies, insert(i))
	}
	e.publish(t, bodies...)
	cfg := config(window.Limits{Duration: time.Hour, Bytes: 1 << 20, Records: 4})
	cfg.AckMode = AckEach // the other tests purge
	e.run(t, cfg, rec)
	eventually(t, "two full windows", func() bool { return len(rec.got()) == 2 })
	if got := fmt.Sprint(rec.got()); got != "[[1 2 3 4] [5 6 7 8]]" {
		t.Fatalf("windows = %s", got)
	}
	// The last two stay in an open window, un-acked.
	eventually(t, "acks of the full windows", func() bool { return e.streamMsgs(t) == 2 })
	// The open window holds changes committed before the last applied one:
	// the lag counts from that one.
	eventually(t, "lag reported", func() bool { return testutil.ToFloat64(e.m.Lag.WithLabelValues("public.orders")) > 0 })
}

func TestWindowClosesOnBytes(t *testing.T) {
	e := setup(t)
	rec := &recorder{}
	body := strings.Repeat("x", 1000)
	e.publish(t, body, body, body, body, body, body, body)
	// Headers and what the window keeps of a change (apply.Footprint) add
	// 400-600 bytes, so three messages pass 3800 bytes and two do not.
	e.run(t, config(window.Limits{Duration: time.Hour, Bytes: 3800, Records: 1000}), rec)
	eventually(t, "two windows by bytes", func() bool { return len(rec.got()) == 2 })
	if got := fmt.Sprint(rec.got()); got != "[[1 2 3] [4 5 6]]" {
		t.Fatalf("windows = %s", got)
	}
}

func TestParkKeepsMessagesUntilResume(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	rec := &recorder{decide: func(w apply.Window, _ int) error {
		for _, m := range w.Msgs {
			if m.RecordErr != nil {
				return &apply.ParkError{Table: "public.orders", FirstLSN: "0/1", LastLSN: "0/2", FirstSeq: w.Msgs[0].Seq,
					LastSeq: w.Msgs[len(w.Msgs)-1].Seq, Reason: "parse record", Err: errors.New("no table prefix")}
			}
		}
		return nil
	}}
	e.publish(t, insert(1), insert(2), "garbage", insert(4))
	e.run(t, config(window.Limits{Duration: 200 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), rec)
	var parked park.Record
	eventually(t, "the table to be parked", func() bool {
		r, ok, err := e.parks.Get(ctx, e.table.Key)
		parked = r
		return err == nil && ok
	})
	if parked.Table != "public.orders" || parked.FirstSeq != 1 || parked.LastSeq != 4 || !strings.Contains(parked.Reason, "parse record") || parked.Replica != "test" {
		t.Fatalf("parked record = %+v", parked)
	}
	if v := testutil.ToFloat64(e.m.Parked.WithLabelValues("public.orders")); v != 1 {
		t.Fatalf("parked gauge = %v", v)
	}
	if n := e.streamMsgs(t); n != 4 {
		t.Fatalf("stream holds %d messages while parked, want all 4 un-acked", n)
	}
	if len(rec.got()) != 0 {
		t.Fatalf("windows applied while parked: %v", rec.got())
	}

	// The operator removes the bad message and resumes.
	s, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.parks.Resume(ctx, e.table.Key); err != nil || !ok {
		t.Fatalf("Resume = %v, %v", ok, err)
	}
	eventually(t, "the parked messages to be applied", func() bool { return len(rec.got()) == 1 })
	if got := fmt.Sprint(rec.got()); got != "[[1 2 4]]" {
		t.Fatalf("windows after resume = %s", got)
	}
	eventually(t, "acks after resume", func() bool { return e.streamMsgs(t) == 0 })
	if v := testutil.ToFloat64(e.m.Parked.WithLabelValues("public.orders")); v != 0 {
		t.Fatalf("parked gauge after resume = %v", v)
	}
}

func TestTransientErrorsRetry(t *testing.T) {
	e := setup(t)
	release := make(chan struct{})
	flaky := &recorder{decide: func(_ apply.Window, call int) error {
		select {
		case <-release:
			return nil
		default:
			return errors.New("connection reset")
		}
	}}
	e.publish(t, insert(1))
	e.run(t, config(window.Limits{Duration: 100 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), flaky)
	eventually(t, "the retrying gauge", func() bool {
		return testutil.ToFloat64(e.m.Retrying.WithLabelValues("public.orders")) > 0 && testutil.ToFloat64(e.m.ApplyErrors.WithLabelValues("public.orders")) >= 3
	})
	close(release)
	eventually(t, "the retried window", func() bool { return len(flaky.got()) == 1 })
	eventually(t, "the retrying gauge back at 0", func() bool { return testutil.ToFloat64(e.m.Retrying.WithLabelValues("public.orders")) == 0 })
	if _, parked, err := e.parks.Get(context.Background(), e.table.Key); err != nil || parked {
		t.Fatalf("parked by transient errors (%v)", err)
	}
}

func TestNewOwnerRedeliversAtOnce(t *testing.T) {
	e := setup(t)
	e.publish(t, insert(1), insert(2))
	first := &recorder{}
	stop := e.run(t, config(window.Limits{Duration: time.Hour, Bytes: 1 << 20, Records: 1000}), first)
	eventually(t, "delivery to the first owner", func() bool {
		c, err := e.js.Consumer(context.Background(), stream, e.table.Consumer)
		return err == nil && c.CachedInfo().NumAckPending == 2
	})
	stop() // abandons the open window un-acked; the ack wait is an hour

	second := &recorder{}
	e.run(t, config(window.Limits{Duration: 100 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), second)
	eventually(t, "the second owner to apply the abandoned window", func() bool { return len(second.got()) == 1 })
	if got := fmt.Sprint(second.got()); got != "[[1 2]]" || len(first.got()) != 0 {
		t.Fatalf("first applied %v, second %s", first.got(), got)
	}
}

func TestReplacesAConsumerWithOldSettings(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	old := ConsumerConfig(e.table, config(window.Limits{Duration: time.Hour, Bytes: 1, Records: 1}))
	old.MemoryStorage = false
	old.AckWait = time.Minute
	if _, err := e.js.CreateOrUpdateConsumer(ctx, stream, old); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	e.publish(t, insert(1))
	e.run(t, config(window.Limits{Duration: 100 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), rec)
	eventually(t, "the window applied", func() bool { return len(rec.got()) == 1 })
	c, err := e.js.Consumer(ctx, stream, e.table.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; !cfg.MemoryStorage || cfg.AckWait != time.Hour {
		t.Fatalf("consumer settings not replaced: memory %v, ack wait %v", cfg.MemoryStorage, cfg.AckWait)
	}
}

// A JetStream restart drops the memory-stored consumer under a running
// runner; the runner creates it again and every message, published before
// or after the restart, reaches the applier.
func TestConsumerLostInRestartIsRecreated(t *testing.T) {
	e := setup(t)
	rec := &recorder{}
	e.publish(t, insert(1), insert(2))
	e.run(t, config(window.Limits{Duration: 200 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), rec)
	eventually(t, "the first window", func() bool { return len(rec.got()) == 1 })
	e.publish(t, insert(3)) // likely still in an open window when the server stops

	e.ns.Restart(t)
	eventually(t, "the client to reconnect", e.nc.IsConnected)
	e.publish(t, insert(4), insert(5))

	applied := func() map[uint64]bool {
		seen := map[uint64]bool{}
		for _, w := range rec.got() {
			for _, seq := range w {
				seen[seq] = true
			}
		}
		return seen
	}
	eventually(t, "every message applied", func() bool { return len(applied()) == 5 })
	for seq := uint64(1); seq <= 5; seq++ {
		if !applied()[seq] {
			t.Fatalf("windows %v miss seq %d", rec.got(), seq)
		}
	}
	eventually(t, "the stream to empty", func() bool { return e.streamMsgs(t) == 0 })
	if _, err := e.js.Consumer(context.Background(), stream, e.table.Consumer); err != nil {
		t.Fatalf("consumer not recreated: %v", err)
	}
}

// While the consumer is missing the backlog gauge counts the table's
// messages left in the stream instead of reading 0.
func TestBacklogWithoutConsumerCountsTheStream(t *testing.T) {
	e := setup(t)
	e.publish(t, insert(1), insert(2), insert(3))
	r := NewRunner(e.table, config(window.Limits{Duration: time.Hour, Bytes: 1 << 20, Records: 1000}),
		Deps{JS: e.js, Applier: &recorder{}, Parks: e.parks, Metrics: e.m, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ctx := context.Background()
	cons, err := r.consumer(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.js.DeleteConsumer(ctx, stream, e.table.Consumer); err != nil {
		t.Fatal(err)
	}
	if missing, _ := r.report(ctx, cons); !missing {
		t.Fatal("report did not notice the missing consumer")
	}
	if v := testutil.ToFloat64(e.m.Backlog.WithLabelValues("public.orders")); v != 3 {
		t.Fatalf("backlog = %v, want the 3 messages in the stream", v)
	}
}

// Contention is not bad input (issue 10 §6): a serialization conflict that
// lasts longer than any retry count is retried until it passes, and the
// table never parks.
func TestContentionIsRetriedWithoutParking(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	conflict := &pgconn.PgError{Code: "40001", Message: "1023", Detail: "Serializable isolation violation on table - orders"}
	busy := &recorder{decide: func(_ apply.Window, call int) error {
		if call <= 8 {
			return fmt.Errorf("advance applied position: %w", conflict)
		}
		return nil
	}}
	e.publish(t, insert(1), insert(2))
	e.run(t, config(window.Limits{Duration: 100 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), busy)
	eventually(t, "the window applied once the conflict is gone", func() bool {
		if rec, parked, _ := e.parks.Get(ctx, e.table.Key); parked {
			t.Fatalf("table parked by contention: %s", rec.Reason)
		}
		return len(busy.got()) == 1
	})
	eventually(t, "the window removed from the stream", func() bool { return e.streamMsgs(t) == 0 })
}

// Another process pulls from the table's consumer (an owner paused past its
// lease, whose pull request outlived it): the server hands it some of the
// messages and the runner the rest. The runner must not remove what the
// other received: every message reaches the applier and the stream ends
// empty only then.
func TestSharedConsumerLosesNothing(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	cfg := config(window.Limits{Duration: 200 * time.Millisecond, Bytes: 1 << 20, Records: 1000})
	cons, err := e.js.CreateOrUpdateConsumer(ctx, stream, ConsumerConfig(e.table, cfg))
	if err != nil {
		t.Fatal(err)
	}
	stale := make(chan []uint64, 1)
	go func() {
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
		var seqs []uint64
		if err == nil {
			for m := range batch.Messages() {
				md, _ := m.Metadata()
				seqs = append(seqs, md.Sequence.Stream) // never acked
			}
		}
		stale <- seqs
	}()
	eventually(t, "the other process's pull request", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting == 1
	})
	rec := &recorder{}
	e.run(t, cfg, rec)
	eventually(t, "the runner's pull request", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumWaiting == 2
	})
	e.publish(t, insert(1), insert(2), insert(3), insert(4), insert(5))
	if got := <-stale; len(got) == 0 {
		t.Fatal("the other process received nothing")
	}
	applied := func() string {
		var all []uint64
		for _, w := range rec.got() {
			all = append(all, w...)
		}
		slices.Sort(all)
		return fmt.Sprint(slices.Compact(all))
	}
	for deadline := time.Now().Add(20 * time.Second); applied() != "[1 2 3 4 5]"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("applied %s, want [1 2 3 4 5]; the stream holds %d messages", applied(), e.streamMsgs(t))
		}
	}
	eventually(t, "the stream to empty", func() bool { return e.streamMsgs(t) == 0 })
}

// holder is an Applier that holds every change back (as when they wait for
// an earlier change stored later) until a window holds the message of
// sequence missing, then applies the whole window.
type holder struct {
	mu      sync.Mutex
	missing uint64
	windows [][]uint64
}

func (h *holder) Apply(_ context.Context, w apply.Window) (apply.Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var seqs []uint64
	found := false
	for _, m := range w.Msgs {
		seqs = append(seqs, m.Seq)
		found = found || m.Seq == h.missing
	}
	h.windows = append(h.windows, seqs)
	if !found {
		held := make([]int, len(w.Msgs))
		for i := range held {
			held[i] = i
		}
		return apply.Result{Held: held}, nil
	}
	return apply.Result{Applied: true, Changes: len(seqs)}, nil
}

func (h *holder) last() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.windows) == 0 {
		return nil
	}
	return h.windows[len(h.windows)-1]
}

// Held changes are carried into the next window, in arrival order, and a
// pile of them larger than two windows does not stop the consumer from
// delivering the change they wait for.
func TestHeldChangesAreCarried(t *testing.T) {
	e := setup(t)
	const n = 450
	h := &holder{missing: n}
	var bodies []string
	for i := 1; i < n; i++ {
		bodies = append(bodies, insert(i))
	}
	e.publish(t, bodies...)
	e.run(t, config(window.Limits{Duration: 50 * time.Millisecond, Bytes: 1 << 20, Records: 100}), h)
	eventually(t, "every message delivered and held", func() bool { return len(h.last()) == n-1 })
	if e.streamMsgs(t) != n-1 {
		t.Fatalf("held messages removed from the stream: %d left", e.streamMsgs(t))
	}
	eventually(t, "the holding gauge", func() bool { return testutil.ToFloat64(e.m.Holding.WithLabelValues("public.orders")) > 0 })
	e.publish(t, insert(n))
	eventually(t, "the window with the missing change", func() bool { return len(h.last()) == n })
	got := h.last()
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("window %v: held messages not carried in arrival order", got)
		}
	}
	eventually(t, "the stream to empty", func() bool { return e.streamMsgs(t) == 0 })
	eventually(t, "the holding gauge back at 0", func() bool { return testutil.ToFloat64(e.m.Holding.WithLabelValues("public.orders")) == 0 })
}

// TestStalledPullIsRecreated: a consumer that holds messages but delivers
// none while the runner waits (seen after a cluster node rejoined: the
// marker of an e2e run sat pending for 90 s) is created again and its
// messages applied. A paused consumer stands in for the stall here.
func TestStalledPullIsRecreated(t *testing.T) {
	e := setup(t)
	rec := &recorder{}
	e.publish(t, insert(1))
	e.run(t, config(window.Limits{Duration: 100 * time.Millisecond, Bytes: 1 << 20, Records: 1000}), rec)
	eventually(t, "the first window", func() bool { return len(rec.got()) == 1 })
	ctx := context.Background()
	if _, err := e.js.PauseConsumer(ctx, stream, e.table.Consumer, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	e.publish(t, insert(2))
	eventually(t, "the message published while the consumer delivered nothing applied", func() bool { return len(rec.got()) == 2 })
	if v := testutil.ToFloat64(e.m.PullStalls.WithLabelValues("public.orders")); v != 1 {
		t.Fatalf("pull stalls = %v, want 1", v)
	}
	eventually(t, "the stream to empty", func() bool { return e.streamMsgs(t) == 0 })
}
