package compare

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/verify/internal/checksum"
)

// Name names a table.
type Name struct{ Schema, Table string }

func (n Name) String() string { return n.Schema + "." + n.Table }

// ParseName reads schema.table (public when no schema).
func ParseName(s string) Name {
	schema, table, ok := strings.Cut(s, ".")
	if !ok {
		return Name{Schema: "public", Table: s}
	}
	return Name{Schema: schema, Table: table}
}

const listTablesSQL = `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace ` +
	`WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition ` +
	`AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%' ` +
	`ORDER BY 1, 2`

// sourceColumnsSQL lists a table's columns: name, type as test_decoding
// prints it, declared type, in the primary key, and whether the table's
// replica identity is FULL, and the locale it compares by.
const sourceColumnsSQL = `SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod), ` +
	`COALESCE(a.attnum = ANY (i.indkey), false), c.relreplident = 'f', ` + typemap.CollationSQL + ` ` +
	`FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid ` +
	`LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary ` +
	`WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ` +
	`ORDER BY a.attnum`

const targetColumnsSQL = `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`

func listTables(ctx context.Context, q querier) ([]Name, error) {
	rows, err := q.Query(ctx, listTablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Name, error) {
		var n Name
		err := r.Scan(&n.Schema, &n.Table)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list source tables: %w", err)
	}
	return names, nil
}

// describe builds the checksum.Table of a source table: its columns, their
// target types and which are missing from the warehouse (targetExists false
// when the warehouse has no such table).
func describe(ctx context.Context, src, wh querier, n Name, opts Options) (checksum.Table, bool, error) {
	t := checksum.Table{Schema: n.Schema, Name: n.Table, TargetSchema: n.Schema, TargetName: n.Table}
	if opts.TargetSchema != "" {
		t.TargetSchema = opts.TargetSchema
	}
	rows, err := src.Query(ctx, sourceColumnsSQL, checksum.Ident(n.Schema)+"."+checksum.Ident(n.Table))
	if err != nil {
		return t, false, fmt.Errorf("read source columns: %w", err)
	}
	full := false
	t.Columns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (checksum.Column, error) {
		var c checksum.Column
		var printed, locale string
		err := r.Scan(&c.Name, &printed, &c.Declared, &c.Key, &full, &locale)
		c.Target = typemap.Map(opts.Dialect, typemap.Declared(printed, c.Declared), opts.Map)
		return c, err
	})
	if err != nil {
		return t, false, fmt.Errorf("read source columns: %w", err)
	}
	if len(t.Columns) == 0 {
		return t, false, fmt.Errorf("source table %s has no columns or does not exist", n)
	}
	if full {
		// REPLICA IDENTITY FULL: the loader keys by the whole row.
		for i := range t.Columns {
			t.Columns[i].Key = false
		}
	}
	exists, err := markMissing(ctx, wh, &t)
	if err != nil {
		return t, false, err
	}
	return t, exists, checksum.Check(t)
}

// markMissing marks the columns of t the warehouse table lacks (they read
// as NULL there); exists is false when the table has no columns there.
func markMissing(ctx context.Context, wh querier, t *checksum.Table) (exists bool, err error) {
	rows, err := wh.Query(ctx, targetColumnsSQL, t.TargetSchema, t.TargetName)
	if err != nil {
		return false, fmt.Errorf("read warehouse columns: %w", err)
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("read warehouse columns: %w", err)
	}
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	for i := range t.Columns {
		t.Columns[i].Missing = !set[t.Columns[i].Name]
	}
	return len(have) > 0, nil
}

// stateTable is the warehouse state table of a target
// (docs/CONTRACTS.md "Warehouse state tables").
func stateTable(stateSchema, targetSchema, target string) string {
	sum := sha256.Sum256([]byte(checksum.Ident(targetSchema) + "." + checksum.Ident(target)))
	name := "redms_state_" + hex.EncodeToString(sum[:4]) + "_"
	rest := target
	for len(name)+len(rest) > 127 {
		_, size := utf8.DecodeLastRuneInString(rest)
		rest = rest[:len(rest)-size]
	}
	return checksum.Ident(stateSchema) + "." + checksum.Ident(name+rest)
}

// parseLSN reads Postgres' X/Y text form.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok {
		return 0, fmt.Errorf("parse lsn %q", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse lsn %q: %w", s, err)
	}
	return h<<32 | l, nil
}

func formatLSN(v uint64) string { return fmt.Sprintf("%X/%X", v>>32, uint32(v)) }
