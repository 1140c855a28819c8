// Package catalog looks up, on a normal connection to the source, what capture
// needs to know about a table: its key columns, where they come from, and the
// root of the partition tree it belongs to.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Key sources, as sent in the Redms-Key-Source header.
const (
	SourcePrimaryKey          = "primary-key"
	SourceReplicaIdentityFull = "replica-identity-full"
	SourceConfig              = "config"
	SourceDefault             = "default"
	SourceNone                = "none"
)

// Name is a schema-qualified table name, unquoted.
type Name struct {
	Schema, Table string
}

func (n Name) String() string { return n.Schema + "." + n.Table }

// Info is what the catalog says about one table.
type Info struct {
	Found     bool     // false when no such table exists (any more)
	Keys      []string // key column names in key order; empty when none
	KeySource string
	Root      Name // partition root; equal to the table itself when not a partition
	Columns   []string
}

// InfoSQL is the one query behind Lookup: $1 schema, $2 table name.
// Key columns are the primary key's in index order; the columns are the
// table's live columns in attribute order; the root is pg_partition_root.
const InfoSQL = `SELECT c.relreplident::text,
 COALESCE((SELECT array_agg(a.attname::text ORDER BY k.ord)
   FROM pg_index i
   CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
   WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS pk,
 COALESCE((SELECT array_agg(a.attname::text ORDER BY a.attnum)
   FROM pg_attribute a
   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}') AS cols,
 rn.nspname::text, r.relname::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class r ON r.oid = COALESCE(pg_partition_root(c.oid), c.oid)
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`

// Querier is the part of a pgx pool or connection Lookup uses.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Lookup reads the catalog entry of one table.
func Lookup(ctx context.Context, q Querier, t Name) (Info, error) {
	var (
		ident      string
		pk, cols   []string
		rs, rtable string
	)
	err := q.QueryRow(ctx, InfoSQL, t.Schema, t.Table).Scan(&ident, &pk, &cols, &rs, &rtable)
	if errors.Is(err, pgx.ErrNoRows) {
		return Info{Root: t, KeySource: SourceNone, Keys: []string{}}, nil
	}
	if err != nil {
		return Info{}, fmt.Errorf("look up table %s: %w", t, err)
	}
	info := Info{Found: true, Root: Name{Schema: rs, Table: rtable}, Columns: cols}
	switch {
	case len(pk) > 0:
		info.Keys, info.KeySource = pk, SourcePrimaryKey
	case ident == "f":
		info.Keys, info.KeySource = cols, SourceReplicaIdentityFull
	default:
		info.Keys, info.KeySource = []string{}, SourceNone
	}
	return info, nil
}

// TableKeys is the REDMS_TABLE_KEYS setting: configured key columns per table.
type TableKeys map[Name][]string

// ParseTableKeys parses `public.orders=id;public.lines=order_id,line`.
func ParseTableKeys(s string) (TableKeys, error) {
	tk := TableKeys{}
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		table, cols, ok := strings.Cut(item, "=")
		schema, name, dot := strings.Cut(strings.TrimSpace(table), ".")
		if !ok || !dot || schema == "" || name == "" {
			return nil, fmt.Errorf("parse table keys %q: want schema.table=col[,col]", item)
		}
		var keys []string
		for _, c := range strings.Split(cols, ",") {
			if c = strings.TrimSpace(c); c != "" {
				keys = append(keys, c)
			}
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("parse table keys %q: no columns", item)
		}
		tk[Name{Schema: schema, Table: name}] = keys
	}
	return tk, nil
}
