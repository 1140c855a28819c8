// Package workload generates a seeded, reproducible stream of writes against
// a Postgres source: the traffic the end-to-end tests, the loader benchmark
// and `make demo` replicate.
//
// A Generator owns a model of the tables it created (their columns and live
// keys), so the statements it runs depend only on the seed and the
// configuration, never on timing or on what the database answers: two runs
// with one seed issue the same statements in the same order.
//
// Setup creates the schema and the first rows; start the replication slot
// before it if those should be replicated too. Run then drives transactions
// of inserts, updates (TOASTed columns mostly left unchanged), deletes and
// primary-key changes at a target rate, and at fixed fractions of the run
// fires scheduled events: a column added, one dropped, one retyped, a table
// created and written to, a multi-table TRUNCATE and a burst of key changes
// that reuses a key freed in the same transaction.
//
// Tables (in Config.Schema): "customers" (the DDL events), "order_lines"
// (composite key), "Order.Items Big" (quoted mixed-case name with a dot and a
// space; ≥ 10 kB incompressible TOASTed text), "all_types" (one column per
// Postgres type the warehouse mapping covers, with edge values: NULL, ”,
// \N, quotes, newlines, huge and non-finite numbers, extreme and infinite
// dates), "sessions" (inserted partly by COPY), "late_arrivals" (created
// mid-run) and, with Config.Partitioned, "measurements" (two leaf partitions).
package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Config shapes the workload. Zero fields take the defaults named.
type Config struct {
	// Schema holds the generated tables; default "public". It must exist.
	Schema string
	// Rate is the target transactions per second of Run; default 10.
	Rate float64
	// StatementsPerTx is the number of row statements per transaction;
	// default 4.
	StatementsPerTx int
	// InitialRows is how many rows Setup inserts into each table; default 10.
	InitialRows int
	// ToastBytes is the size of the TOASTed payload; default 12000 (≥ 10 kB).
	ToastBytes int
	// Partitioned adds the partitioned table "measurements".
	Partitioned bool
	// Logger receives one line per scheduled event; default discards.
	Logger *slog.Logger
	// Trace, when set, receives every statement with its arguments (long
	// values cut), one per line, each prefixed by its transaction's index:
	// what a failing seed did, without re-running it.
	Trace io.Writer
	// Lock, when set, is held around each of Run's transactions and
	// scheduled events: whoever takes it knows that no workload
	// transaction is open (a fault test restarting the database takes it).
	Lock sync.Locker
}

func (c Config) withDefaults() Config {
	if c.Schema == "" {
		c.Schema = "public"
	}
	if c.Rate <= 0 {
		c.Rate = 10
	}
	if c.StatementsPerTx <= 0 {
		c.StatementsPerTx = 4
	}
	if c.InitialRows <= 0 {
		c.InitialRows = 10
	}
	if c.ToastBytes <= 0 {
		c.ToastBytes = 12000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// RunOption adjusts one Run.
type RunOption func(*Config)

// WithRate sets the target transactions per second.
func WithRate(txPerSecond float64) RunOption {
	return func(c *Config) { c.Rate = txPerSecond }
}

// WithStatementsPerTx sets the number of row statements per transaction.
func WithStatementsPerTx(n int) RunOption {
	return func(c *Config) { c.StatementsPerTx = n }
}

// WithLock sets Config.Lock for one Run.
func WithLock(l sync.Locker) RunOption {
	return func(c *Config) { c.Lock = l }
}

// TableStats counts the row statements run against one table.
type TableStats struct {
	Inserts    int
	Updates    int
	Deletes    int
	KeyChanges int
	Truncates  int
	// Copied counts rows inserted by COPY (also counted in Inserts).
	Copied int
}

// Event is a scheduled event that ran.
type Event struct {
	Name string
	// Tx is the index of the transaction of Run before which it ran.
	Tx  int
	SQL []string
}

// Stats is what a Generator did, cumulative over Setup and Run.
type Stats struct {
	Transactions int
	// Tables is keyed by "schema.table", unquoted.
	Tables map[string]TableStats
	Events []Event
}

// Generator produces the workload of one seed. It is not safe for
// concurrent use.
type Generator struct {
	cfg    Config
	rnd    *rand.Rand
	tables []*table
	// pending tables are created by a scheduled event.
	pending map[string]*table
	stats   Stats
	setup   bool
}

// New returns the generator of seed.
func New(seed int64, cfg Config) *Generator {
	cfg = cfg.withDefaults()
	g := &Generator{
		cfg:     cfg,
		rnd:     rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15)),
		pending: map[string]*table{TableLate: late()},
		stats:   Stats{Tables: map[string]TableStats{}},
	}
	g.tables = []*table{customers(), orderLines(), bigItems(cfg.ToastBytes), allTypes(), sessions()}
	if cfg.Partitioned {
		g.tables = append(g.tables, measurements())
	}
	return g
}

// Schema is the schema that holds the generated tables.
func (g *Generator) Schema() string { return g.cfg.Schema }

// Tables are the names of the tables that exist now (after Setup, and
// growing when Run creates one), without schema, in creation order.
func (g *Generator) Tables() []string {
	names := make([]string, len(g.tables))
	for i, t := range g.tables {
		names[i] = t.name
	}
	return names
}

// AllTables are the names of every table the generator may create, so a
// caller can list them before Run has created the late ones.
func (g *Generator) AllTables() []string {
	names := g.Tables()
	for name := range g.pending {
		names = append(names, name)
	}
	sort.Strings(names[len(g.tables):])
	return names
}

// Stats returns a copy of the counts so far.
func (g *Generator) Stats() Stats {
	s := Stats{Transactions: g.stats.Transactions, Tables: map[string]TableStats{}}
	for k, v := range g.stats.Tables {
		s.Tables[k] = v
	}
	s.Events = append(s.Events, g.stats.Events...)
	return s
}

// Setup creates the enum type and the tables, then inserts
// Config.InitialRows rows into each table, in one transaction per table.
func (g *Generator) Setup(ctx context.Context, pool *pgxpool.Pool) error {
	if g.setup {
		return errors.New("workload setup: already done")
	}
	if _, err := pool.Exec(ctx, createEnumSQL(g.cfg.Schema)); err != nil {
		return fmt.Errorf("create enum type: %w", err)
	}
	for _, t := range g.tables {
		for _, stmt := range createTableSQL(g.cfg.Schema, t) {
			if _, err := pool.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("create table %s: %w", t.name, err)
			}
		}
	}
	for _, t := range g.tables {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for range g.cfg.InitialRows {
				if err := g.insert(ctx, tx, t, t.nextKey()); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("insert initial rows: %w", err)
		}
		g.stats.Transactions++
	}
	g.setup = true
	return nil
}

// schedule is when each event runs, as a fraction of Run's transactions.
var schedule = []struct {
	at   float64
	name string
}{
	{0.15, "add-column"},
	{0.25, "create-table"},
	{0.35, "drop-column"},
	{0.45, "retype-column"},
	{0.55, "truncate"},
	{0.65, "key-changes"},
	{0.75, "toast-updates"},
}

// Run runs round(rate × d) transactions paced at the rate, firing the
// scheduled events at their fractions, and returns the cumulative Stats.
// A slow database stretches the run beyond d; the statements stay the same.
// Cancelling ctx stops the run early with ctx's error.
func (g *Generator) Run(ctx context.Context, pool *pgxpool.Pool, d time.Duration, opts ...RunOption) (Stats, error) {
	if !g.setup {
		return g.Stats(), errors.New("workload run: Setup first")
	}
	cfg := g.cfg
	for _, o := range opts {
		o(&cfg)
	}
	n := max(int(cfg.Rate*d.Seconds()+0.5), len(schedule)+1)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	lock, unlock := func() {}, func() {}
	if cfg.Lock != nil {
		lock, unlock = cfg.Lock.Lock, cfg.Lock.Unlock
	}
	start := time.Now()
	next := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := range n {
		for next < len(schedule) && int(schedule[next].at*float64(n)) <= i {
			lock()
			err := g.event(ctx, pool, schedule[next].name, i)
			unlock()
			if err != nil {
				return g.Stats(), fmt.Errorf("workload event %s: %w", schedule[next].name, err)
			}
			next++
		}
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return g.Stats(), ctx.Err()
			case <-timer.C:
			}
		}
		lock()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for range cfg.StatementsPerTx {
				if err := g.statement(ctx, tx); err != nil {
					return err
				}
			}
			return nil
		})
		unlock()
		if err != nil {
			return g.Stats(), fmt.Errorf("workload transaction %d: %w", i, err)
		}
		g.stats.Transactions++
	}
	return g.Stats(), nil
}

var weights = map[string]int{
	TableCustomers: 3, TableOrderLines: 3, TableBig: 2, TableAllTypes: 3,
	TableSessions: 2, TableLate: 2, TableMeasures: 2,
}

func (g *Generator) pickTable() *table {
	total := 0
	for _, t := range g.tables {
		total += weights[t.name]
	}
	n := g.rnd.IntN(total)
	for _, t := range g.tables {
		n -= weights[t.name]
		if n < 0 {
			return t
		}
	}
	return g.tables[len(g.tables)-1]
}

// statement runs one random row statement.
func (g *Generator) statement(ctx context.Context, tx pgx.Tx) error {
	t := g.pickTable()
	p := g.rnd.Float64()
	switch {
	case t.live.len() < 3 || p < 0.40:
		if t.copyInserts && g.rnd.IntN(2) == 0 {
			return g.copyRows(ctx, tx, t, 1+g.rnd.IntN(5))
		}
		return g.insert(ctx, tx, t, t.nextKey())
	case p < 0.75:
		return g.update(ctx, tx, t, t.live.pick(g.rnd))
	case p < 0.90:
		return g.delete(ctx, tx, t, t.live.pick(g.rnd))
	case p < 0.95:
		return g.rekey(ctx, tx, t, t.live.pick(g.rnd), nil)
	case len(t.deleted) > 0:
		// Re-insert a deleted key: delete-then-insert of one key.
		i := g.rnd.IntN(len(t.deleted))
		k := t.deleted[i]
		t.deleted = append(t.deleted[:i], t.deleted[i+1:]...)
		if t.live.has(k) {
			return g.update(ctx, tx, t, k)
		}
		return g.insert(ctx, tx, t, k)
	default:
		return g.insert(ctx, tx, t, t.nextKey())
	}
}

// exec runs one statement of the current transaction, tracing it.
func (g *Generator) exec(ctx context.Context, tx pgx.Tx, sql string, args ...any) (pgconn.CommandTag, error) {
	if g.cfg.Trace != nil {
		vals := make([]string, len(args))
		for i, a := range args {
			vals[i] = traceValue(a)
		}
		g.trace(sql, strings.Join(vals, ", "))
	}
	return tx.Exec(ctx, sql, args...)
}

func (g *Generator) trace(sql, args string) {
	if g.cfg.Trace != nil {
		fmt.Fprintf(g.cfg.Trace, "tx %d: %s -- %s\n", g.stats.Transactions, sql, strconv.Quote(args))
	}
}

func traceValue(a any) string {
	s, ok := a.(string)
	if !ok {
		return "NULL"
	}
	if len(s) > 60 {
		return strconv.Quote(s[:60]) + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return strconv.Quote(s)
}

func (g *Generator) count(t *table, f func(*TableStats)) {
	name := g.cfg.Schema + "." + t.name
	s := g.stats.Tables[name]
	f(&s)
	g.stats.Tables[name] = s
}

func keyArgs(k key) []any {
	args := make([]any, len(k))
	for i, v := range k {
		args[i] = strconv.FormatInt(v, 10)
	}
	return args
}

func valueArgs(vals []*string) []any {
	args := make([]any, len(vals))
	for i, v := range vals {
		if v == nil {
			args[i] = nil
		} else {
			args[i] = *v
		}
	}
	return args
}

func (g *Generator) draw(cols []column) []*string {
	vals := make([]*string, len(cols))
	for i, c := range cols {
		vals[i] = c.gen(g.rnd)
	}
	return vals
}

func (g *Generator) insert(ctx context.Context, tx pgx.Tx, t *table, k key) error {
	args := append(keyArgs(k), valueArgs(g.draw(t.cols))...)
	if _, err := g.exec(ctx, tx, insertSQL(g.cfg.Schema, t, t.cols), args...); err != nil {
		return fmt.Errorf("insert into %s key %s: %w", t.name, k, err)
	}
	t.live.add(k)
	g.count(t, func(s *TableStats) { s.Inserts++ })
	return nil
}

// update sets a random non-empty subset of the non-key columns; sticky
// (TOASTed) columns are included only one time in ten.
func (g *Generator) update(ctx context.Context, tx pgx.Tx, t *table, k key) error {
	var cols []column
	for _, c := range t.cols {
		if c.sticky && g.rnd.IntN(10) != 0 {
			continue
		}
		if g.rnd.IntN(3) == 0 {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 {
		for _, c := range t.cols {
			if !c.sticky {
				cols = append(cols, c)
				break
			}
		}
	}
	args := append(valueArgs(g.draw(cols)), keyArgs(k)...)
	if _, err := g.exec(ctx, tx, updateSQL(g.cfg.Schema, t, cols), args...); err != nil {
		return fmt.Errorf("update %s key %s: %w", t.name, k, err)
	}
	g.count(t, func(s *TableStats) { s.Updates++ })
	return nil
}

func (g *Generator) delete(ctx context.Context, tx pgx.Tx, t *table, k key) error {
	if _, err := g.exec(ctx, tx, deleteSQL(g.cfg.Schema, t), keyArgs(k)...); err != nil {
		return fmt.Errorf("delete from %s key %s: %w", t.name, k, err)
	}
	t.live.remove(k)
	if len(t.deleted) < 100 {
		t.deleted = append(t.deleted, k)
	}
	g.count(t, func(s *TableStats) { s.Deletes++ })
	return nil
}

// rekey moves the row at k to to, or to a fresh key when to is nil.
func (g *Generator) rekey(ctx context.Context, tx pgx.Tx, t *table, k, to key) error {
	if to == nil {
		to = t.movedKey(k)
	}
	args := append(keyArgs(to), keyArgs(k)...)
	if _, err := g.exec(ctx, tx, rekeySQL(g.cfg.Schema, t), args...); err != nil {
		return fmt.Errorf("change key of %s from %s to %s: %w", t.name, k, to, err)
	}
	t.live.remove(k)
	t.live.add(to)
	g.count(t, func(s *TableStats) { s.KeyChanges++ })
	return nil
}

// copyRows inserts n new rows with one COPY, which Postgres logs as one
// multi-insert WAL record.
func (g *Generator) copyRows(ctx context.Context, tx pgx.Tx, t *table, n int) error {
	var data strings.Builder
	keys := make([]key, n)
	for i := range keys {
		keys[i] = t.nextKey()
		fields := make([]string, 0, len(keys[i])+len(t.cols))
		for _, v := range keys[i] {
			fields = append(fields, strconv.FormatInt(v, 10))
		}
		for _, v := range g.draw(t.cols) {
			fields = append(fields, copyText(v))
		}
		data.WriteString(strings.Join(fields, "\t"))
		data.WriteByte('\n')
	}
	g.trace(copySQL(g.cfg.Schema, t), data.String())
	if _, err := tx.Conn().PgConn().CopyFrom(ctx, strings.NewReader(data.String()), copySQL(g.cfg.Schema, t)); err != nil {
		return fmt.Errorf("copy into %s: %w", t.name, err)
	}
	for _, k := range keys {
		t.live.add(k)
	}
	g.count(t, func(s *TableStats) { s.Inserts += n; s.Copied += n })
	return nil
}

func copySQL(schema string, t *table) string {
	names := make([]string, 0, len(t.keyCols)+len(t.cols))
	for _, k := range t.keyCols {
		names = append(names, QuoteIdent(k))
	}
	for _, c := range t.cols {
		names = append(names, QuoteIdent(c.name))
	}
	return fmt.Sprintf("COPY %s (%s) FROM STDIN", QualifiedName(schema, t.name), strings.Join(names, ", "))
}

// copyText is a value in COPY's text format.
func copyText(v *string) string {
	if v == nil {
		return `\N`
	}
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(*v)
}

func (g *Generator) find(name string) *table {
	for _, t := range g.tables {
		if t.name == name {
			return t
		}
	}
	return nil
}

// event runs one scheduled event in its own transaction, together with the
// writes that make the change visible in the replication stream.
func (g *Generator) event(ctx context.Context, pool *pgxpool.Pool, name string, at int) error {
	schema := g.cfg.Schema
	var stmts []string
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		exec := func(sql string) error {
			stmts = append(stmts, sql)
			_, err := g.exec(ctx, tx, sql)
			return err
		}
		cust := g.find(TableCustomers)
		switch name {
		case "add-column":
			c := column{name: "loyalty", sqlType: "text", gen: edgeOr(0.3, textEdges, word(2, 8))}
			if err := exec(addColumnSQL(schema, cust.name, c)); err != nil {
				return err
			}
			cust.cols = append(cust.cols, c)
			return g.touch(ctx, tx, cust)
		case "create-table":
			t := g.pending[TableLate]
			for _, sql := range createTableSQL(schema, t) {
				if err := exec(sql); err != nil {
					return err
				}
			}
			g.tables = append(g.tables, t)
			delete(g.pending, TableLate)
			for range 3 {
				if err := g.insert(ctx, tx, t, t.nextKey()); err != nil {
					return err
				}
			}
			return nil
		case "drop-column":
			if err := exec(dropColumnSQL(schema, cust.name, "nickname")); err != nil {
				return err
			}
			i := cust.column("nickname")
			cust.cols = append(cust.cols[:i], cust.cols[i+1:]...)
			return g.touch(ctx, tx, cust)
		case "retype-column":
			if err := exec(retypeColumnSQL(schema, cust.name, "score", "bigint")); err != nil {
				return err
			}
			i := cust.column("score")
			cust.cols[i].sqlType = "bigint"
			cust.cols[i].gen = edgeOr(0.3, bigintEdges, intIn(-1e15, 1e15))
			return g.touch(ctx, tx, cust)
		case "truncate":
			if err := exec(truncateSQL(schema, TableSessions, TableOrderLines)); err != nil {
				return err
			}
			for _, n := range []string{TableSessions, TableOrderLines} {
				t := g.find(n)
				t.live.clear()
				t.deleted = nil
				g.count(t, func(s *TableStats) { s.Truncates++ })
			}
			for _, n := range []string{TableSessions, TableOrderLines} {
				t := g.find(n)
				if err := g.insert(ctx, tx, t, t.nextKey()); err != nil {
					return err
				}
			}
			return nil
		case "key-changes":
			// Move a row away, then move another row onto the freed key.
			for _, t := range []*table{cust, g.find(TableOrderLines)} {
				for t.live.len() < 2 {
					if err := g.insert(ctx, tx, t, t.nextKey()); err != nil {
						return err
					}
				}
				a, b := t.live.keys[0], t.live.keys[1]
				if err := g.rekey(ctx, tx, t, a, nil); err != nil {
					return err
				}
				if err := g.rekey(ctx, tx, t, b, a); err != nil {
					return err
				}
			}
			return nil
		case "toast-updates":
			big := g.find(TableBig)
			for _, k := range append([]key{}, big.live.keys...) {
				if err := g.update(ctx, tx, big, k); err != nil {
					return err
				}
			}
			return nil
		}
		return fmt.Errorf("unknown event %q", name)
	})
	if err != nil {
		return err
	}
	g.stats.Transactions++
	g.stats.Events = append(g.stats.Events, Event{Name: name, Tx: at, SQL: stmts})
	g.cfg.Logger.Info("workload event", "event", name, "tx", at)
	return nil
}

// touch inserts one row and updates another, so a column change shows in
// the stream right away.
func (g *Generator) touch(ctx context.Context, tx pgx.Tx, t *table) error {
	if t.live.len() > 0 {
		if err := g.update(ctx, tx, t, t.live.pick(g.rnd)); err != nil {
			return err
		}
	}
	return g.insert(ctx, tx, t, t.nextKey())
}
