package workload

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

// dump is every generated table's rows in key order, as text.
func dump(t *testing.T, pool *pgxpool.Pool, g *Generator) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, name := range g.Tables() {
		rows, err := pool.Query(ctx, fmt.Sprintf("SELECT r::text FROM %s r ORDER BY 1", QualifiedName(g.Schema(), name)))
		if err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
		b.WriteString("== " + name + "\n")
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("dump %s: %v", name, err)
			}
			b.WriteString(s + "\n")
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", name, err)
		}
	}
	return b.String()
}

func TestRunIsDeterministic(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	cfg := Config{Rate: 400, StatementsPerTx: 5, InitialRows: 5, ToastBytes: 11000, Partitioned: true}
	var dumps, traces []string
	var stats []Stats
	for _, db := range []string{"one", "two"} {
		var trace strings.Builder
		cfg.Trace = &trace
		pool := testenv.Pool(t, pg.CreateDatabase(t, db))
		if _, err := pool.Exec(ctx, "SET TIME ZONE 'UTC'"); err != nil {
			t.Fatal(err)
		}
		g := New(42, cfg)
		if err := g.Setup(ctx, pool); err != nil {
			t.Fatalf("setup: %v", err)
		}
		st, err := g.Run(ctx, pool, 500*time.Millisecond)
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		dumps = append(dumps, dump(t, pool, g))
		traces = append(traces, trace.String())
		stats = append(stats, st)

		if got, want := len(g.Tables()), 7; got != want {
			t.Errorf("tables after run: got %v, want %d", g.Tables(), want)
		}
		checkToast(t, pool, g)
	}
	if dumps[0] != dumps[1] {
		t.Errorf("two runs of seed 42 left different data")
	}
	if traces[0] != traces[1] {
		t.Errorf("two runs of seed 42 traced different statements")
	}
	for _, want := range []string{`tx 0: INSERT INTO "public"."customers"`, `TRUNCATE "public"."sessions", "public"."order_lines"`, `COPY "public"."sessions"`, `…(11000 bytes)`} {
		if !strings.Contains(traces[0], want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	cfg.Trace = nil
	st := stats[0]
	t.Logf("stats: %+v", st)
	if st.Transactions != 200+len(schedule)+6 {
		t.Errorf("transactions: got %d, want %d", st.Transactions, 200+len(schedule)+6)
	}
	if len(st.Events) != len(schedule) {
		t.Errorf("events: got %d, want %d", len(st.Events), len(schedule))
	}
	for name, ts := range st.Tables {
		if ts.Inserts == 0 || ts.Updates == 0 {
			t.Errorf("%s: no inserts or updates: %+v", name, ts)
		}
	}
	for _, name := range []string{"public.customers", "public.order_lines"} {
		if st.Tables[name].KeyChanges == 0 {
			t.Errorf("%s: no key changes", name)
		}
	}
	if st.Tables["public.sessions"].Copied == 0 || st.Tables["public.sessions"].Truncates != 1 {
		t.Errorf("sessions: want rows by COPY and one truncate: %+v", st.Tables["public.sessions"])
	}
	other := New(43, cfg)
	pool := testenv.Pool(t, pg.CreateDatabase(t, "three"))
	if err := other.Setup(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Run(ctx, pool, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if dump(t, pool, other) == dumps[0] {
		t.Errorf("seeds 42 and 43 left the same data")
	}
}

// checkToast asserts the big table's payloads are stored out of line and
// uncompressed, and that the all-types table ends with every edge kind.
func checkToast(t *testing.T, pool *pgxpool.Pool, g *Generator) {
	t.Helper()
	ctx := context.Background()
	var n, external int
	err := pool.QueryRow(ctx, fmt.Sprintf(
		"SELECT count(*), count(*) FILTER (WHERE pg_column_size(payload) >= 10000 AND pg_column_compression(payload) IS NULL) FROM %s",
		QualifiedName(g.Schema(), TableBig))).Scan(&n, &external)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || external != n {
		t.Errorf("big table: %d rows, %d with an uncompressed payload ≥ 10 kB", n, external)
	}
	var cols []string
	rows, err := pool.Query(ctx, "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c string
		_ = rows.Scan(&c)
		cols = append(cols, c)
	}
	if got, want := strings.Join(cols, ","), "id,name,email,score,balance,updated_at,loyalty"; got != want {
		t.Errorf("customers columns after the DDL events: got %s, want %s", got, want)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	pg := testenv.StartPostgres(t)
	pool := testenv.Pool(t, pg.CreateDatabase(t, "w"))
	g := New(1, Config{Rate: 5})
	if err := g.Setup(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	st, err := g.Run(ctx, pool, time.Hour)
	if err == nil {
		t.Fatalf("run of an hour returned no error after cancel")
	}
	if st.Transactions == 0 {
		t.Errorf("no transactions before cancel")
	}
}

// countingLock fails the test when Run nests Lock calls and counts them.
type countingLock struct {
	t      *testing.T
	mu     sync.Mutex
	held   bool
	locked int
}

func (l *countingLock) Lock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held {
		l.t.Error("Lock while held")
	}
	l.held = true
	l.locked++
}

func (l *countingLock) Unlock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = false
}

// Run holds Config.Lock around every transaction and scheduled event.
func TestRunHoldsLockPerTransaction(t *testing.T) {
	pg := testenv.StartPostgres(t)
	pool := testenv.Pool(t, pg.CreateDatabase(t, "w"))
	g := New(3, Config{Rate: 100})
	if err := g.Setup(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	l := &countingLock{t: t}
	before := g.Stats()
	st, err := g.Run(context.Background(), pool, 200*time.Millisecond, WithLock(l))
	if err != nil {
		t.Fatal(err)
	}
	// Transactions counts the events' transactions too.
	txs, events := st.Transactions-before.Transactions, len(st.Events)-len(before.Events)
	if l.locked != txs || events == 0 || l.held {
		t.Errorf("lock taken %d times (held at the end: %v), want once per transaction: %d (%d of them events)", l.locked, l.held, txs, events)
	}
}
