package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/apply"
	"github.com/redms/redms/services/rsemu/emu"
)

// benchChanges is the window the benchmark applies; benchSample is how many
// of them the row-by-row baseline applies (its rate is extrapolated).
const (
	benchChanges = 1_000_000
	benchKeys    = 700_000
	benchSample  = 20_000
)

type benchChange struct {
	kind string // INSERT, UPDATE, DELETE
	id   int
	v    string
}

// benchWorkload is benchChanges changes over benchKeys keys with ~200-byte
// rows: inserts of new keys, updates and deletes of live ones, so many keys
// are hit more than once. It returns the changes and the final state.
func benchWorkload() ([]benchChange, map[int]string) {
	rng := rand.New(rand.NewPCG(1, 2))
	live := map[int]string{}
	out := make([]benchChange, 0, benchChanges)
	pad := strings.Repeat("abcdefghij", 19)
	for i := range benchChanges {
		id := rng.IntN(benchKeys)
		v := fmt.Sprintf("%08d-%s", i, pad[:170+rng.IntN(20)])
		_, exists := live[id]
		switch {
		case !exists:
			out = append(out, benchChange{"INSERT", id, v})
			live[id] = v
		case rng.IntN(5) == 0:
			out = append(out, benchChange{"DELETE", id, ""})
			delete(live, id)
		default:
			out = append(out, benchChange{"UPDATE", id, v})
			live[id] = v
		}
	}
	return out, live
}

func (c benchChange) body(table string) string {
	if c.kind == "DELETE" {
		return "table public." + table + ": DELETE: id[integer]:" + strconv.Itoa(c.id)
	}
	return "table public." + table + ": " + c.kind + ": id[integer]:" + strconv.Itoa(c.id) + " v[text]:'" + c.v + "'"
}

// digest is the md5 of the rows as the warehouse query below renders them.
func digest(rows map[int]string) string {
	ids := make([]int, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(id) + ":" + rows[id])
	}
	sum := md5.Sum([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func warehouseDigest(ctx context.Context, conn *pgx.Conn, table string) (string, error) {
	var d *string
	err := conn.QueryRow(ctx, "SELECT md5(string_agg(id::text || ':' || v, ',' ORDER BY id)) FROM public."+pgx.Identifier{table}.Sanitize()).Scan(&d)
	if err != nil || d == nil {
		return "", err
	}
	return *d, nil
}

// BenchmarkLoader compares, on the same warehouse Postgres, one window of
// 1M changes applied (a) by the best hand-written path: COPY of the final
// rows into a staging table plus the DELETE/INSERT merge; (b) by the
// redms-loader binary from the stream; (c) row by row, each change its own
// autocommit statement (a 20k sample, rate extrapolated). Rates are window
// changes per second for all three, so the ratios compare the time each
// takes to bring the target to the same state. (d) applies the same window
// with REDMS_WAREHOUSE_DIALECT=redshift through redms-rsemu in the same run.
func BenchmarkLoader(b *testing.B) {
	ctx := context.Background()
	changes, final := benchWorkload()
	want := digest(final)
	w := newWorld(b)
	conn, err := pgx.Connect(ctx, w.whURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)

	// (b) first publish the window to the stream, then time the loader.
	// The window's bytes as the loader counts them: the messages and what
	// it keeps of each change (at most two columns here).
	windowBytes := publishBench(b, w, "bench", changes, benchBatch) + int64(benchChanges*apply.Footprint(2))
	b.ResetTimer()
	start := time.Now()
	loaderEnv := map[string]string{
		"REDMS_WINDOW_RECORDS":  strconv.Itoa(benchChanges),
		"REDMS_WINDOW_BYTES":    strconv.FormatInt(windowBytes+1<<20, 10),
		"REDMS_WINDOW_DURATION": "10m",
		"REDMS_LOG_LEVEL":       "info",
	}
	// To profile the loader: REDMS_BENCH_PPROF_ADDR=127.0.0.1:6060, then
	// go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=20.
	if addr := os.Getenv("REDMS_BENCH_PPROF_ADDR"); addr != "" {
		loaderEnv["REDMS_PPROF_ADDR"] = addr
	}
	p := w.start(b, "bench", loaderEnv)
	testenv.Eventually(b, 30*time.Minute, "the loader to apply and ack the window", func() bool {
		return w.backlog(b, "bench") == 0
	})
	loaderTime := time.Since(start)
	b.StopTimer()
	hwm := peakRSS(b, p.PID())
	pgCopies := copiesPerWindow(b, p, "public.bench")
	pgApply := applySeconds(b, p)
	p.Kill()
	if got, err := warehouseDigest(ctx, conn, "bench"); err != nil || got != want {
		b.Fatalf("loader target digest %q (%v), want %q", got, err, want)
	}

	// (d) the same window through the Redshift dialect into redms-rsemu
	// (Redshift SQL, COPY … MANIFEST GZIP CSV from S3) over the same
	// warehouse Postgres.
	rsBytes := publishBench(b, w, "bench_rs", changes, benchBatch) + int64(benchChanges*apply.Footprint(2))
	rs := startEmulator(b, w)
	start = time.Now()
	p = w.start(b, "bench-rs", map[string]string{
		"REDMS_WAREHOUSE_DIALECT": "redshift",
		"REDMS_WAREHOUSE_URL":     "postgres://postgres@" + rs.Addr() + "/warehouse?sslmode=disable",
		"REDMS_WINDOW_RECORDS":    strconv.Itoa(benchChanges),
		"REDMS_WINDOW_BYTES":      strconv.FormatInt(rsBytes+1<<20, 10),
		"REDMS_WINDOW_DURATION":   "10m",
		"REDMS_LOG_LEVEL":         "info",
	})
	testenv.Eventually(b, 30*time.Minute, "the redshift-dialect loader to apply and ack the window", func() bool {
		return w.backlog(b, "bench_rs") == 0
	})
	rsTime := time.Since(start)
	rsCopies := copiesPerWindow(b, p, "public.bench_rs")
	rsApply := applySeconds(b, p)
	p.Kill()
	if got, err := warehouseDigest(ctx, conn, "bench_rs"); err != nil || got != want {
		b.Fatalf("redshift-dialect target digest %q (%v), want %q", got, err, want)
	}

	// (a) reference: COPY of the final rows plus the merge.
	copyTime := referenceCopy(b, conn, changes, final)
	if got, err := warehouseDigest(ctx, conn, "bench_ref"); err != nil || got != want {
		b.Fatalf("reference target digest %q (%v), want %q", got, err, want)
	}
	// (c) row by row on a sample.
	rbrTime := rowByRow(b, conn, changes[:benchSample])

	loaderRate := float64(benchChanges) / loaderTime.Seconds()
	copyRate := float64(benchChanges) / copyTime.Seconds()
	rbrRate := float64(benchSample) / rbrTime.Seconds()
	b.ReportMetric(copyRate, "copy-rows/s")
	b.ReportMetric(loaderRate, "loader-rows/s")
	b.ReportMetric(rbrRate, "rowbyrow-rows/s")
	b.ReportMetric(loaderRate/copyRate, "loader/copy-ratio")
	b.ReportMetric(loaderRate/rbrRate, "loader/rowbyrow-ratio")
	b.ReportMetric(float64(hwm)/(1<<20), "loader-peak-rss-MB")
	rsRate := float64(benchChanges) / rsTime.Seconds()
	b.ReportMetric(rsRate, "loader-redshift-emu-rows/s")
	b.ReportMetric(rsRate/loaderRate, "redshift-emu/postgres-ratio")
	b.ReportMetric(float64(windowBytes)/(1<<20), "window-MB")
	b.ReportMetric(pgCopies, "copy-statements/window")
	b.ReportMetric(rsCopies, "redshift-copy-statements/window")
	b.ReportMetric(pgApply, "loader-apply-s")
	b.ReportMetric(rsApply, "loader-redshift-apply-s")
	b.Logf("window: %d changes, %d final rows, %.0f MiB; loader %v (redshift dialect via rsemu %v), copy+merge %v, row-by-row %d changes in %v (extrapolated)",
		benchChanges, len(final), float64(windowBytes)/(1<<20), loaderTime.Round(time.Millisecond), rsTime.Round(time.Millisecond),
		copyTime.Round(time.Millisecond), benchSample, rbrTime.Round(time.Millisecond))
}

// copiesPerWindow is the COPY statements per committed window of table the
// loader p reports.
func copiesPerWindow(b *testing.B, p *loaderProc, table string) float64 {
	b.Helper()
	copies, ok1 := p.scrape(`redms_loader_copy_statements_total{table="` + table + `"}`)
	windows, ok2 := p.scrape(`redms_loader_windows_applied_total{table="` + table + `"}`)
	if !ok1 || !ok2 || windows == 0 {
		b.Fatalf("copy statements %v (%v), windows %v (%v) of %s", copies, ok1, windows, ok2, table)
	}
	return copies / windows
}

// applySeconds is the time the loader p spent applying its windows (fold,
// stage, COPY, merge, commit), from its "window applied" log lines: the
// rest of its time is reading the stream and removing the window from it.
func applySeconds(b *testing.B, p *loaderProc) float64 {
	b.Helper()
	var total float64
	for line := range strings.Lines(p.Log.String()) {
		if !strings.Contains(line, `"msg":"window applied"`) {
			continue
		}
		var l struct{ Seconds float64 }
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			b.Fatalf("read the loader's log line %q: %v", line, err)
		}
		total += l.Seconds
	}
	return total
}

// benchBatch is the changes per message publishBench sends: capture's
// REDMS_BATCH_RECORDS default (a backlog fills every batch; 1000 of these
// ~220-byte changes stay under REDMS_BATCH_BYTES).
const benchBatch = 1000

// publishBench publishes the changes asynchronously as capture does, 1000
// changes per transaction, in batches of batch changes (1: one change per
// message, as capture before batches), and returns the window size as the
// loader counts it.
func publishBench(b *testing.B, w *world, table string, changes []benchChange, batch int) int64 {
	b.Helper()
	js, err := jetstream.New(w.nc, jetstream.WithPublishAsyncMaxPending(8192))
	if err != nil {
		b.Fatal(err)
	}
	subj := subject.Subject(tableRef(table))
	var size int64
	// LSNs come from the world's counter so a second window's Nats-Msg-Ids
	// differ from the first's (the stream would drop them as duplicates).
	w.mu.Lock()
	lsn := w.lsn
	w.lsn += uint64(8 * (len(changes) + 1000))
	w.mu.Unlock()
	commitTime := time.Now().UTC()
	// Source positions as capture gives them: a transaction of 1000 changes
	// per base, the prev chain unbroken from the first (which has none, as
	// the first of a capture session).
	var (
		prev walheader.Pos
		base = lsn
		meta walheader.Meta
		recs [][]byte
	)
	flush := func() {
		if len(recs) == 0 {
			return
		}
		if len(recs) == 1 {
			meta.Lens, meta.Runs, meta.LSNs = nil, nil, nil
		}
		msg := &nats.Msg{Subject: subj, Header: meta.Header("shop"), Data: walheader.JoinBody(nil, recs)}
		size += int64(len(msg.Data))
		for k, vs := range msg.Header {
			for _, v := range vs {
				size += int64(len(k) + len(v) + 4)
			}
		}
		if _, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatalf("publish: %v", err)
		}
		recs = nil
	}
	for i, c := range changes {
		lsn += 8
		commit := lsn + uint64(8*(1000-i%1000))
		if i%1000 == 0 {
			base = lsn
		}
		pos := walheader.Pos{Base: base, Index: uint64(i % 1000)}
		run := walheader.Run{Base: base, First: pos.Index, Count: 1, Xid: uint64(1000 + i/1000), CommitLSN: fmtLSN(commit), CommitTime: commitTime}
		if len(recs) == 0 {
			meta = walheader.Meta{LSN: fmtLSN(lsn), Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey,
				Pos: pos, Prev: prev, HasPrev: !prev.IsZero()}
		}
		if n := len(meta.Runs); n > 0 && meta.Runs[n-1].Base == base {
			meta.Runs[n-1].Count++
		} else {
			meta.Runs = append(meta.Runs, run)
		}
		meta.PosLast, meta.CommitLSN, meta.Xid, meta.CommitTime = pos, run.CommitLSN, run.Xid, commitTime
		body := []byte(c.body(table))
		recs = append(recs, body)
		meta.Lens = append(meta.Lens, len(body))
		meta.LSNs = append(meta.LSNs, lsn)
		prev = pos
		if len(recs) == batch {
			flush()
		}
	}
	flush()
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publishes not acknowledged within 5m")
	}
	return size
}

// referenceCopy applies the window's final rows with COPY into a staging
// table and the DELETE/INSERT merge, in one transaction.
func referenceCopy(b *testing.B, conn *pgx.Conn, changes []benchChange, final map[int]string) time.Duration {
	b.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE public.bench_ref (id integer, v varchar(65535))`); err != nil {
		b.Fatal(err)
	}
	touched := map[int]bool{}
	for _, c := range changes {
		touched[c.id] = true
	}
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, q := range []string{
		`CREATE TEMP TABLE stage_upsert (id integer, v varchar(65535)) ON COMMIT DROP`,
		`CREATE TEMP TABLE stage_delete (id integer) ON COMMIT DROP`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var deletes [][]any
	for id := range touched {
		if _, ok := final[id]; !ok {
			deletes = append(deletes, []any{id})
		}
	}
	var upserts [][]any
	for id, v := range final {
		upserts = append(upserts, []any{id, v})
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_upsert"}, []string{"id", "v"}, pgx.CopyFromRows(upserts)); err != nil {
		b.Fatal(err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"stage_delete"}, []string{"id"}, pgx.CopyFromRows(deletes)); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM public.bench_ref USING stage_delete s WHERE bench_ref.id = s.id`,
		`DELETE FROM public.bench_ref USING stage_upsert s WHERE bench_ref.id = s.id`,
		`INSERT INTO public.bench_ref (id, v) SELECT id, v FROM stage_upsert`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// rowByRow applies each change as its own autocommit statement, with an
// index on the key (the baseline's best case).
func rowByRow(b *testing.B, conn *pgx.Conn, sample []benchChange) time.Duration {
	b.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE public.bench_rbr (id integer PRIMARY KEY, v varchar(65535))`); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for _, c := range sample {
		var err error
		switch c.kind {
		case "INSERT":
			_, err = conn.Exec(ctx, `INSERT INTO public.bench_rbr (id, v) VALUES ($1, $2)`, c.id, c.v)
		case "UPDATE":
			_, err = conn.Exec(ctx, `UPDATE public.bench_rbr SET v = $2 WHERE id = $1`, c.id, c.v)
		case "DELETE":
			_, err = conn.Exec(ctx, `DELETE FROM public.bench_rbr WHERE id = $1`, c.id)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// peakRSS is VmHWM of pid in bytes.
func peakRSS(b *testing.B, pid int) int64 {
	b.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("read peak RSS: %v", err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatalf("parse VmHWM %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

// startEmulator runs redms-rsemu in-process in front of the world's
// warehouse Postgres and S3 server.
func startEmulator(b *testing.B, w *world) *emu.Server {
	b.Helper()
	srv, err := emu.Start(context.Background(), emu.Config{
		Listen: "127.0.0.1:0", PostgresURL: w.pg.URL("postgres"),
		S3Endpoint: w.s3.Endpoint(), S3Region: w.s3.Region(),
		S3AccessKeyID: w.s3.AccessKeyID(), S3SecretAccessKey: w.s3.SecretAccessKey(),
	})
	if err != nil {
		b.Fatalf("start redshift emulator: %v", err)
	}
	b.Cleanup(func() {
		if err := srv.Close(); err != nil {
			b.Errorf("close redshift emulator: %v", err)
		}
	})
	return srv
}
