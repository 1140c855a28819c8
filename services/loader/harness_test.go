package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/proc"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// loaderBin is the redms-loader binary TestMain builds; service tests run it
// as a process.
var loaderBin string

func TestMain(m *testing.M) {
	var flags []string
	if raceEnabled {
		flags = []string{"-race"}
	}
	os.Exit(testenv.RunWithBinaries(m, testenv.Binary{Name: "redms-loader", Dir: ".", Flags: flags, Path: &loaderBin}))
}

const testStream = "REDMS_WAL"

// world is the servers one service test runs the loader against.
type world struct {
	natsURL string
	nc      *nats.Conn
	js      jetstream.JetStream
	pg      *testenv.Postgres
	whURL   string
	s3      *testenv.S3
	bucket  string

	mu   sync.Mutex
	lsn  uint64                    // last LSN handed out
	want map[string]map[int]string // table → id → v, the state the target must reach
	seqs map[string][]uint64       // table → stream sequences published
	xid  uint64
}

func newWorld(t testing.TB) *world {
	t.Helper()
	return newWorldOn(t, testenv.StartNATS(t).URL(), 1)
}

// newWorldOn is a world on the NATS server(s) at natsURL, whose stream
// has replicas replicas; its own connection goes to the first URL.
func newWorldOn(t testing.TB, natsURL string, replicas int) *world {
	t.Helper()
	w := &world{natsURL: natsURL, pg: testenv.StartPostgres(t), s3: testenv.StartS3(t),
		bucket: "redms-test", want: map[string]map[int]string{}, seqs: map[string][]uint64{}, lsn: 0x1000000, xid: 700}
	w.connect(t, natsURL)
	w.whURL = w.pg.CreateDatabase(t, "warehouse")
	w.s3.CreateBucket(t, w.bucket)
	cfg := jetstream.StreamConfig{
		Name: testStream, Subjects: []string{subject.Wildcard}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute, Replicas: replicas,
	}
	// A cluster just started may not see all its peers yet: "no suitable
	// peers for placement" (10005) is waited out (a CI run failed on it).
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := w.js.CreateStream(context.Background(), cfg)
		var api *jetstream.APIError
		if err == nil {
			return w
		}
		if !errors.As(err, &api) || api.ErrorCode != 10005 || time.Now().After(deadline) {
			t.Fatalf("create stream: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connect makes the world's own connection go to the first server of url.
func (w *world) connect(t testing.TB, url string) {
	t.Helper()
	w.nc, w.js = testenv.ConnectNATS(t, url, nats.DontRandomize())
}

func tableRef(name string) subject.Table {
	return subject.Table{DB: "shop", Schema: "public", Name: name}
}

// change is one synthetic change: kind INSERT, UPDATE or DELETE of row id.
type change struct {
	kind string
	id   int
	v    string
}

func (c change) body(table string) string {
	if c.kind == "DELETE" {
		return fmt.Sprintf("table public.%s: DELETE: id[integer]:%d", table, c.id)
	}
	return fmt.Sprintf("table public.%s: %s: id[integer]:%d v[text]:'%s'", table, c.kind, c.id, c.v)
}

// publish sends the changes of one transaction on table's subject and
// records the state the target must reach.
func (w *world) publish(t testing.TB, table string, changes ...change) {
	t.Helper()
	bodies := make([]string, len(changes))
	for i, c := range changes {
		bodies[i] = c.body(table)
	}
	w.publishRaw(t, table, bodies...)
	w.mu.Lock()
	defer w.mu.Unlock()
	rows := w.want[table]
	if rows == nil {
		rows = map[int]string{}
		w.want[table] = rows
	}
	for _, c := range changes {
		if c.kind == "DELETE" {
			delete(rows, c.id)
		} else {
			rows[c.id] = c.v
		}
	}
}

// publishRaw sends bodies as one transaction's changes, unchecked.
func (w *world) publishRaw(t testing.TB, table string, bodies ...string) []uint64 {
	t.Helper()
	w.mu.Lock()
	first := w.lsn + 8
	w.lsn += uint64(8 * (len(bodies) + 1))
	commit := w.lsn
	w.xid++
	xid := w.xid
	w.mu.Unlock()
	subj := subject.Subject(tableRef(table))
	var seqs []uint64
	for i, b := range bodies {
		lsn := first + uint64(8*i)
		meta := walheader.Meta{LSN: fmtLSN(lsn), CommitLSN: fmtLSN(commit), Xid: xid, CommitTime: time.Now().UTC(),
			Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey}
		ack, err := w.js.PublishMsg(context.Background(), &nats.Msg{Subject: subj, Header: meta.Header("shop"), Data: []byte(b)})
		if err != nil {
			t.Fatalf("publish to %s: %v", subj, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	w.mu.Lock()
	w.seqs[table] = append(w.seqs[table], seqs...)
	w.mu.Unlock()
	return seqs
}

func fmtLSN(l uint64) string { return fmt.Sprintf("%X/%X", l>>32, uint32(l)) }

// target reads public.<table> of the warehouse; a missing table is empty.
func (w *world) target(t testing.TB, table string) map[int]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.whURL)
	if err != nil {
		t.Fatalf("connect to warehouse: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT id, v FROM public."+pgx.Identifier{table}.Sanitize())
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return map[int]string{}
		}
		t.Fatalf("read target %s: %v", table, err)
	}
	got := map[int]string{}
	for rows.Next() {
		var id int
		var v *string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatalf("scan target %s: %v", table, err)
		}
		if v == nil {
			got[id] = "<NULL>"
		} else {
			got[id] = *v
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read target %s: %v", table, err)
	}
	return got
}

// complete reports whether the target of table holds exactly the state published.
func (w *world) complete(t testing.TB, table string) bool {
	t.Helper()
	w.mu.Lock()
	want := w.want[table]
	w.mu.Unlock()
	return fmt.Sprint(w.target(t, table)) == fmt.Sprint(want)
}

// backlog is the number of the table's messages still in the stream. A
// stream the server is too busy to describe (purging a million messages)
// counts as not drained: the callers poll.
func (w *world) backlog(t testing.TB, table string) uint64 {
	t.Helper()
	s, err := w.js.Stream(context.Background(), testStream)
	if err != nil {
		t.Logf("read stream: %v", err)
		return math.MaxUint64
	}
	subj := subject.Subject(tableRef(table))
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Logf("read stream: %v", err)
		return math.MaxUint64
	}
	return info.State.Subjects[subj]
}

// loaderProc is one running redms-loader.
type loaderProc struct {
	*testenv.Process
	metrics string // host:port
}

// env is the loader's environment against w; extra overrides.
func (w *world) env(t testing.TB, replica, metricsAddr string, extra map[string]string) []string {
	vars := map[string]string{
		"REDMS_NATS_URL":             w.natsURL,
		"REDMS_STREAM":               testStream,
		"REDMS_METRICS_ADDR":         metricsAddr,
		"REDMS_REPLICA_ID":           replica,
		"REDMS_WAREHOUSE_URL":        w.whURL,
		"REDMS_WAREHOUSE_DIALECT":    "postgres",
		"REDMS_S3_ENDPOINT":          w.s3.Endpoint(),
		"REDMS_S3_REGION":            w.s3.Region(),
		"REDMS_S3_BUCKET":            w.bucket,
		"REDMS_S3_ACCESS_KEY_ID":     w.s3.AccessKeyID(),
		"REDMS_S3_SECRET_ACCESS_KEY": w.s3.SecretAccessKey(),
		"REDMS_WINDOW_DURATION":      "500ms",
		"REDMS_LOG_LEVEL":            "info",
		"REDMS_SHUTDOWN_TIMEOUT":     "10s",
	}
	for k, v := range extra {
		vars[k] = v
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	return env
}

// start runs a loader replica until the test ends (then SIGKILL if needed).
func (w *world) start(t testing.TB, replica string, extra map[string]string) *loaderProc {
	t.Helper()
	metrics := testenv.FreeAddr(t)
	p := testenv.StartProcess(t, proc.Options{Name: "redms-loader " + replica, Path: loaderBin, Env: w.env(t, replica, metrics, extra)})
	return &loaderProc{Process: p, metrics: metrics}
}

// scrape returns the value of the series whose name and labels match
// exactly, e.g. `redms_loader_table_parked{table="public.t"}`.
func (p *loaderProc) scrape(series string) (float64, bool) {
	samples, err := testenv.Scrape(p.metrics)
	if err != nil {
		return 0, false
	}
	return samples.Value(series)
}
