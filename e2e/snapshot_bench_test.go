package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkSnapshot snapshots a table of REDMS_BENCH_SNAPSHOT_ROWS rows
// (default 2,000,000, ~200 bytes each) into the Postgres warehouse through
// the pipeline (capture's initial snapshot, one loader), against COPY (SELECT
// ...) TO STDOUT piped into COPY ... FROM STDIN of the same rows into the
// same warehouse in the same run: snapshot/copy-ratio is the pipeline's
// rows/s over COPY's. Capture's and the loader's peak RSS are reported.
// To see where the time goes: REDMS_BENCH_DEBUG=1 logs the loader's
// statements (REDMS_LOG_LEVEL=debug) and serves pprof of the loader on
// 127.0.0.1:6061 and of capture on 127.0.0.1:6062 (keep the logs with
// REDMS_E2E_LOGDIR); REDMS_BENCH_LOADER_ENV adds space-separated
// variables to the loader's environment (GOMEMLIMIT=2GiB, say).
func BenchmarkSnapshot(b *testing.B) {
	n := 2_000_000
	if v := os.Getenv("REDMS_BENCH_SNAPSHOT_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("REDMS_BENCH_SNAPSHOT_ROWS=%q: %v", v, err)
		}
	}
	ctx := context.Background()
	s := newStack(b, "postgres")
	const shape = `(id bigint PRIMARY KEY, account integer, note text, amount numeric(12,2), created timestamptz)`
	s.pg.Exec(b, sourceDB, `CREATE TABLE public.bench `+shape)
	s.pg.Exec(b, sourceDB, fmt.Sprintf(`INSERT INTO public.bench SELECT g, g %% 1000, repeat(md5(g::text), 4), g * 0.01, '2026-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, %d) g`, n))
	s.pg.Exec(b, sourceDB, `ANALYZE public.bench`)
	s.createMarker(b)

	// The reference: COPY out of the source piped into COPY into the warehouse.
	if _, err := s.warehouse.Exec(ctx, `CREATE TABLE public.bench_copy `+shape); err != nil {
		b.Fatal(err)
	}
	src, err := s.source.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	dst, err := s.warehouse.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		_, err := src.Conn().PgConn().CopyTo(ctx, pw, `COPY (SELECT * FROM public.bench) TO STDOUT`)
		pw.CloseWithError(err)
		errc <- err
	}()
	if _, err := dst.Conn().PgConn().CopyFrom(ctx, pr, `COPY public.bench_copy FROM STDIN`); err != nil {
		b.Fatalf("copy into the warehouse: %v", err)
	}
	if err := <-errc; err != nil {
		b.Fatalf("copy out of the source: %v", err)
	}
	copySecs := time.Since(start).Seconds()
	src.Release()
	dst.Release()

	// The pipeline: capture's initial snapshot, one loader.
	start = time.Now()
	debug := os.Getenv("REDMS_BENCH_DEBUG") != ""
	captureEnv := []string{"REDMS_SNAPSHOT_RATE=0", "REDMS_SNAPSHOT_CHUNK_ROWS=20000"}
	if debug {
		captureEnv = append(captureEnv, "REDMS_PPROF_ADDR=127.0.0.1:6062")
	}
	s.startCapture(b, slot, captureEnv...)
	if v := os.Getenv("REDMS_BENCH_LOADER_ENV"); v != "" {
		s.loaderEnv = append(s.loaderEnv, strings.Fields(v)...)
	}
	if debug {
		s.loaderEnv = append(s.loaderEnv, "REDMS_LOG_LEVEL=debug", "REDMS_PPROF_ADDR=127.0.0.1:6061")
	}
	s.startLoaders(b, 1)
	s.waitSnapshots(b, []string{"public.bench"}, nil, 60*time.Minute)
	for {
		var got int
		if err := s.warehouse.QueryRow(ctx, `SELECT count(*) FROM public.bench`).Scan(&got); err == nil && got == n {
			break
		}
		if time.Since(start) > 60*time.Minute {
			b.Fatalf("the warehouse did not receive %d rows within an hour", n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	snapSecs := time.Since(start).Seconds()
	b.ReportMetric(float64(n)/snapSecs, "snapshot-rows/s")
	b.ReportMetric(float64(n)/copySecs, "copy-rows/s")
	b.ReportMetric(copySecs/snapSecs, "snapshot/copy-ratio")
	b.ReportMetric(peakRSS(b, s.capture.pid()), "capture-rss-MiB")
	b.ReportMetric(peakRSS(b, s.loaders[0].pid()), "loader-rss-MiB")
	b.Logf("%d rows: COPY %.1fs, snapshot through the pipeline %.1fs", n, copySecs, snapSecs)
}

// peakRSS is the peak resident set (VmHWM) of process pid in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read status of pid %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatalf("VmHWM of pid %d: %q", pid, line)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
