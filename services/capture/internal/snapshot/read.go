package snapshot

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
)

// Querier is what reading a table needs of the source (a pgxpool.Pool).
type Querier interface {
	rowsQuerier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// rowsQuerier runs a query (a pool, or the transaction a chunk is read in).
type rowsQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// column is one live column of the table as test_decoding prints it.
type column struct {
	name     string
	typ      string // format_type_be: what test_decoding prints
	declared string // format_type with the modifier
	oid      uint32
	// sort is what a key is ordered and bounded by, bound the type a
	// bound is cast to (typemap.SortKey): the warehouse's order, which
	// the range replace of a chunk compares in.
	sort, bound string
}

// sortsItself reports whether a key of c is ordered by the column itself,
// so that an index on it serves a chunk's read.
func (c column) sortsItself() bool { return c.sort == testdecoding.QuoteIdentifier(c.name) }

// ColumnsSQL lists a table's live columns in attribute order, with the
// locale each compares by; $1 is the quoted qualified name.
const ColumnsSQL = `SELECT a.attname::text, format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod), a.atttypid::int8, ` +
	typemap.CollationSQL + `
FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`

// EstimateSQL is the planner's row estimate of a table and its partitions.
const EstimateSQL = `SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::int8
FROM pg_partition_tree($1::regclass) t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf`

func readColumns(ctx context.Context, q Querier, t testdecoding.Table) ([]column, error) {
	rows, err := q.Query(ctx, ColumnsSQL, t.String())
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		var oid int64
		var locale string
		if err := rows.Scan(&c.name, &c.typ, &c.declared, &oid, &locale); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", t, err)
		}
		c.oid = uint32(oid)
		c.sort, c.bound, _ = typemap.SortKey(testdecoding.QuoteIdentifier(c.name), c.declared, locale)
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", t, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("read columns of %s: the table has none", t)
	}
	return cols, nil
}

func estimate(ctx context.Context, q Querier, t testdecoding.Table) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, EstimateSQL, t.String()).Scan(&n); err != nil {
		return 0, fmt.Errorf("estimate rows of %s: %w", t, err)
	}
	return n, nil
}

// ChunkSQL selects the next chunk: the key columns' text, then every
// column's, of the rows after the cursor ($1.. one per key column, absent
// on the first chunk) and, with upto, at or before a range's end (the next
// parameters, one per key column) in key order, at most limit of them;
// where (may be empty) filters rows. keys index cols. Key order is the
// warehouse's (column.sort): a chunk's range must hold there exactly the
// keys it held here, or its range replace deletes rows of other chunks.
func ChunkSQL(t testdecoding.Table, cols []column, keys []int, after, upto bool, where string, limit int) string {
	var b strings.Builder
	b.WriteString("SELECT ")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(testdecoding.QuoteIdentifier(cols[k].name) + "::text AS k" + strconv.Itoa(i))
	}
	// Aliased: ORDER BY a column's name must mean the column, not its
	// text (which sorts 10 before 9).
	for i, c := range cols {
		if len(keys) > 0 || i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(valueText(c) + " AS c" + strconv.Itoa(i))
	}
	b.WriteString(" FROM " + t.String())
	var conds []string
	param := 0
	bound := func(op string) {
		var l, r []string
		for _, k := range keys {
			param++
			l = append(l, cols[k].sort)
			r = append(r, "$"+strconv.Itoa(param)+"::"+cols[k].bound)
		}
		conds = append(conds, "("+strings.Join(l, ", ")+") "+op+" ("+strings.Join(r, ", ")+")")
	}
	if after {
		bound(">")
	}
	if upto {
		bound("<=")
	}
	if where != "" {
		conds = append(conds, "("+where+")")
	}
	if len(conds) > 0 {
		b.WriteString(" WHERE " + strings.Join(conds, " AND "))
	}
	if len(keys) > 0 {
		b.WriteString(" ORDER BY ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(cols[k].sort)
		}
	}
	b.WriteString(" LIMIT " + strconv.Itoa(limit))
	return b.String()
}

// valueText is the SQL of c's value as test_decoding prints it (the type's
// output function): ::text, except for char(n), whose cast to text strips
// the blank padding test_decoding keeps.
func valueText(c column) string {
	if c.oid == oidBpchar {
		return "textin(bpcharout(" + testdecoding.QuoteIdentifier(c.name) + "))"
	}
	return testdecoding.QuoteIdentifier(c.name) + "::text"
}

// VisibilitySQL reads the snapshot of the transaction it runs in: its
// xmax and its in-progress transactions, as test_decoding numbers them
// (without the epoch).
const VisibilitySQL = `SELECT (pg_snapshot_xmax(s)::text::bigint % 4294967296)::bigint,
coalesce((SELECT array_agg((x::text::bigint % 4294967296)::bigint) FROM pg_snapshot_xip(s) x), '{}')
FROM pg_current_snapshot() s`

// visibility is what a read's snapshot does not see: the transactions in
// progress when it was taken (xip) and every one from xmax on.
type visibility struct {
	xmax uint32
	xip  map[uint32]bool
}

// invisible reports whether the snapshot does not see xid's changes.
func (v *visibility) invisible(xid uint32) bool {
	return v.xip[xid] || int32(xid-v.xmax) >= 0
}

// readChunk reads up to limit rows after the cursor (nil: from the start)
// and at or before upto (nil: to the end), rendered as test_decoding
// INSERTs of table t, in a REPEATABLE READ transaction, and returns what
// that transaction's snapshot did not see: a transaction whose commit the
// stream shows before the chunk's low watermark may have committed without
// being visible yet to the read (Postgres makes a commit visible after it
// writes its WAL record); then the chunk holds rows older than the
// stream's and must be read again (Coordinator).
func readChunk(ctx context.Context, q Querier, t testdecoding.Table, cols []column, keys []int, cursor, upto walheader.Key, where string, limit int) ([]row, walheader.Key, *visibility, error) {
	tx, err := q.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read chunk of %s: %w", t, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var xmax int64
	var xip []int64
	if err := tx.QueryRow(ctx, VisibilitySQL).Scan(&xmax, &xip); err != nil {
		return nil, nil, nil, fmt.Errorf("read chunk of %s: its snapshot: %w", t, err)
	}
	vis := &visibility{xmax: uint32(xmax), xip: make(map[uint32]bool, len(xip))}
	for _, x := range xip {
		vis.xip[uint32(x)] = true
	}
	rows, last, err := readRows(ctx, tx, t, cols, keys, cursor, upto, where, limit)
	return rows, last, vis, err
}

func readRows(ctx context.Context, q rowsQuerier, t testdecoding.Table, cols []column, keys []int, cursor, upto walheader.Key, where string, limit int) ([]row, walheader.Key, error) {
	args := make([]any, 0, 2*len(keys))
	for _, k := range []walheader.Key{cursor, upto} {
		for _, v := range k {
			if v == nil {
				args = append(args, nil)
			} else {
				args = append(args, *v)
			}
		}
	}
	rows, err := q.Query(ctx, ChunkSQL(t, cols, keys, cursor != nil, upto != nil, where, limit), args...)
	if err != nil {
		return nil, nil, fmt.Errorf("read chunk of %s: %w", t, err)
	}
	defer rows.Close()
	var (
		out  []row
		last walheader.Key
		rec  = testdecoding.Record{Kind: testdecoding.KindInsert, Table: t, Columns: make([]testdecoding.Column, len(cols))}
		vals = make([]*string, len(keys)+len(cols))
		dst  = make([]any, len(vals))
	)
	for i := range vals {
		dst[i] = &vals[i]
	}
	for rows.Next() {
		for i := range vals {
			vals[i] = nil
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, nil, fmt.Errorf("read chunk of %s: %w", t, err)
		}
		key := make(walheader.Key, len(keys))
		copy(key, vals[:len(keys)])
		for i, c := range cols {
			rec.Columns[i] = literal(c, vals[len(keys)+i])
		}
		out = append(out, row{key: encodeKey(key), vals: key, text: testdecoding.Render(rec)})
		last = key
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read chunk of %s: %w", t, err)
	}
	return out, last, nil
}

// Type OIDs test_decoding prints without quotes (print_literal).
const (
	oidBool    = 16
	oidInt8    = 20
	oidInt2    = 21
	oidInt4    = 23
	oidOID     = 26
	oidFloat4  = 700
	oidFloat8  = 701
	oidBit     = 1560
	oidVarbit  = 1562
	oidNumeric = 1700
	oidBpchar  = 1042
)

// literal is a column value as test_decoding prints it.
func literal(c column, v *string) testdecoding.Column {
	col := testdecoding.Column{Name: c.name, Type: c.typ}
	switch {
	case v == nil:
		col.Null = true
	case c.oid == oidInt2 || c.oid == oidInt4 || c.oid == oidInt8 || c.oid == oidOID ||
		c.oid == oidFloat4 || c.oid == oidFloat8 || c.oid == oidNumeric:
		col.Value = *v
	case c.oid == oidBool:
		col.Value = map[bool]string{true: "true", false: "false"}[*v == "true"]
	case c.oid == oidBit || c.oid == oidVarbit:
		col.Value = "B'" + *v + "'"
	default:
		col.Value, col.Quoted = *v, true
	}
	return col
}
