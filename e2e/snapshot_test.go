package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/demo/verify"
	"github.com/redms/redms/pkg/testinfra/pgcluster"
	"github.com/redms/redms/pkg/typemap"
)

// snapStatus is what the test reads of a REDMS_SNAPSHOTS record.
type snapStatus struct {
	ID       string `json:"id"`
	Table    string `json:"table"`
	State    string `json:"state"`
	RowsDone int64  `json:"rows_done"`
	Chunk    int    `json:"chunk"`
	Error    string `json:"error"`
}

// snapshots reads every table's snapshot status.
func (s *stack) snapshots(ctx context.Context) (map[string]snapStatus, error) {
	kv, err := s.js.KeyValue(ctx, "REDMS_SNAPSHOTS")
	if err != nil {
		return nil, err
	}
	out := map[string]snapStatus{}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			return nil, err
		}
		var st snapStatus
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			return nil, err
		}
		out[st.Table] = st
	}
	return out, nil
}

// waitSnapshots waits until every table of want has a finished snapshot
// other than the one with the id in not (when given), failing on a failed
// or refused one.
func (s *stack) waitSnapshots(t testing.TB, want []string, not map[string]string, timeout time.Duration) map[string]snapStatus {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	var last map[string]snapStatus
	var lastErr error
	for time.Now().Before(deadline) {
		last, lastErr = s.snapshots(ctx)
		done := lastErr == nil
		for _, tb := range want {
			st, ok := last[tb]
			switch {
			case !ok || st.ID == not[tb]:
				done = false
			case st.State == "failed" || st.State == "refused":
				t.Fatalf("snapshot of %s %s: %s", tb, st.State, st.Error)
			case st.State != "done":
				done = false
			}
		}
		if done {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("snapshots of %v not done within %v: %+v (last error %v)\ncapture:\n%s", want, timeout, last, lastErr, s.capture.tail(30))
	return nil
}

// TestSnapshot: a source with rows before capture first starts arrives
// whole through the initial snapshot while a workload changes it (keyed,
// composite-keyed and keyless tables, a partitioned one into its root's
// target); SIGKILL of capture mid-snapshot resumes; then a warehouse
// table with wrong rows (missing, extra, changed) is made equal by an
// on-demand `redms-capture snapshot`.
func TestSnapshot(t *testing.T) { runSnapshot(t, "postgres") }

// TestSnapshotRedshift is the same through redms-rsemu.
func TestSnapshotRedshift(t *testing.T) { runSnapshot(t, "redshift") }

func runSnapshot(t *testing.T, dialect string) {
	ctx := context.Background()
	s := newStack(t, dialect)
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.items (id bigint PRIMARY KEY, qty integer, name text, price numeric(12,2), seen timestamptz)`)
	s.pg.Exec(t, sourceDB, `INSERT INTO public.items SELECT g, g % 97, 'item '||g||' ''q'' "d"', g * 1.25, '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 30000) g`)
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.pairs (a integer, b text, v text, PRIMARY KEY (a, b))`)
	s.pg.Exec(t, sourceDB, `INSERT INTO public.pairs SELECT g / 10, 'b' || (g % 10), 'v' || g FROM generate_series(1, 4000) g`)
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.notes (body text, n integer)`)
	s.pg.Exec(t, sourceDB, `ALTER TABLE public.notes REPLICA IDENTITY FULL`)
	s.pg.Exec(t, sourceDB, `INSERT INTO public.notes SELECT 'note ' || g, g FROM generate_series(1, 300) g`)
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.events (id bigint, day date, what text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`)
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')`)
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')`)
	s.pg.Exec(t, sourceDB, `INSERT INTO public.events SELECT g, '2026-01-01'::date + (g % 59), 'e' || g FROM generate_series(1, 3000) g`)
	// A text key under a linguistic collation (ICU: a < A < b < B), which
	// the warehouse orders by bytes: chunk ranges must hold the same keys
	// on both sides, or a chunk's range replace deletes other chunks' rows.
	// Keys of mixed case (A..J and a..f), so ranges start and end at both.
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.words (w text COLLATE "und-x-icu" PRIMARY KEY, n integer)`)
	s.pg.Exec(t, sourceDB, `INSERT INTO public.words SELECT translate(md5(g::text), '0123456789', 'ABCDEFGHIJ'), g FROM generate_series(1, 4000) g`)
	s.createMarker(t)
	tables := []string{"public.items", "public.pairs", "public.notes", "public.events", "public.words", "public." + markerTable}

	// Slow enough for the faults to land mid-snapshot.
	s.startCapture(t, slot, "REDMS_SNAPSHOT_CHUNK_ROWS=500", "REDMS_SNAPSHOT_RATE=4000", "REDMS_EXCLUDE_TABLES=public.hidden")
	// Windows of a few chunks, so that chunks apply in windows of their own
	// (a window's adjacent chunk ranges merge into one).
	s.loaderEnv = append(s.loaderEnv, "REDMS_WINDOW_RECORDS=1200")
	s.startLoaders(t, 1)

	// The workload changes rows while they are read.
	wctx, stopWork := context.WithCancel(ctx)
	workDone := make(chan error, 1)
	go func() { workDone <- s.snapshotWorkload(wctx) }()
	defer stopWork()

	// Part way through items: SIGKILL capture, then restart Postgres, then
	// SIGKILL the loader; each time the snapshot carries on.
	type fault struct {
		chunk int
		name  string
		do    func()
		done  bool
	}
	faults := []*fault{
		{chunk: 5, name: "SIGKILL capture", do: func() {
			s.capture.kill(t)
			time.Sleep(300 * time.Millisecond)
			s.capture.start(t)
		}},
		{chunk: 15, name: "restart Postgres (fast stop, start)", do: func() {
			c := s.pg.Cluster()
			if err := c.Stop(ctx, pgcluster.Fast); err != nil {
				t.Fatalf("stop postgres: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
			if err := c.Start(ctx); err != nil {
				t.Fatalf("start postgres: %v", err)
			}
		}},
		{chunk: 30, name: "SIGKILL the loader", do: func() {
			s.loaders[0].kill(t)
			time.Sleep(300 * time.Millisecond)
			s.startLoader(t, s.loaders[0])
		}},
	}
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) && !faults[len(faults)-1].done {
		all, err := s.snapshots(ctx)
		st := all["public.items"]
		for _, f := range faults {
			if err != nil || f.done || st.State != "running" || st.Chunk < f.chunk {
				continue
			}
			t.Logf("REQUIRED EVENT: %s mid-snapshot of public.items at chunk %d (%d rows done)", f.name, st.Chunk, st.RowsDone)
			f.do()
			f.done = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, f := range faults {
		if !f.done {
			t.Errorf("required event did not happen: %s during the snapshot of public.items:\n%s", f.name, s.capture.tail(20))
		}
	}
	first := s.waitSnapshots(t, tables, nil, 180*time.Second)
	stopWork()
	if err := <-workDone; err != nil {
		t.Fatalf("workload: %v", err)
	}
	s.compare(t, "after the initial snapshot")

	// Wrong rows in the warehouse: missing, extra, changed.
	for _, q := range []string{
		`DELETE FROM public.items WHERE id % 101 = 0`,
		`INSERT INTO public.items (id, qty, name) VALUES (900001, 1, 'extra'), (900002, 2, 'extra'), (0, 0, 'extra below')`,
		`UPDATE public.items SET name = 'wrong' WHERE id % 203 = 1`,
		`DELETE FROM public.pairs WHERE a = 7`,
		`INSERT INTO public.pairs VALUES (7, 'zz', 'extra')`,
		// a multiset: a lost copy, a surplus copy of a row it has
		`DELETE FROM public.notes WHERE n % 50 = 0`,
		`INSERT INTO public.notes VALUES ('note 1', 1), ('note 2', 2)`,
	} {
		if _, err := s.warehouse.Exec(ctx, q); err != nil {
			t.Fatalf("corrupt the warehouse (%s): %v", q, err)
		}
	}
	rep, err := verify.Compare(ctx, s.source, s.warehouse, verify.Options{Dialect: typemap.Dialect(s.dialect), MaxDiffs: 1})
	if err != nil || len(rep.Diffs) == 0 {
		t.Fatalf("the corrupted warehouse compares equal (%v): the test cannot tell a repair", err)
	}
	cmd := exec.Command(binary(t, "capture"), "snapshot", "public.items", "public.pairs", "public.notes")
	cmd.Env = s.capture.env
	out, err := cmd.CombinedOutput()
	t.Logf("redms-capture snapshot: %s", out)
	if err != nil {
		t.Fatalf("redms-capture snapshot: %v", err)
	}
	not := map[string]string{"public.items": first["public.items"].ID, "public.pairs": first["public.pairs"].ID, "public.notes": first["public.notes"].ID}
	s.waitSnapshots(t, []string{"public.items", "public.pairs", "public.notes"}, not, 60*time.Second)
	status := exec.Command(binary(t, "capture"), "snapshot", "status")
	status.Env = s.capture.env
	out, err = status.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "table=public.items state=done") {
		t.Errorf("redms-capture snapshot status (%v):\n%s", err, out)
	}
	t.Logf("redms-capture snapshot status:\n%s", out)
	s.compare(t, "after the on-demand snapshot")
	// A table that becomes selected later is snapshotted when capture
	// starts with the new selection.
	s.pg.Exec(t, sourceDB, `CREATE TABLE public.hidden (id integer PRIMARY KEY, v text)`)
	s.pg.Exec(t, sourceDB, `INSERT INTO public.hidden SELECT g, 'h' || g FROM generate_series(1, 2000) g`)
	s.capture.stop(t)
	s.startCapture(t, slot, "REDMS_SNAPSHOT_CHUNK_ROWS=500", "REDMS_SNAPSHOT_RATE=0")
	s.waitSnapshots(t, []string{"public.hidden"}, nil, 60*time.Second)
	s.compare(t, "after public.hidden became selected")

	m, err := s.capture.metrics()
	if err != nil {
		t.Fatalf("scrape capture: %v", err)
	}
	var rows float64
	for _, x := range m {
		if x.Name == "redms_capture_snapshot_rows_total" && strings.Contains(x.Series(), "public.items") {
			rows += x.Value
		}
	}
	if rows > 0 {
		t.Errorf("redms_capture_snapshot_rows_total{table=public.items} = %g in a capture that snapshotted only public.hidden", rows)
	}
	var hidden float64
	for _, x := range m {
		if x.Name == "redms_capture_snapshot_rows_total" && strings.Contains(x.Series(), "public.hidden") {
			hidden += x.Value
		}
	}
	if hidden != 2000 {
		t.Errorf("redms_capture_snapshot_rows_total{table=public.hidden} = %g, want 2000", hidden)
	}
}

// compare waits for the pipeline to catch up, then compares source and
// warehouse row by row.
func (s *stack) compare(t *testing.T, when string) {
	t.Helper()
	ctx := context.Background()
	lsn := s.writeMarker(t, int(time.Now().UnixNano()%1_000_000_000))
	s.waitCaughtUp(t, slot, lsn, 90*time.Second)
	rep, err := verify.Compare(ctx, s.source, s.warehouse, verify.Options{Dialect: typemap.Dialect(s.dialect), MaxDiffs: 3})
	if err != nil {
		t.Fatalf("compare source and warehouse %s: %v", when, err)
	}
	t.Logf("rows compared %s:\n%s", when, rep.Summary())
	for _, d := range rep.Diffs {
		t.Errorf("DIFFERENCE %s: %s", when, d)
	}
}

// snapshotWorkload updates, inserts and deletes rows of the snapshotted
// tables until ctx ends.
func (s *stack) snapshotWorkload(ctx context.Context) error {
	rnd := rand.New(rand.NewPCG(1, 2))
	next := int64(40000)
	for ctx.Err() == nil {
		var q string
		var args []any
		switch rnd.IntN(7) {
		case 0:
			q, args = `UPDATE public.items SET qty = qty + 1, name = name || '+' WHERE id = $1`, []any{1 + rnd.Int64N(30000)}
		case 1:
			q, args = `DELETE FROM public.items WHERE id = $1`, []any{1 + rnd.Int64N(30000)}
		case 2:
			next++
			q, args = `INSERT INTO public.items (id, qty, name) VALUES ($1, 1, 'new') ON CONFLICT DO NOTHING`, []any{next % 45000}
		case 3:
			q, args = `UPDATE public.items SET id = id + 100000 WHERE id = $1`, []any{1 + rnd.Int64N(30000)}
		case 4:
			q, args = `UPDATE public.pairs SET v = v || '!' WHERE a = $1`, []any{rnd.IntN(400)}
		case 5:
			q, args = `DELETE FROM public.pairs WHERE a = $1 AND b = $2`, []any{rnd.IntN(400), fmt.Sprintf("b%d", rnd.IntN(10))}
		case 6:
			q, args = `UPDATE public.events SET what = what || '*' WHERE id = $1`, []any{1 + rnd.Int64N(3000)}
		}
		if _, err := s.source.Exec(ctx, q, args...); err != nil && ctx.Err() == nil {
			// Postgres restarts under it: carry on once it is back.
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Duration(2+rnd.IntN(4)) * time.Millisecond)
	}
	return nil
}
