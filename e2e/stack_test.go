package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/testenv"
)

const (
	sourceDB    = "shop"
	warehouseDB = "warehouse"
	bucket      = "redms-e2e"
	streamName  = "REDMS_WAL"
	markerTable = "e2e_marker"
)

// stack is the servers and service processes of one end-to-end test.
type stack struct {
	t       *testing.T
	dialect string
	logDir  string

	pg   *testenv.Postgres
	nats *testenv.NATS
	js   jetstream.JetStream
	s3   *testenv.S3
	s3c  *s3.Client

	source    *pgxpool.Pool
	warehouse *pgxpool.Pool
	// loaderURL is what the loaders dial: the warehouse database, or the
	// Redshift emulator in front of it.
	loaderURL string

	capture *proc
	loaders []*proc
	// loaderEnv is added to every loader incarnation's environment.
	loaderEnv []string
	rsemu     *proc
}

// logDir holds the processes' logs and the workload trace: REDMS_E2E_LOGDIR,
// else a temp dir removed when the test passes and kept when it fails.
func logDir(t *testing.T) string {
	if d := os.Getenv("REDMS_E2E_LOGDIR"); d != "" {
		dir := filepath.Join(d, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("make log dir: %v", err)
		}
		return dir
	}
	dir, err := os.MkdirTemp("", "redms-e2e-"+t.Name()+"-")
	if err != nil {
		t.Fatalf("make log dir: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("service logs and the workload trace are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

func connect(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newStack starts Postgres (source and warehouse databases), NATS, S3 and,
// for the redshift dialect, redms-rsemu. Services are started separately.
func newStack(t *testing.T, dialect string) *stack {
	t.Helper()
	s := &stack{t: t, dialect: dialect, logDir: logDir(t)}
	// Resolve binaries first, so a missing service fails before servers start.
	binary(t, "capture")
	binary(t, "loader")
	if dialect == "redshift" {
		binary(t, "rsemu")
	}
	s.pg = testenv.StartPostgres(t)
	s.source = connect(t, s.pg.CreateDatabase(t, sourceDB))
	warehouseURL := s.pg.CreateDatabase(t, warehouseDB)
	s.warehouse = connect(t, warehouseURL)
	s.loaderURL = warehouseURL
	s.nats = testenv.StartNATS(t)
	_, s.js = s.nats.Connect(t)
	s.s3 = testenv.StartS3(t)
	s.s3.CreateBucket(t, bucket)
	s.s3c = s.s3.Client(t)
	t.Logf("logs of the service processes: %s", s.logDir)
	t.Cleanup(func() {
		for _, p := range s.procs() {
			p.kill(t)
		}
		if t.Failed() {
			for _, p := range s.procs() {
				t.Logf("last lines of %s (%s):\n%s", p.name, p.logPath, p.tail(30))
			}
		}
	})
	if dialect == "redshift" {
		s.startRsemu(t, warehouseURL)
	}
	return s
}

func (s *stack) procs() []*proc {
	var ps []*proc
	if s.capture != nil {
		ps = append(ps, s.capture)
	}
	ps = append(ps, s.loaders...)
	if s.rsemu != nil {
		ps = append(ps, s.rsemu)
	}
	return ps
}

func (s *stack) startRsemu(t *testing.T, warehouseURL string) {
	t.Helper()
	listen := testenv.FreeAddr(t)
	s.rsemu = &proc{
		name: "rsemu",
		bin:  binary(t, "rsemu"),
		args: []string{
			"--listen", listen,
			"--postgres", warehouseURL,
			"--s3-endpoint", s.s3.Endpoint(),
			"--s3-region", s.s3.Region(),
			"--s3-access-key-id", s.s3.AccessKeyID(),
			"--s3-secret-access-key", s.s3.SecretAccessKey(),
		},
		logPath: filepath.Join(s.logDir, "rsemu.log"),
	}
	s.rsemu.start(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(context.Background(), "postgres://postgres@"+listen+"/"+warehouseDB+"?sslmode=disable")
		if err == nil {
			conn.Close(context.Background())
			break
		}
		if !s.rsemu.running() || time.Now().After(deadline) {
			t.Fatalf("redms-rsemu did not accept a connection on %s: %v\n%s", listen, err, s.rsemu.tail(40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.loaderURL = "postgres://postgres@" + listen + "/" + warehouseDB + "?sslmode=disable"
}

// startCapture starts redms-capture on slot with the given extra env.
func (s *stack) startCapture(t *testing.T, slot string, extra ...string) {
	t.Helper()
	if s.capture == nil {
		s.capture = &proc{
			name:        "capture",
			bin:         binary(t, "capture"),
			logPath:     filepath.Join(s.logDir, "capture.log"),
			metricsAddr: testenv.FreeAddr(t),
		}
	}
	s.capture.env = append([]string{
		"REDMS_NATS_URL=" + s.nats.URL(),
		"REDMS_SOURCE_URL=" + s.pg.URL(sourceDB),
		"REDMS_SLOT=" + slot,
		"REDMS_DATABASE=" + sourceDB,
		"REDMS_METRICS_ADDR=" + s.capture.metricsAddr,
		"REDMS_CONFIRM_EVERY=200ms",
		"REDMS_SHUTDOWN_TIMEOUT=10s",
	}, extra...)
	s.capture.start(t)
	s.capture.waitReady(t, 60*time.Second)
}

// startLoaders starts n loader replicas.
func (s *stack) startLoaders(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		p := &proc{
			name:        fmt.Sprintf("loader-%d", i),
			bin:         binary(t, "loader"),
			logPath:     filepath.Join(s.logDir, fmt.Sprintf("loader-%d.log", i)),
			metricsAddr: testenv.FreeAddr(t),
		}
		s.loaders = append(s.loaders, p)
		s.startLoader(t, p)
	}
	for _, p := range s.loaders {
		p.waitReady(t, 60*time.Second)
	}
}

// startLoader starts an incarnation of p; each gets a new replica id, as a
// restarted process on a host would (hostname-pid).
func (s *stack) startLoader(t testing.TB, p *proc, extra ...string) {
	t.Helper()
	p.env = append([]string{
		"REDMS_NATS_URL=" + s.nats.URL(),
		fmt.Sprintf("REDMS_REPLICA_ID=%s-%d", p.name, p.starts+1),
		"REDMS_WAREHOUSE_URL=" + s.loaderURL,
		"REDMS_WAREHOUSE_DIALECT=" + s.dialect,
		"REDMS_WINDOW_DURATION=2s",
		"REDMS_LEASE_TTL=3s",
		"REDMS_RETRY_BACKOFF=200ms",
		"REDMS_SHUTDOWN_TIMEOUT=10s",
		"REDMS_S3_ENDPOINT=" + s.s3.Endpoint(),
		"REDMS_S3_REGION=" + s.s3.Region(),
		"REDMS_S3_BUCKET=" + bucket,
		"REDMS_S3_ACCESS_KEY_ID=" + s.s3.AccessKeyID(),
		"REDMS_S3_SECRET_ACCESS_KEY=" + s.s3.SecretAccessKey(),
		"REDMS_METRICS_ADDR=" + p.metricsAddr,
	}, s.loaderEnv...)
	p.env = append(p.env, extra...)
	p.start(t)
}

// stagedObjects counts the objects in the staging bucket under prefix.
func (s *stack) stagedObjects(ctx context.Context, prefix string) (int, error) {
	out, err := s.s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	if err != nil {
		return 0, fmt.Errorf("list staged objects: %w", err)
	}
	return int(aws.ToInt32(out.KeyCount)), nil
}

// createMarker creates the table whose last row tells that everything the
// workload wrote before it has gone through.
func (s *stack) createMarker(t *testing.T) {
	t.Helper()
	s.pg.Exec(t, sourceDB, "CREATE TABLE "+markerTable+" (id integer PRIMARY KEY, note text)")
}

// writeMarker commits the marker row and returns an LSN inside its
// transaction: once the slot's confirmed_flush_lsn is past it, capture has
// had everything before the marker acknowledged by JetStream.
func (s *stack) writeMarker(t *testing.T, id int) string {
	t.Helper()
	ctx := context.Background()
	var lsn string
	err := pgx.BeginFunc(ctx, s.source, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO "+markerTable+" VALUES ($1, 'end of workload')", id); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&lsn)
	})
	if err != nil {
		t.Fatalf("write marker: %v", err)
	}
	return lsn
}

// backlog is the state of the pipeline after the workload.
type backlog struct {
	slotConfirmed string
	slotCaughtUp  bool
	streamMsgs    uint64
	consumers     []string // name pending=N ack_pending=M, for those not drained
	parked        []string
}

func (b backlog) done() bool {
	return b.slotCaughtUp && b.streamMsgs == 0 && len(b.consumers) == 0
}

func (b backlog) String() string {
	return fmt.Sprintf("slot confirmed_flush_lsn=%s caught_up=%v; stream %s holds %d messages; consumers not drained: %v; parked tables: %v",
		b.slotConfirmed, b.slotCaughtUp, streamName, b.streamMsgs, b.consumers, b.parked)
}

func (s *stack) backlog(ctx context.Context, slot, markerLSN string) (backlog, error) {
	var b backlog
	err := s.source.QueryRow(ctx,
		"SELECT COALESCE(confirmed_flush_lsn::text, ''), COALESCE(confirmed_flush_lsn >= $2::pg_lsn, false) FROM pg_replication_slots WHERE slot_name = $1",
		slot, markerLSN).Scan(&b.slotConfirmed, &b.slotCaughtUp)
	if err != nil {
		return b, fmt.Errorf("read slot %s: %w", slot, err)
	}
	st, err := s.js.Stream(ctx, streamName)
	if err != nil {
		return b, fmt.Errorf("open stream: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter("redms.wal.>"))
	if err != nil {
		return b, fmt.Errorf("stream info: %w", err)
	}
	b.streamMsgs = info.State.Msgs
	consumed := map[string]bool{}
	lister := st.ListConsumers(ctx)
	for ci := range lister.Info() {
		consumed[ci.Config.FilterSubject] = true
		if ci.NumPending > 0 || ci.NumAckPending > 0 {
			b.consumers = append(b.consumers, fmt.Sprintf("%s pending=%d ack_pending=%d redelivered=%d",
				ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered))
		}
	}
	if err := lister.Err(); err != nil {
		return b, fmt.Errorf("list consumers: %w", err)
	}
	for subj, n := range info.State.Subjects {
		if !consumed[subj] {
			b.consumers = append(b.consumers, fmt.Sprintf("NO CONSUMER for %s holding %d messages", subj, n))
		}
	}
	sort.Strings(b.consumers)
	if kv, err := s.js.KeyValue(ctx, "REDMS_LOADER_PARKED"); err == nil {
		if keys, err := kv.Keys(ctx); err == nil {
			for _, k := range keys {
				if e, err := kv.Get(ctx, k); err == nil {
					b.parked = append(b.parked, k+"="+string(e.Value()))
				}
			}
		}
	}
	return b, nil
}

// waitCaughtUp waits until the slot is confirmed past markerLSN, the stream
// is empty (work-queue retention: acked messages are gone) and no consumer
// has pending or unacknowledged messages. It reports false (and fails the
// test, which goes on to compare) when that does not happen within timeout.
func (s *stack) waitCaughtUp(t *testing.T, slot, markerLSN string, timeout time.Duration) bool {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	var last backlog
	var lastErr error
	for time.Since(start) < timeout {
		for _, p := range s.procs() {
			if !p.running() {
				t.Errorf("%s is not running while waiting for the pipeline to catch up:\n%s", p.name, p.tail(30))
				s.restartDead(t)
			}
		}
		b, err := s.backlog(ctx, slot, markerLSN)
		last, lastErr = b, err
		if err == nil && b.done() {
			t.Logf("caught up %.1fs after the workload: %s", time.Since(start).Seconds(), b)
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range s.loaders {
		if m, err := p.metrics(); err == nil {
			var lines []string
			for k, v := range m {
				if strings.HasPrefix(k, "redms_loader_backlog_messages") || strings.HasPrefix(k, "redms_loader_table_parked") {
					lines = append(lines, fmt.Sprintf("%s %g", k, v))
				}
			}
			sort.Strings(lines)
			t.Logf("%s metrics:\n  %s", p.name, strings.Join(lines, "\n  "))
		}
		if errs := p.grep(10, `"level":"ERROR"`, "park"); len(errs) > 0 {
			t.Logf("%s errors and parks:\n  %s", p.name, strings.Join(errs, "\n  "))
		}
	}
	t.Errorf("pipeline did not catch up within %v after the workload: %s (last error: %v); comparing anyway", timeout, last, lastErr)
	return false
}

// restartDead restarts every loader that is not running.
func (s *stack) restartDead(t *testing.T) {
	for _, p := range s.loaders {
		if !p.running() {
			s.startLoader(t, p)
		}
	}
	if s.capture != nil && !s.capture.running() {
		s.capture.start(t)
	}
}

// errNoWaiter says no loader transaction waited on the lock in time.
var errNoWaiter = errors.New("no warehouse transaction waited on the lock")
