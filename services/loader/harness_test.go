package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// loaderBin is the redms-loader binary TestMain builds; service tests run it
// as a process.
var loaderBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "redms-loader-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, "make temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	loaderBin = filepath.Join(dir, "redms-loader")
	args := []string{"build", "-o", loaderBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build redms-loader for the service tests (needs the go tool on PATH):", err)
		return 1
	}
	return m.Run()
}

const testStream = "REDMS_WAL"

// world is the servers one service test runs the loader against.
type world struct {
	nats   *testenv.NATS
	nc     *nats.Conn
	js     jetstream.JetStream
	pg     *testenv.Postgres
	whURL  string
	s3     *testenv.S3
	bucket string

	mu   sync.Mutex
	lsn  uint64                    // last LSN handed out
	want map[string]map[int]string // table → id → v, the state the target must reach
	seqs map[string][]uint64       // table → stream sequences published
	xid  uint64
}

func newWorld(t testing.TB) *world {
	t.Helper()
	w := &world{nats: testenv.StartNATS(t), pg: testenv.StartPostgres(t), s3: testenv.StartS3(t),
		bucket: "redms-test", want: map[string]map[int]string{}, seqs: map[string][]uint64{}, lsn: 0x1000000, xid: 700}
	w.nc, w.js = w.nats.Connect(t)
	w.whURL = w.pg.CreateDatabase(t, "warehouse")
	w.s3.CreateBucket(t, w.bucket)
	if _, err := w.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: testStream, Subjects: []string{subject.Wildcard}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	return w
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

// backlog is the number of the table's messages still in the stream.
func (w *world) backlog(t testing.TB, table string) uint64 {
	t.Helper()
	s, err := w.js.Stream(context.Background(), testStream)
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	subj := subject.Subject(tableRef(table))
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatalf("read stream: %v", err)
	}
	return info.State.Subjects[subj]
}

// proc is one running redms-loader.
type proc struct {
	t       testing.TB
	cmd     *exec.Cmd
	logs    *lockedBuffer
	metrics string // host:port
	done    chan struct{}
	err     error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is the loader's environment against w; extra overrides.
func (w *world) env(t testing.TB, replica, metricsAddr string, extra map[string]string) []string {
	vars := map[string]string{
		"REDMS_NATS_URL":             w.nats.URL(),
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
func (w *world) start(t testing.TB, replica string, extra map[string]string) *proc {
	t.Helper()
	p := &proc{t: t, logs: &lockedBuffer{}, metrics: testenv.FreeAddr(t), done: make(chan struct{})}
	p.cmd = exec.Command(loaderBin)
	p.cmd.Env = w.env(t, replica, p.metrics, extra)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start redms-loader: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("redms-loader %s log:\n%s", replica, p.logs.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to die.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// scrape returns the value of the metric line whose name and labels match
// exactly, e.g. `redms_loader_table_parked{table="public.t"}`.
func (p *proc) scrape(series string) (float64, bool) {
	resp, err := http.Get("http://" + p.metrics + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			f, err := strconv.ParseFloat(val, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// eventually polls cond every 100ms until it holds or within passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitExit waits for the process to exit on its own.
func (p *proc) waitExit(within time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		var ee *exec.ExitError
		if errors.As(p.err, &ee) {
			return true, p.err
		}
		return true, p.err
	case <-time.After(within):
		return false, nil
	}
}
