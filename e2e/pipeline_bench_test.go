package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/demo/verify"
	"github.com/redms/redms/pkg/typemap"
)

// recvSlot is the slot pg_recvlogical drains in BenchmarkPipeline: created
// with capture's, so both hold the same backlog.
const recvSlot = "bench_recv"

// BenchmarkPipeline drains a backlog through the whole pipeline — capture,
// two loaders, NATS, S3 and the Postgres warehouse as processes — until the
// warehouse holds every change, against pg_recvlogical draining the same
// backlog from an identical slot in the same run: pipeline/recvlogical-ratio
// is pg_recvlogical's time over the pipeline's. The backlog (about 1.15M
// changes at the default REDMS_BENCH_PIPELINE_ROWS=600000) is a large COPY
// into one table, inserts, updates and deletes of another, and many small
// transactions into a third. Then pgbench runs flat out for
// REDMS_BENCH_PGBENCH (default 30s) while the warehouse's freshness (now −
// the newest pgbench_history.mtime it holds, sampled every 200 ms) is
// measured: freshness-p50-s, freshness-p99-s, with the loaders' 2 s window.
func BenchmarkPipeline(b *testing.B) {
	rows := 600_000
	if v := os.Getenv("REDMS_BENCH_PIPELINE_ROWS"); v != "" {
		var err error
		if rows, err = strconv.Atoi(v); err != nil {
			b.Fatalf("REDMS_BENCH_PIPELINE_ROWS=%q: %v", v, err)
		}
	}
	pgbenchFor := 30 * time.Second
	if v := os.Getenv("REDMS_BENCH_PGBENCH"); v != "" {
		var err error
		if pgbenchFor, err = time.ParseDuration(v); err != nil {
			b.Fatalf("REDMS_BENCH_PGBENCH=%q: %v", v, err)
		}
	}
	ctx := context.Background()
	s := newStack(b, "postgres")
	for _, sl := range []string{slot, recvSlot} {
		s.pg.Exec(b, sourceDB, fmt.Sprintf(`SELECT pg_create_logical_replication_slot('%s', 'test_decoding')`, sl))
	}
	changes := pipelineBacklog(b, s, rows)
	s.createMarker(b)
	markerLSN := s.writeMarker(b, 1)
	var end string
	if err := s.source.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&end); err != nil {
		b.Fatal(err)
	}

	// The reference: pg_recvlogical drains its slot to the same end.
	start := time.Now()
	cmd := exec.CommandContext(ctx, filepath.Join(s.pg.BinDir(), "pg_recvlogical"), "-d", s.pg.URL(sourceDB), "-S", recvSlot, "--start",
		"-f", "/dev/null", "-o", "include-xids=1", "-o", "include-timestamp=1", "-o", "skip-empty-xacts=1",
		"--endpos", end, "--no-loop")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("pg_recvlogical: %v\n%s", err, out)
	}
	recvSecs := time.Since(start).Seconds()

	// The pipeline: from capture's start until the stream is drained (every
	// window applied and removed) past the marker.
	start = time.Now()
	s.startCapture(b, slot, "REDMS_SNAPSHOT=never")
	s.startLoaders(b, 2)
	if !s.waitCaughtUp(b, slot, markerLSN, 30*time.Minute) {
		b.Fatal("the pipeline did not drain the backlog")
	}
	pipeSecs := time.Since(start).Seconds()
	rep, err := verify.Compare(ctx, s.source, s.warehouse, verify.Options{Dialect: typemap.Postgres, MaxDiffs: 3})
	if err != nil {
		b.Fatalf("compare source and warehouse: %v", err)
	}
	for _, d := range rep.Diffs {
		b.Errorf("DIFFERENCE after the backlog: %s", d)
	}
	b.Logf("backlog of %d changes: pg_recvlogical %.1fs, pipeline %.1fs", changes, recvSecs, pipeSecs)
	b.ReportMetric(float64(changes)/recvSecs, "recvlogical-changes/s")
	b.ReportMetric(float64(changes)/pipeSecs, "pipeline-changes/s")
	b.ReportMetric(recvSecs/pipeSecs, "pipeline/recvlogical-ratio")

	p50, p99, n := s.pgbenchFreshness(b, pgbenchFor)
	b.Logf("pgbench flat out %s: %d freshness samples, p50 %.2fs, p99 %.2fs (window 2s)", pgbenchFor, n, p50, p99)
	b.ReportMetric(p50, "freshness-p50-s")
	b.ReportMetric(p99, "freshness-p99-s")
}

// pipelineBacklog writes the benchmark's backlog into the source and
// returns how many row changes it holds.
func pipelineBacklog(b *testing.B, s *stack, rows int) int {
	b.Helper()
	ctx := context.Background()
	s.pg.Exec(b, sourceDB, `
CREATE TABLE public.bench_load (id bigint PRIMARY KEY, account integer, note text, amount numeric(12,2), created timestamptz);
CREATE TABLE public.bench_accounts (id integer PRIMARY KEY, balance bigint, note text);
CREATE TABLE public.bench_small (id integer PRIMARY KEY, v text);
CREATE PROCEDURE public.bench_many(n integer) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..n LOOP
		INSERT INTO public.bench_small SELECT i * 5 + g, 'small ' || i FROM generate_series(0, 4) g;
		COMMIT;
	END LOOP;
END $$;`)
	// A large COPY.
	conn, err := s.source.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := pgx.CopyFromSlice(rows, func(i int) ([]any, error) {
		return []any{int64(i + 1), int32(i % 1000), fmt.Sprintf("note %d %032x", i, i*7919), fmt.Sprintf("%d.%02d", i/100, i%100), created.Add(time.Duration(i) * time.Second)}, nil
	})
	if _, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"public", "bench_load"}, []string{"id", "account", "note", "amount", "created"}, src); err != nil {
		b.Fatalf("copy the backlog's rows: %v", err)
	}
	conn.Release()
	accounts := rows / 3
	small := rows / 30 // transactions of 5 rows
	s.pg.Exec(b, sourceDB, fmt.Sprintf(`INSERT INTO public.bench_accounts SELECT g, 0, 'account ' || g FROM generate_series(1, %d) g`, accounts))
	// Updates of every account and deletes of a quarter, 1000 rows a transaction.
	for lo := 1; lo <= accounts; lo += 1000 {
		s.pg.Exec(b, sourceDB, fmt.Sprintf(`UPDATE public.bench_accounts SET balance = balance + id, note = note || ' updated' WHERE id BETWEEN %d AND %d`, lo, lo+999))
	}
	for lo := 1; lo <= accounts; lo += 4000 {
		s.pg.Exec(b, sourceDB, fmt.Sprintf(`DELETE FROM public.bench_accounts WHERE id BETWEEN %d AND %d`, lo, lo+999))
	}
	s.pg.Exec(b, sourceDB, fmt.Sprintf(`CALL public.bench_many(%d)`, small))
	deleted := 0
	for lo := 1; lo <= accounts; lo += 4000 {
		deleted += min(1000, accounts-lo+1)
	}
	return rows + 2*accounts + deleted + 5*small
}

// pgbenchFreshness runs pgbench flat out for d against the source and
// samples the warehouse's freshness every 200 ms; it returns p50 and p99
// in seconds and the number of samples.
func (s *stack) pgbenchFreshness(b *testing.B, d time.Duration) (p50, p99 float64, n int) {
	b.Helper()
	run := s.pgbench(b)
	bench := func(args ...string) {
		b.Helper()
		if out, err := run(context.Background(), args...); err != nil {
			b.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
	}
	bench("-i", "-I", "dtpg", "-s", "2")
	// Wait for the initial rows, so the samples measure the load, not them.
	lsn := s.writeMarker(b, 2)
	s.waitCaughtUp(b, slot, lsn, 10*time.Minute)
	stop := s.sampleFreshness(200 * time.Millisecond)
	bench("-n", "-c", "4", "-j", "2", "-T", fmt.Sprint(int(d.Seconds())))
	fresh := stop()
	if len(fresh) == 0 {
		b.Fatal("no freshness sample: the warehouse never had pgbench_history rows")
	}
	return quantile(fresh, 0.5), quantile(fresh, 0.99), len(fresh)
}
