// Package verify compares a replicated source with its warehouse row by row,
// after the value rules of docs/DESIGN.md §5 (pkg/typemap).
//
// For every source table (or the ones asked for) Compare reads each row's
// columns in their text form, computes what the loader must have written —
// typemap.Map of the declared type (numeric(12,2): capture sends it beside
// the type test_decoding names, "numeric"; typemap.Declared), then
// typemap.Fit of the value — and compares that with the target row of the
// same key.
//
// Decisions:
//   - Values are read as their output-function text (format('%s', v)), which
//     is what test_decoding prints, so char(n) keeps its padding. Both sides
//     are read in one transaction each with the source server's default
//     TimeZone (what the WAL sender printed timestamptz values in),
//     DateStyle ISO, IntervalStyle postgres, bytea_output hex.
//   - Numbers compare by value (1.50 = 1.5), floats by their float value, so
//     representation never counts as a difference.
//   - A missing target table is an empty one; a source column missing from
//     the target reads as NULL there; target columns the source lacks are
//     listed but are not differences.
//   - A table without a primary key is keyed by all its columns and compared
//     as a multiset: identical rows count one by one on both sides.
//   - For a Redshift warehouse reached through redms-rsemu, pass the Postgres
//     database behind the emulator as the target.
package verify

import (
	"context"
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/typemap"
)

// Table names one table.
type Table struct{ Schema, Name string }

func (t Table) String() string { return t.Schema + "." + t.Name }

// Options select what Compare compares and how.
type Options struct {
	// Tables to compare; empty means every ordinary and partitioned table
	// (not the partitions) outside the system schemas of the source.
	Tables []Table
	// TargetSchema holds every target table; empty means the source's schema.
	TargetSchema string
	// Dialect of the warehouse; empty means typemap.Postgres.
	Dialect typemap.Dialect
	// Map holds the configurable parts of the type mapping.
	Map typemap.Options
	// MaxDiffs is how many differences to report per table; default 1.
	MaxDiffs int
}

// DiffKind says how a row differs.
type DiffKind string

const (
	Missing DiffKind = "missing" // in the source, not in the target
	Extra   DiffKind = "extra"   // in the target, not in the source
	Changed DiffKind = "changed" // in both, a column differs
)

// Diff is one row that differs.
type Diff struct {
	Table Table
	Kind  DiffKind
	// Key is the row's key, "col=value" pairs joined by ", ".
	Key string
	// Column differs (Changed only).
	Column string
	// Source is the value the target should hold (after the value rules),
	// Target the value it holds; nil is NULL. For Missing and Extra they are
	// the whole row.
	Source, Target *string
	// Raw is the source value before the value rules (Changed only).
	Raw *string
}

func show(s *string) string {
	if s == nil {
		return "NULL"
	}
	v := *s
	if len(v) > 200 {
		v = v[:200] + fmt.Sprintf("…(%d bytes)", len(v))
	}
	return strconv.Quote(v)
}

func (d Diff) String() string {
	switch d.Kind {
	case Changed:
		return fmt.Sprintf("%s key (%s) column %s: source %s (raw %s), target %s",
			d.Table, d.Key, d.Column, show(d.Source), show(d.Raw), show(d.Target))
	case Missing:
		return fmt.Sprintf("%s key (%s): missing from the target; source row %s", d.Table, d.Key, show(d.Source))
	default:
		return fmt.Sprintf("%s key (%s): extra row in the target %s", d.Table, d.Key, show(d.Target))
	}
}

// TableReport is the outcome for one table.
type TableReport struct {
	Table Table
	// Rows is the number of source rows compared; TargetRows the number of
	// target rows read.
	Rows, TargetRows int
	// Missing, Extra and Changed count differing rows.
	Missing, Extra, Changed int
	// TargetMissing is set when the target table does not exist.
	TargetMissing bool
	// ExtraColumns are target columns the source does not have.
	ExtraColumns []string
}

// Report is the outcome of Compare.
type Report struct {
	Tables []TableReport
	// Diffs holds up to Options.MaxDiffs differences per table, tables in
	// order, rows in key order.
	Diffs []Diff
}

// OK reports whether no difference was found.
func (r Report) OK() bool { return len(r.Diffs) == 0 }

// Summary is one line per table: rows compared and differences.
func (r Report) Summary() string {
	var b strings.Builder
	for _, t := range r.Tables {
		fmt.Fprintf(&b, "%-40s rows=%d target_rows=%d missing=%d extra=%d changed=%d", t.Table, t.Rows, t.TargetRows, t.Missing, t.Extra, t.Changed)
		if t.TargetMissing {
			b.WriteString(" (no target table)")
		}
		if len(t.ExtraColumns) > 0 {
			fmt.Fprintf(&b, " extra_columns=%v", t.ExtraColumns)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// Compare compares source and target table by table.
func Compare(ctx context.Context, source, target *pgxpool.Pool, opts Options) (Report, error) {
	if opts.Dialect == "" {
		opts.Dialect = typemap.Postgres
	}
	if opts.MaxDiffs <= 0 {
		opts.MaxDiffs = 1
	}
	var rep Report
	var tz string
	if err := source.QueryRow(ctx, "SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'").Scan(&tz); err != nil {
		return rep, fmt.Errorf("read source time zone: %w", err)
	}
	tables := opts.Tables
	if len(tables) == 0 {
		var err error
		if tables, err = listTables(ctx, source); err != nil {
			return rep, err
		}
	}
	for _, t := range tables {
		tr, diffs, err := compareTable(ctx, source, target, t, tz, opts)
		if err != nil {
			return rep, fmt.Errorf("compare %s: %w", t, err)
		}
		rep.Tables = append(rep.Tables, tr)
		rep.Diffs = append(rep.Diffs, diffs...)
	}
	return rep, nil
}

// column is one source column and the target type the loader makes of it.
type column struct {
	name     string
	pgType   string // as test_decoding names it
	declared string // format_type with the modifier
	target   typemap.Target
	key      bool
}

func compareTable(ctx context.Context, source, target *pgxpool.Pool, t Table, tz string, opts Options) (TableReport, []Diff, error) {
	tr := TableReport{Table: t}
	cols, err := sourceColumns(ctx, source, t)
	if err != nil {
		return tr, nil, err
	}
	if len(cols) == 0 {
		return tr, nil, fmt.Errorf("source table %s has no columns or does not exist", t)
	}
	for i := range cols {
		cols[i].target = typemap.Map(opts.Dialect, typemap.Declared(cols[i].pgType, cols[i].declared), opts.Map)
	}
	tt := Table{Schema: t.Schema, Name: t.Name}
	if opts.TargetSchema != "" {
		tt.Schema = opts.TargetSchema
	}
	have, err := targetColumns(ctx, target, tt)
	if err != nil {
		return tr, nil, err
	}
	tr.TargetMissing = len(have) == 0
	for c := range have {
		found := false
		for _, sc := range cols {
			found = found || sc.name == c
		}
		if !found {
			tr.ExtraColumns = append(tr.ExtraColumns, c)
		}
	}
	sort.Strings(tr.ExtraColumns)

	srcRows, err := readRows(ctx, source, selectSQL(t, cols, nil)+orderByKey(cols), tz)
	if err != nil {
		return tr, nil, fmt.Errorf("read source: %w", err)
	}
	var tgtRows [][]*string
	if !tr.TargetMissing {
		if tgtRows, err = readRows(ctx, target, selectSQL(tt, cols, have), tz); err != nil {
			return tr, nil, fmt.Errorf("read target: %w", err)
		}
	}
	tr.Rows, tr.TargetRows = len(srcRows), len(tgtRows)

	keyOf := func(row []*string) string {
		var parts []string
		for i, c := range cols {
			if c.key {
				v := "NULL"
				if row[i] != nil {
					v = strconv.Quote(*row[i])
				}
				parts = append(parts, c.name+"="+v)
			}
		}
		return strings.Join(parts, ", ")
	}
	// Target rows by key, as a multiset: a keyless table (keyed by all its
	// columns) may hold identical rows, each of which must match one
	// source row; a second row of a key in a keyed table is an extra row.
	byKey := make(map[string][][]*string, len(tgtRows))
	var tgtKeys []string
	for _, row := range tgtRows {
		k := keyOf(row)
		if _, seen := byKey[k]; !seen {
			tgtKeys = append(tgtKeys, k)
		}
		byKey[k] = append(byKey[k], row)
	}
	var diffs []Diff
	add := func(d Diff) {
		if len(diffs) < opts.MaxDiffs {
			diffs = append(diffs, d)
		}
	}
	for _, row := range srcRows {
		k := keyOf(row)
		same := byKey[k]
		if len(same) == 0 {
			tr.Missing++
			add(Diff{Table: t, Kind: Missing, Key: k, Source: str(rowText(cols, row))})
			continue
		}
		trow := same[0]
		byKey[k] = same[1:]
		for i, c := range cols {
			want, null, _ := typemap.Fit(c.target, deref(row[i]), row[i] == nil)
			var wantp *string
			if !null {
				wantp = &want
			}
			if !Equal(c.target.Kind, wantp, trow[i]) {
				tr.Changed++
				add(Diff{Table: t, Kind: Changed, Key: k, Column: c.name, Source: wantp, Target: trow[i], Raw: row[i]})
				break
			}
		}
	}
	sort.Strings(tgtKeys)
	for _, k := range tgtKeys {
		for _, row := range byKey[k] {
			tr.Extra++
			add(Diff{Table: t, Kind: Extra, Key: k, Target: str(rowText(cols, row))})
		}
	}
	return tr, diffs, nil
}

func str(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func rowText(cols []column, row []*string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.name + "=" + show(row[i])
	}
	return strings.Join(parts, " ")
}

// Equal reports whether the value the target should hold (want) and the one
// it holds (got) are the same for a target column of kind k, ignoring
// representation: numbers by value, floats as floats, timestamps without
// trailing zero fractions.
func Equal(k typemap.Kind, want, got *string) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	w, g := *want, *got
	if w == g {
		return true
	}
	switch k {
	case typemap.KindNumeric, typemap.KindSmallInt, typemap.KindInteger, typemap.KindBigInt:
		var a, b big.Rat
		_, ok1 := a.SetString(strings.TrimSpace(w))
		_, ok2 := b.SetString(strings.TrimSpace(g))
		return ok1 && ok2 && a.Cmp(&b) == 0
	case typemap.KindReal, typemap.KindDouble:
		bits := 64
		if k == typemap.KindReal {
			bits = 32
		}
		a, err1 := strconv.ParseFloat(strings.TrimSpace(w), bits)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(g), bits)
		return err1 == nil && err2 == nil && (a == b || (a != a && b != b))
	case typemap.KindTimestamp, typemap.KindTimestampTZ, typemap.KindTime, typemap.KindTimeTZ:
		return trimFraction(w) == trimFraction(g)
	case typemap.KindChar:
		return strings.TrimRight(w, " ") == strings.TrimRight(g, " ")
	}
	return false
}

// trimFraction drops trailing zeros of a seconds fraction ("12:00:00.500" →
// "12:00:00.5", "12:00:00.000" → "12:00:00"), wherever it is in the value.
func trimFraction(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '.' && i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			frac := strings.TrimRight(s[i+1:j], "0")
			if frac != "" {
				b.WriteString("." + frac)
			}
			i = j - 1
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func listTables(ctx context.Context, pool *pgxpool.Pool) ([]Table, error) {
	rows, err := pool.Query(ctx, listTablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Table, error) {
		var t Table
		err := r.Scan(&t.Schema, &t.Name)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	return tables, nil
}

const listTablesSQL = `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ` +
	`WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition ` +
	`AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%' ` +
	`ORDER BY 1, 2`

// sourceColumnsSQL lists a table's columns with their type as test_decoding
// names it (format_type without the modifier), their declared type and
// whether they are in the primary key.
const sourceColumnsSQL = `SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod), ` +
	`COALESCE(a.attnum = ANY (i.indkey), false) ` +
	`FROM pg_attribute a ` +
	`LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary ` +
	`WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ` +
	`ORDER BY a.attnum`

func sourceColumns(ctx context.Context, pool *pgxpool.Pool, t Table) ([]column, error) {
	rows, err := pool.Query(ctx, sourceColumnsSQL, qualified(t))
	if err != nil {
		return nil, fmt.Errorf("read source columns: %w", err)
	}
	cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (column, error) {
		var c column
		err := r.Scan(&c.name, &c.pgType, &c.declared, &c.key)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("read source columns: %w", err)
	}
	keyed := false
	for _, c := range cols {
		keyed = keyed || c.key
	}
	if !keyed {
		for i := range cols {
			cols[i].key = true
		}
	}
	return cols, nil
}

const targetColumnsSQL = `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`

func targetColumns(ctx context.Context, pool *pgxpool.Pool, t Table) (map[string]bool, error) {
	rows, err := pool.Query(ctx, targetColumnsSQL, t.Schema, t.Name)
	if err != nil {
		return nil, fmt.Errorf("read target columns: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read target columns: %w", err)
	}
	have := map[string]bool{}
	for _, n := range names {
		have[n] = true
	}
	return have, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func qualified(t Table) string { return quoteIdent(t.Schema) + "." + quoteIdent(t.Name) }

// selectSQL reads cols of t as output-function text, NULL kept; a column
// missing from have (when have is not nil) reads as NULL.
func selectSQL(t Table, cols []column, have map[string]bool) string {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		if have != nil && !have[c.name] {
			exprs[i] = "NULL::text"
			continue
		}
		q := quoteIdent(c.name)
		exprs[i] = fmt.Sprintf("CASE WHEN %s IS NULL THEN NULL ELSE format('%%s', %s) END", q, q)
	}
	return fmt.Sprintf("SELECT %s FROM %s", strings.Join(exprs, ", "), qualified(t))
}

// orderByKey orders source rows by key in the key columns' own types, so
// the first difference reported is the lowest key.
func orderByKey(cols []column) string {
	var keys []string
	for _, c := range cols {
		if c.key {
			keys = append(keys, quoteIdent(c.name))
		}
	}
	if len(keys) == len(cols) {
		return "" // no primary key: json and the like cannot be ordered
	}
	return " ORDER BY " + strings.Join(keys, ", ")
}

// sessionSQL fixes the settings that shape text output for one transaction.
func sessionSQL(tz string) []string {
	return []string{
		"SET LOCAL TimeZone = '" + strings.ReplaceAll(tz, "'", "''") + "'",
		"SET LOCAL DateStyle = 'ISO, MDY'",
		"SET LOCAL IntervalStyle = 'postgres'",
		"SET LOCAL bytea_output = 'hex'",
		"SET LOCAL extra_float_digits = 1",
	}
}

func readRows(ctx context.Context, pool *pgxpool.Pool, sql, tz string) ([][]*string, error) {
	var out [][]*string
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		for _, s := range sessionSQL(tz) {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		rows, err := tx.Query(ctx, sql)
		if err != nil {
			return err
		}
		n := len(rows.FieldDescriptions())
		for rows.Next() {
			vals := make([]*string, n)
			ptrs := make([]any, n)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				return err
			}
			out = append(out, vals)
		}
		return rows.Err()
	})
	return out, err
}
