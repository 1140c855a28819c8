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

	"github.com/redms/redms/pkg/testinfra/stackenv"
	"github.com/redms/redms/pkg/testinfra/testenv"
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
	t       testing.TB
	dialect string
	logDir  string

	pg      *testenv.Postgres
	nats    *testenv.NATS        // one server, or
	cluster *testenv.NATSCluster // a 3-node cluster (newClusterStack)
	js      jetstream.JetStream
	s3      *testenv.S3
	s3c     *s3.Client

	source    *pgxpool.Pool
	warehouse *pgxpool.Pool
	// loaderURL is what the loaders dial: the warehouse database, or the
	// Redshift emulator in front of it.
	loaderURL string

	capture *service
	standby *service // a second capture on the slot (cluster runs)
	loaders []*service
	// loaderEnv is added to every loader incarnation's environment.
	loaderEnv []string
	rsemu     *service
	// links, when set, changes where the services dial (the soak puts
	// proxies between them and the servers).
	links func(stackenv.Stack) stackenv.Stack
}

// logDir holds the processes' logs and the workload trace: REDMS_E2E_LOGDIR,
// else a temp dir removed when the test passes and kept when it fails.
func logDir(t testing.TB) string {
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

// newStack starts Postgres (source and warehouse databases), NATS, S3 and,
// for the redshift dialect, redms-rsemu (with rsemuArgs added, e.g.
// --isolation serializable). Services are started separately.
func newStack(t testing.TB, dialect string, rsemuArgs ...string) *stack {
	t.Helper()
	return newStackOn(t, dialect, false, rsemuArgs...)
}

// newStackOn is newStack on one NATS server, or on a 3-node cluster when
// cluster is set (the services then get REDMS_STREAM_REPLICAS=3).
func newStackOn(t testing.TB, dialect string, cluster bool, rsemuArgs ...string) *stack {
	t.Helper()
	s := &stack{t: t, dialect: dialect, logDir: logDir(t)}
	// Resolve binaries first, so a missing service fails before servers start.
	binary(t, "capture")
	binary(t, "loader")
	if dialect == "redshift" {
		binary(t, "rsemu")
	}
	s.pg = testenv.StartPostgres(t)
	s.source = testenv.Pool(t, s.pg.CreateDatabase(t, sourceDB))
	warehouseURL := s.pg.CreateDatabase(t, warehouseDB)
	s.warehouse = testenv.Pool(t, warehouseURL)
	s.loaderURL = warehouseURL
	if cluster {
		s.cluster = testenv.StartNATSCluster(t)
		_, s.js = s.cluster.Connect(t)
		s.loaderEnv = append(s.loaderEnv, "REDMS_STREAM_REPLICAS=3")
	} else {
		s.nats = testenv.StartNATS(t)
		_, s.js = s.nats.Connect(t)
	}
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
		s.startRsemu(t, warehouseURL, rsemuArgs...)
	}
	return s
}

func (s *stack) procs() []*service {
	var ps []*service
	if s.capture != nil {
		ps = append(ps, s.capture)
	}
	if s.standby != nil {
		ps = append(ps, s.standby)
	}
	ps = append(ps, s.loaders...)
	if s.rsemu != nil {
		ps = append(ps, s.rsemu)
	}
	return ps
}

func (s *stack) startRsemu(t testing.TB, warehouseURL string, extra ...string) {
	t.Helper()
	listen := testenv.FreeAddr(t)
	s.rsemu = &service{
		name:    "rsemu",
		bin:     binary(t, "rsemu"),
		args:    append(s.local().RsemuArgs(listen, warehouseURL), extra...),
		env:     stackenv.Base(),
		logPath: filepath.Join(s.logDir, "rsemu.log"),
	}
	s.rsemu.start(t)
	url := stackenv.RsemuURL(listen, warehouseDB)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.rsemu.current().WaitFor(ctx, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		return conn.Close(ctx)
	}); err != nil {
		t.Fatalf("redms-rsemu did not accept a connection on %s: %v\n%s", listen, err, s.rsemu.tail(40))
	}
	s.loaderURL = url
}

// local is where the services of this test's stack find each other.
func (s *stack) local() stackenv.Stack {
	st := stackenv.Stack{
		SourceURL: s.pg.URL(sourceDB), NATSURL: s.natsURL(), Stream: streamName,
		WarehouseURL: s.loaderURL, Dialect: s.dialect, Bucket: bucket,
		S3: stackenv.S3{Endpoint: s.s3.Endpoint(), Region: s.s3.Region(), AccessKeyID: s.s3.AccessKeyID(), SecretAccessKey: s.s3.SecretAccessKey()},
	}
	if s.links != nil {
		st = s.links(st)
	}
	return st
}

// natsURL is every NATS server, comma-separated.
func (s *stack) natsURL() string {
	if s.cluster != nil {
		return s.cluster.URLs()
	}
	return s.nats.URL()
}

// captureEnv is the environment of a capture on slot.
func (s *stack) captureEnv(slot, metricsAddr string, extra ...string) []string {
	vars := []string{"REDMS_DATABASE=" + sourceDB, "REDMS_SHUTDOWN_TIMEOUT=10s"}
	if s.cluster != nil {
		vars = append(vars, "REDMS_STREAM_REPLICAS=3")
	}
	return s.local().Capture(slot, metricsAddr, append(vars, extra...)...)
}

// startStandby starts a second capture on slot; it stands by while the
// first holds the slot (its /readyz is 503), so only its start is awaited.
func (s *stack) startStandby(t *testing.T, slot string, extra ...string) {
	t.Helper()
	s.standby = &service{
		name:        "capture-standby",
		bin:         binary(t, "capture"),
		logPath:     filepath.Join(s.logDir, "capture-standby.log"),
		metricsAddr: testenv.FreeAddr(t),
	}
	s.standby.env = s.captureEnv(slot, s.standby.metricsAddr, extra...)
	s.standby.start(t)
}

// startCapture starts redms-capture on slot with the given extra env.
func (s *stack) startCapture(t testing.TB, slot string, extra ...string) {
	t.Helper()
	if s.capture == nil {
		s.capture = &service{
			name:        "capture",
			bin:         binary(t, "capture"),
			logPath:     filepath.Join(s.logDir, "capture.log"),
			metricsAddr: testenv.FreeAddr(t),
		}
	}
	s.capture.env = s.captureEnv(slot, s.capture.metricsAddr, extra...)
	s.capture.start(t)
	s.capture.waitReady(t, 60*time.Second)
}

// startLoaders starts n loader replicas.
func (s *stack) startLoaders(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		p := &service{
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
func (s *stack) startLoader(t testing.TB, p *service, extra ...string) {
	t.Helper()
	vars := append([]string{"REDMS_LEASE_TTL=3s", "REDMS_SHUTDOWN_TIMEOUT=10s"}, s.loaderEnv...)
	p.env = s.local().Loader(fmt.Sprintf("%s-%d", p.name, p.starts+1), 2*time.Second, p.metricsAddr, append(vars, extra...)...)
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
func (s *stack) createMarker(t testing.TB) {
	t.Helper()
	s.pg.Exec(t, sourceDB, "CREATE TABLE "+markerTable+" (id integer PRIMARY KEY, note text)")
}

// writeMarker commits the marker row and returns an LSN inside its
// transaction: once the slot's confirmed_flush_lsn is past it, capture has
// had everything before the marker acknowledged by JetStream.
func (s *stack) writeMarker(t testing.TB, id int) string {
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
			leader := ""
			if ci.Cluster != nil {
				leader = ci.Cluster.Leader
			}
			b.consumers = append(b.consumers, fmt.Sprintf("%s pending=%d ack_pending=%d redelivered=%d waiting=%d leader=%s stream_msgs=%d",
				ci.Name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, leader, info.State.Subjects[ci.Config.FilterSubject]))
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
func (s *stack) waitCaughtUp(t testing.TB, slot, markerLSN string, timeout time.Duration) bool {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	reported := start
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
		if time.Since(reported) >= 15*time.Second {
			// A timeline for a slow catch-up (a cluster's recovery).
			t.Logf("not caught up %.0fs after the workload: %s (error: %v)", time.Since(start).Seconds(), b, err)
			reported = time.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, p := range s.loaders {
		if m, err := p.metrics(); err == nil {
			var lines []string
			for _, x := range m {
				if x.Name == "redms_loader_backlog_messages" || x.Name == "redms_loader_table_parked" {
					lines = append(lines, fmt.Sprintf("%s %g", x.Series(), x.Value))
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
func (s *stack) restartDead(t testing.TB) {
	for _, p := range s.loaders {
		if !p.running() {
			s.startLoader(t, p)
		}
	}
	if s.capture != nil && !s.capture.running() {
		s.capture.start(t)
	}
	if s.standby != nil && !s.standby.running() {
		s.standby.start(t)
	}
}

// errNoWaiter says no loader transaction waited on the lock in time.
var errNoWaiter = errors.New("no warehouse transaction waited on the lock")
