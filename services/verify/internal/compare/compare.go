// Package compare proves a warehouse equal to its source (docs/DESIGN.md
// §8): per table it compares the checksums of key-hash buckets
// (internal/checksum), bisects the buckets that differ down to rows, and
// confirms each difference once the table's applied position has passed
// the source position the difference was read at, so a change still in
// flight is not reported.
//
// Decisions:
//   - Buckets start at BucketDigits hex digits of the key hash (4096 for 3)
//     and split by two digits (256 ways) until a bucket holds at most
//     LeafRows rows on either side; then its rows are read. Only the
//     buckets that differ are read again, so with few differences a table
//     is scanned two or three times per side and almost nothing but
//     checksums crosses the network.
//   - The source is read in REPEATABLE READ; the read's position is
//     pg_current_wal_lsn() taken by the transaction's first statement.
//   - Confirmation: the differing buckets are read again — the source first,
//     at a new position L, then, once the warehouse state's applied
//     position has reached L (or ConfirmTimeout passed), the warehouse. A
//     row is reported when it differs in both reads. A table whose state
//     the warehouse lacks (not loaded by redms), or whose position does not
//     reach L in time (no change arrived since), is still compared; its
//     result says the position was not confirmed.
//   - A keyless table (no primary key, or REPLICA IDENTITY FULL, as the
//     loader keys it by the whole row) compares as a multiset: its buckets
//     are row hashes, a difference is a row with its surplus count.
package compare

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/redms/redms/pkg/service"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/verify/internal/checksum"
)

// Options say what to compare and how.
type Options struct {
	// Tables to compare; empty means every ordinary and partitioned table of
	// the source outside the system schemas (partitions compare as their root).
	Tables []Name
	// Dialect of the warehouse (empty: Postgres).
	Dialect typemap.Dialect
	// Map holds the configurable parts of the type mapping (REDMS_NUMERIC_DEFAULT, …).
	Map typemap.Options
	// TargetSchema holds every target (empty: the source's schema);
	// StateSchema the state tables (empty: public).
	TargetSchema, StateSchema string
	// BucketDigits (default 3) and LeafRows (default 64): see the package doc.
	BucketDigits, LeafRows int
	// MaxDiffs is how many differences a table's result lists (default 1000);
	// the counts are always complete.
	MaxDiffs int
	// ConfirmTimeout bounds each wait for the applied position (default
	// 1m), Poll its polling interval (default 500ms).
	ConfirmTimeout, Poll time.Duration
	// ConfirmRounds is how many times a difference is read again
	// (default 3): a row that changes again and again can differ in one
	// read that caught it in flight, hardly in every one.
	ConfirmRounds int
	// Progress, when set, is told after each table (done of total).
	Progress func(table string, done, total int)

	// beforeConfirm, a test hook, runs before differences are read again.
	beforeConfirm func()
}

func (o *Options) defaults() {
	if o.Dialect == "" {
		o.Dialect = typemap.Postgres
	}
	if o.StateSchema == "" {
		o.StateSchema = "public"
	}
	if o.BucketDigits <= 0 {
		o.BucketDigits = 3
	}
	if o.LeafRows <= 0 {
		o.LeafRows = 64
	}
	if o.MaxDiffs <= 0 {
		o.MaxDiffs = 1000
	}
	if o.ConfirmTimeout <= 0 {
		o.ConfirmTimeout = time.Minute
	}
	if o.ConfirmRounds <= 0 {
		o.ConfirmRounds = 3
	}
	if o.Poll <= 0 {
		o.Poll = 500 * time.Millisecond
	}
}

// Kind says how a row differs.
type Kind string

const (
	Missing Kind = "missing" // in the source, not in the warehouse
	Extra   Kind = "extra"   // in the warehouse, not in the source
	Changed Kind = "changed" // in both, columns differ
)

// Diff is one row that differs.
type Diff struct {
	Kind Kind `json:"kind"`
	// Key holds the key columns' canonical text (every column of a keyless
	// table), nil for NULL.
	Key map[string]*string `json:"key"`
	// Columns that differ (Changed), and their canonical text on each side
	// (the source's after the value rules), cut to 200 bytes.
	Columns   []string           `json:"columns,omitempty"`
	Source    map[string]*string `json:"source,omitempty"`
	Warehouse map[string]*string `json:"warehouse,omitempty"`
	// Count of surplus copies (keyless tables), else 1.
	Count int `json:"count"`

	leaf string // the bucket that holds it
}

// KeyString renders the key as col=value pairs in column order.
func (d Diff) KeyString(cols []string) string {
	var parts []string
	for _, c := range cols {
		if v, ok := d.Key[c]; ok {
			s := "NULL"
			if v != nil {
				s = fmt.Sprintf("%q", *v)
			}
			parts = append(parts, c+"="+s)
		}
	}
	return strings.Join(parts, ", ")
}

// Status of one table.
type Status string

const (
	Equal     Status = "equal"
	Different Status = "different"
	Failed    Status = "error"
)

// TableResult is the outcome for one table.
type TableResult struct {
	Table  string `json:"table"`
	Status Status `json:"status"`
	Error  string `json:"error,omitempty"`
	// Keys are the key columns in order (every column of a keyless table).
	Keys []string `json:"keys"`
	// Keyless: compared as a multiset (no primary key, or REPLICA IDENTITY FULL).
	Keyless bool `json:"keyless,omitempty"`
	// SourceRows and WarehouseRows are the rows counted on each side.
	SourceRows    int64 `json:"source_rows"`
	WarehouseRows int64 `json:"warehouse_rows"`
	// TargetMissing: the warehouse has no such table.
	TargetMissing bool `json:"target_missing,omitempty"`
	// Missing, Extra, Changed count differing rows (after confirmation).
	Missing int `json:"missing"`
	Extra   int `json:"extra"`
	Changed int `json:"changed"`
	// Diffs lists up to Options.MaxDiffs of them, in key hash order.
	Diffs []Diff `json:"diffs,omitempty"`
	// SourceLSN is the source position of the last read; Applied the
	// warehouse state's applied position then ("" when the warehouse has
	// no state for the table); Confirmed whether the differences were read
	// again after Applied passed SourceLSN.
	SourceLSN string `json:"source_lsn"`
	Applied   string `json:"applied_pos,omitempty"`
	Confirmed bool   `json:"confirmed"`
	// Unsettled counts rows that differed but changed in the source during
	// every confirmation read: in flight as far as can be told, not
	// reported as differences.
	Unsettled int `json:"unsettled,omitempty"`
	// Buckets counts the checksum buckets compared, Queries the statements
	// each side ran.
	Buckets int `json:"buckets"`
	Queries int `json:"queries"`
	// Seconds the table took.
	Seconds float64 `json:"seconds"`
}

// Differences is the number of differing rows.
func (r TableResult) Differences() int { return r.Missing + r.Extra + r.Changed }

// Report is the outcome of a run.
type Report struct {
	Tables []TableResult `json:"tables"`
}

// ExitCode is 0 when every table is equal, 2 when one could not be
// compared, else 1.
func (r Report) ExitCode() int {
	code := 0
	for _, t := range r.Tables {
		switch t.Status {
		case Failed:
			return 2
		case Different:
			code = 1
		}
	}
	return code
}

// querier is what catalog reads need: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

var (
	_ querier = (*pgxpool.Pool)(nil)
	_ querier = (pgx.Tx)(nil)
)

// Compare compares source and warehouse table by table. An error is
// returned only when no table can be tried (the source cannot be listed);
// a table that cannot be compared is a Failed result.
func Compare(ctx context.Context, src, wh *pgxpool.Pool, opts Options) (Report, error) {
	opts.defaults()
	var rep Report
	names := opts.Tables
	if len(names) == 0 {
		var err error
		if names, err = listTables(ctx, src); err != nil {
			return rep, err
		}
	}
	c := &comparer{src: src, wh: wh, opts: opts}
	for i, n := range names {
		start := time.Now()
		tr, err := c.table(ctx, n)
		for attempt := 1; attempt < 3 && schemaChanged(err); attempt++ {
			tr, err = c.table(ctx, n) // a column came or went between two reads
		}
		tr.Table = n.String()
		tr.Seconds = time.Since(start).Seconds()
		if err != nil {
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			tr.Status, tr.Error = Failed, err.Error()
		}
		rep.Tables = append(rep.Tables, tr)
		if opts.Progress != nil {
			opts.Progress(n.String(), i+1, len(names))
		}
	}
	return rep, nil
}

type comparer struct {
	src, wh *pgxpool.Pool
	opts    Options
}

// bucket is one bucket's checksum.
type bucket struct {
	count      int64
	sum1, sum2 string
}

// row is one row read from a leaf bucket.
type row struct {
	kh, h string
	vals  []*string
}

func (c *comparer) table(ctx context.Context, n Name) (TableResult, error) {
	var tr TableResult
	t, exists, err := describe(ctx, c.src, c.wh, n, c.opts)
	if err != nil {
		return tr, err
	}
	tr.TargetMissing = !exists
	keyed := t.Keyed()
	tr.Keyless = !keyed
	for _, col := range t.Columns {
		if col.Key || !keyed {
			tr.Keys = append(tr.Keys, col.Name)
		}
	}

	// Level 0: every bucket.
	digits := c.opts.BucketDigits
	var srcB, whB map[string]bucket
	var lsn uint64
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		lsn, srcB, err = c.sourceBuckets(gctx, t, digits, nil)
		return err
	})
	g.Go(func() (err error) {
		whB, err = c.warehouseBuckets(gctx, t, exists, digits, nil)
		return err
	})
	if err := g.Wait(); err != nil {
		return tr, err
	}
	tr.Queries++
	for _, b := range srcB {
		tr.SourceRows += b.count
	}
	for _, b := range whB {
		tr.WarehouseRows += b.count
	}
	tr.Buckets += len(union(srcB, whB))

	// Bisect what differs down to leaves.
	var leaves []string
	differ := differing(srcB, whB)
	for len(differ) > 0 {
		var deeper []string
		for _, p := range differ {
			if max(srcB[p].count, whB[p].count) <= int64(c.opts.LeafRows) || len(p)+2 > checksum.MaxDigits(c.opts.Dialect) {
				leaves = append(leaves, p)
			} else {
				deeper = append(deeper, p)
			}
		}
		if len(deeper) == 0 {
			break
		}
		digits = len(deeper[0]) + 2
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() (err error) {
			_, srcB, err = c.sourceBuckets(gctx, t, digits, deeper)
			return err
		})
		g.Go(func() (err error) {
			whB, err = c.warehouseBuckets(gctx, t, exists, digits, deeper)
			return err
		})
		if err := g.Wait(); err != nil {
			return tr, err
		}
		tr.Queries++
		tr.Buckets += len(union(srcB, whB))
		differ = differing(srcB, whB)
	}

	var diffs []Diff
	if len(leaves) > 0 {
		srcRows, whRows, err := c.leafRows(ctx, t, exists, leaves)
		if err != nil {
			return tr, err
		}
		tr.Queries++
		diffs = diffRows(t, srcRows, whRows)
	}
	tr.SourceLSN = formatLSN(lsn)
	// Confirm: read the differing buckets again, the warehouse once its
	// applied position passed the source read, and the source once more
	// after it. A bucket the two source reads found alike held the same
	// rows all along, so its comparison with the warehouse is exact; one
	// that changed in between is read again next round.
	pending := diffs
	diffs = nil
	for round := 0; round < c.opts.ConfirmRounds && len(pending) > 0; round++ {
		if c.opts.beforeConfirm != nil {
			c.opts.beforeConfirm()
		}
		// The columns may have changed meanwhile (DDL the loader applied).
		if t, exists, err = describe(ctx, c.src, c.wh, n, c.opts); err != nil {
			return tr, err
		}
		leaves := leavesOf(pending)
		src1, at, err := c.sourceRows(ctx, t, leaves)
		if err != nil {
			return tr, err
		}
		confirmed, applied, err := c.waitApplied(ctx, t, at)
		if err != nil {
			return tr, err
		}
		// Applying up to the source read may have added a column to the
		// warehouse: read what it has now, not what it had before the wait.
		if exists, err = markMissing(ctx, c.wh, &t); err != nil {
			return tr, err
		}
		if err := checksum.Check(t); err != nil {
			return tr, err
		}
		wh, err := c.warehouseRows(ctx, t, exists, leaves)
		if err != nil {
			return tr, err
		}
		src2, _, err := c.sourceRows(ctx, t, leaves)
		if err != nil {
			return tr, err
		}
		tr.Queries += 3
		tr.SourceLSN, tr.Confirmed, tr.Applied = formatLSN(at), confirmed, applied
		var next []Diff
		for _, l := range leaves {
			if !confirmed || sameRows(src1[l], src2[l]) {
				diffs = append(diffs, diffRows(t, map[string][]row{l: src1[l]}, map[string][]row{l: wh[l]})...)
				continue
			}
			for _, d := range pending {
				if d.leaf == l {
					next = append(next, d)
				}
			}
		}
		pending = next
		if !confirmed {
			break // the position does not move: reading again would not tell more
		}
	}
	tr.Unsettled = len(pending)
	sort.SliceStable(diffs, func(i, j int) bool { return diffID(diffs[i], t) < diffID(diffs[j], t) })
	if len(diffs) == 0 {
		if _, applied, err := c.waitApplied(ctx, t, 0); err == nil {
			tr.Applied, tr.Confirmed = applied, true
		}
	}
	for _, d := range diffs {
		switch d.Kind {
		case Missing:
			tr.Missing += d.Count
		case Extra:
			tr.Extra += d.Count
		case Changed:
			tr.Changed++
		}
	}
	if len(diffs) > c.opts.MaxDiffs {
		diffs = diffs[:c.opts.MaxDiffs]
	}
	tr.Diffs = diffs
	tr.Status = Equal
	if tr.Differences() > 0 {
		tr.Status = Different
	}
	return tr, nil
}

// chunk is how many bucket prefixes one statement filters on.
const chunk = 500

func chunks(ps []string) [][]string {
	if len(ps) == 0 {
		return [][]string{nil}
	}
	var out [][]string
	for len(ps) > chunk {
		out = append(out, ps[:chunk])
		ps = ps[chunk:]
	}
	return append(out, ps)
}

// readSource runs fn in a REPEATABLE READ transaction on the source and
// returns the position the read is at.
func (c *comparer) readSource(ctx context.Context, fn func(tx pgx.Tx) error) (uint64, error) {
	var lsn uint64
	err := pgx.BeginTxFunc(ctx, c.src, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var s string
		if err := tx.QueryRow(ctx, checksum.CurrentLSN).Scan(&s); err != nil {
			return fmt.Errorf("read source position: %w", err)
		}
		var err error
		if lsn, err = parseLSN(s); err != nil {
			return err
		}
		for _, stmt := range checksum.Session(checksum.Source, typemap.Postgres) {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return fn(tx)
	})
	return lsn, err
}

// readWarehouse runs fn in a read transaction on the warehouse.
func (c *comparer) readWarehouse(ctx context.Context, fn func(tx pgx.Tx) error) error {
	opts := pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}
	if c.opts.Dialect == typemap.Redshift {
		opts = pgx.TxOptions{}
	}
	return pgx.BeginTxFunc(ctx, c.wh, opts, func(tx pgx.Tx) error {
		for _, stmt := range checksum.Session(checksum.Warehouse, c.opts.Dialect) {
			if _, err := tx.Exec(ctx, stmt, pgx.QueryExecModeSimpleProtocol); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return fn(tx)
	})
}

func scanBuckets(ctx context.Context, tx pgx.Tx, sql string, into map[string]bucket) error {
	rows, err := tx.Query(ctx, sql, pgx.QueryExecModeExec)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		var b bucket
		if err := rows.Scan(&p, &b.count, &b.sum1, &b.sum2); err != nil {
			return err
		}
		into[p] = b
	}
	return rows.Err()
}

func (c *comparer) sourceBuckets(ctx context.Context, t checksum.Table, digits int, prefixes []string) (uint64, map[string]bucket, error) {
	out := map[string]bucket{}
	lsn, err := c.readSource(ctx, func(tx pgx.Tx) error {
		for _, ps := range chunks(prefixes) {
			if err := scanBuckets(ctx, tx, checksum.Buckets(checksum.Source, c.opts.Dialect, t, digits, ps), out); err != nil {
				return fmt.Errorf("checksum source buckets: %w", err)
			}
		}
		return nil
	})
	return lsn, out, err
}

func (c *comparer) warehouseBuckets(ctx context.Context, t checksum.Table, exists bool, digits int, prefixes []string) (map[string]bucket, error) {
	out := map[string]bucket{}
	if !exists {
		return out, nil
	}
	err := c.readWarehouse(ctx, func(tx pgx.Tx) error {
		for _, ps := range chunks(prefixes) {
			if err := scanBuckets(ctx, tx, checksum.Buckets(checksum.Warehouse, c.opts.Dialect, t, digits, ps), out); err != nil {
				return fmt.Errorf("checksum warehouse buckets: %w", err)
			}
		}
		return nil
	})
	return out, err
}

func scanRows(ctx context.Context, tx pgx.Tx, sql string, n int, into map[string][]row, digits int) error {
	rows, err := tx.Query(ctx, sql, pgx.QueryExecModeExec)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r := row{vals: make([]*string, n)}
		dest := []any{&r.kh, &r.h}
		for i := range r.vals {
			dest = append(dest, &r.vals[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		p := r.kh[:digits]
		into[p] = append(into[p], r)
	}
	return rows.Err()
}

// sourceRows reads the rows of the leaf buckets from the source, grouped
// by leaf, and the position of the read.
func (c *comparer) sourceRows(ctx context.Context, t checksum.Table, leaves []string) (map[string][]row, uint64, error) {
	out := map[string][]row{}
	lsn, err := c.readSource(ctx, func(tx pgx.Tx) error {
		for n, ls := range byLength(leaves) {
			for _, ps := range chunks(ls) {
				if err := scanRows(ctx, tx, checksum.Rows(checksum.Source, c.opts.Dialect, t, ps), len(t.Columns), out, n); err != nil {
					return fmt.Errorf("read source rows: %w", err)
				}
			}
		}
		return nil
	})
	return out, lsn, err
}

// warehouseRows reads the rows of the leaf buckets from the warehouse.
func (c *comparer) warehouseRows(ctx context.Context, t checksum.Table, exists bool, leaves []string) (map[string][]row, error) {
	out := map[string][]row{}
	if !exists {
		return out, nil
	}
	err := c.readWarehouse(ctx, func(tx pgx.Tx) error {
		for n, ls := range byLength(leaves) {
			for _, ps := range chunks(ls) {
				if err := scanRows(ctx, tx, checksum.Rows(checksum.Warehouse, c.opts.Dialect, t, ps), len(t.Columns), out, n); err != nil {
					return fmt.Errorf("read warehouse rows: %w", err)
				}
			}
		}
		return nil
	})
	return out, err
}

// leafRows reads the rows of the leaf buckets on both sides at once.
func (c *comparer) leafRows(ctx context.Context, t checksum.Table, exists bool, leaves []string) (map[string][]row, map[string][]row, error) {
	var src, wh map[string][]row
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { src, _, err = c.sourceRows(gctx, t, leaves); return err })
	g.Go(func() (err error) { wh, err = c.warehouseRows(gctx, t, exists, leaves); return err })
	return src, wh, g.Wait()
}

func byLength(leaves []string) map[int][]string {
	out := map[int][]string{}
	for _, l := range leaves {
		out[len(l)] = append(out[len(l)], l)
	}
	return out
}

// sameRows reports whether two reads of a leaf found the same rows.
func sameRows(a, b []row) bool {
	if len(a) != len(b) {
		return false
	}
	ha, hb := make([]string, len(a)), make([]string, len(b))
	for i := range a {
		ha[i], hb[i] = a[i].kh+a[i].h, b[i].kh+b[i].h
	}
	sort.Strings(ha)
	sort.Strings(hb)
	return slices.Equal(ha, hb)
}

// waitApplied waits until the warehouse state's applied position of t
// reaches lsn (or ConfirmTimeout passes) and reports whether it did and the
// position it saw. A warehouse without state for t returns at once.
func (c *comparer) waitApplied(ctx context.Context, t checksum.Table, lsn uint64) (bool, string, error) {
	deadline := time.Now().Add(c.opts.ConfirmTimeout)
	sql := "SELECT pos_base, pos FROM " + stateTable(c.opts.StateSchema, t.TargetSchema, t.TargetName)
	for {
		var base int64
		var pos string
		err := c.readWarehouse(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, sql, pgx.QueryExecModeExec).Scan(&base, &pos)
		})
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
		case errors.As(err, &pgErr) && pgErr.Code == "42P01", errors.Is(err, pgx.ErrNoRows):
			return false, "", nil // not loaded by redms: nothing to wait for
		default:
			return false, "", fmt.Errorf("read applied position of %s.%s: %w", t.TargetSchema, t.TargetName, err)
		}
		if uint64(base) >= lsn {
			return true, pos, nil
		}
		if time.Now().After(deadline) {
			return false, pos, nil
		}
		if err := service.Sleep(ctx, c.opts.Poll); err != nil {
			return false, pos, err
		}
	}
}

func union(a, b map[string]bucket) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func differing(a, b map[string]bucket) []string {
	var out []string
	for k := range union(a, b) {
		if a[k] != b[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// diffRows compares the rows of leaf buckets: the differences in key order.
func diffRows(t checksum.Table, src, wh map[string][]row) []Diff {
	keyed := t.Keyed()
	keyOf := func(r row) map[string]*string {
		k := map[string]*string{}
		for i, c := range t.Columns {
			if c.Key || !keyed {
				k[c.Name] = r.vals[i]
			}
		}
		return k
	}
	var out []Diff
	for p := range union(asSet(src), asSet(wh)) {
		var ds []Diff
		if keyed {
			ws := map[string]row{}
			var extra []row
			for _, r := range wh[p] {
				if _, dup := ws[r.kh]; dup {
					extra = append(extra, r) // a key twice in the warehouse
					continue
				}
				ws[r.kh] = r
			}
			for _, s := range src[p] {
				w, ok := ws[s.kh]
				delete(ws, s.kh)
				switch {
				case !ok:
					ds = append(ds, Diff{Kind: Missing, Key: keyOf(s), Count: 1, Columns: nil})
				case w.h != s.h:
					d := Diff{Kind: Changed, Key: keyOf(s), Count: 1, Source: map[string]*string{}, Warehouse: map[string]*string{}}
					for i, c := range t.Columns {
						if !sameValue(s.vals[i], w.vals[i]) {
							d.Columns = append(d.Columns, c.Name)
							d.Source[c.Name], d.Warehouse[c.Name] = clip(s.vals[i]), clip(w.vals[i])
						}
					}
					ds = append(ds, d)
				}
			}
			for _, w := range ws {
				extra = append(extra, w)
			}
			for _, w := range extra {
				ds = append(ds, Diff{Kind: Extra, Key: keyOf(w), Count: 1})
			}
		} else {
			n := map[string]int{}
			rep := map[string]row{}
			for _, s := range src[p] {
				n[s.h]++
				rep[s.h] = s
			}
			for _, w := range wh[p] {
				n[w.h]--
				rep[w.h] = w
			}
			for h, k := range n {
				switch {
				case k > 0:
					ds = append(ds, Diff{Kind: Missing, Key: keyOf(rep[h]), Count: k})
				case k < 0:
					ds = append(ds, Diff{Kind: Extra, Key: keyOf(rep[h]), Count: -k})
				}
			}
		}
		for i := range ds {
			ds[i].leaf = p
		}
		out = append(out, ds...)
	}
	sort.SliceStable(out, func(i, j int) bool { return diffID(out[i], t) < diffID(out[j], t) })
	return out
}

// leavesOf lists the buckets that hold the differences.
func leavesOf(diffs []Diff) []string {
	set := map[string]bool{}
	for _, d := range diffs {
		set[d.leaf] = true
	}
	out := make([]string, 0, len(set))
	for l := range set {
		out = append(out, l)
	}
	sort.Strings(out)
	return out
}

func asSet(m map[string][]row) map[string]bucket {
	s := map[string]bucket{}
	for k := range m {
		s[k] = bucket{}
	}
	return s
}

// clip cuts a value shown in a report.
func clip(v *string) *string {
	if v == nil || len(*v) <= 200 {
		return v
	}
	c := (*v)[:200] + fmt.Sprintf("…(%d bytes)", len(*v))
	return &c
}

func sameValue(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func diffID(d Diff, t checksum.Table) string {
	var b strings.Builder
	b.WriteString(string(d.Kind))
	for _, c := range t.Columns {
		if v, ok := d.Key[c.Name]; ok {
			if v == nil {
				b.WriteString("\x00N")
			} else {
				b.WriteString("\x00v" + *v)
			}
		}
	}
	return b.String()
}

// schemaChanged reports an error of a statement that named a column or
// table that no longer (or not yet) exists: DDL ran between two reads.
func schemaChanged(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42703" || pgErr.Code == "42P01")
}
