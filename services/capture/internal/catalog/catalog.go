// Package catalog looks up, on a normal connection to the source, what capture
// needs to know about a table: its key columns, where they come from, and the
// root of the partition tree it belongs to.
package catalog

import (
	"context"
	"errors"
	"fmt"

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
	// Types maps each column whose declared type has a modifier to that
	// type (format_type): numeric(10,2), character varying(20), ...; nil
	// when none has.
	Types map[string]string
	// Missing maps each column that existing rows hold without WAL (added
	// with a constant default: atthasmissing) to that value in text form,
	// nil for NULL; nil when there is none.
	Missing map[string]*string
}

// InfoSQL is the one query behind Lookup: $1 schema, $2 table name.
// Key columns are the primary key's in index order; the columns are the
// table's live columns in attribute order, with the declared type of those
// whose type has a modifier and the missing value of those that have one;
// the root is pg_partition_root.
const InfoSQL = `SELECT c.relreplident::text, pk.keys, col.names, col.types, col.has_missing, col.missing,
 rn.nspname::text, r.relname::text
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT COALESCE(array_agg(a.attname::text ORDER BY k.ord), '{}') AS keys
   FROM pg_index i
   CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
   JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
   WHERE i.indrelid = c.oid AND i.indisprimary) pk
CROSS JOIN LATERAL (SELECT COALESCE(array_agg(a.attname::text ORDER BY a.attnum), '{}') AS names,
   COALESCE(array_agg(CASE WHEN a.atttypmod >= 0 THEN format_type(a.atttypid, a.atttypmod) END ORDER BY a.attnum), '{}') AS types,
   COALESCE(array_agg(a.atthasmissing ORDER BY a.attnum), '{}') AS has_missing,
   COALESCE(array_agg(CASE WHEN a.atthasmissing AND a.attmissingval::text <> '{NULL}'
     THEN array_to_string(a.attmissingval, '') END ORDER BY a.attnum), '{}') AS missing
   FROM pg_attribute a
   WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) col
JOIN pg_class r ON r.oid = COALESCE(pg_partition_root(c.oid), c.oid)
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`

// Querier is the part of a pgx pool or connection Lookup uses.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Lookup reads the catalog entry of one table.
func Lookup(ctx context.Context, q Querier, t Name) (Info, error) {
	var (
		ident      string
		pk, cols   []string
		types      []*string
		hasMissing []bool
		missing    []*string
		rs, rtable string
	)
	err := q.QueryRow(ctx, InfoSQL, t.Schema, t.Table).Scan(&ident, &pk, &cols, &types, &hasMissing, &missing, &rs, &rtable)
	if errors.Is(err, pgx.ErrNoRows) {
		return Info{Root: t, KeySource: SourceNone, Keys: []string{}}, nil
	}
	if err != nil {
		return Info{}, fmt.Errorf("look up table %s: %w", t, err)
	}
	if len(types) != len(cols) || len(hasMissing) != len(cols) || len(missing) != len(cols) {
		return Info{}, fmt.Errorf("look up table %s: column arrays of different lengths", t)
	}
	info := Info{Found: true, Root: Name{Schema: rs, Table: rtable}, Columns: cols}
	for i, c := range cols {
		if types[i] != nil {
			if info.Types == nil {
				info.Types = map[string]string{}
			}
			info.Types[c] = *types[i]
		}
		if hasMissing[i] {
			if info.Missing == nil {
				info.Missing = map[string]*string{}
			}
			info.Missing[c] = missing[i]
		}
	}
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
