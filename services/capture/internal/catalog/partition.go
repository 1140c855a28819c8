package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
)

// AncestorsSQL lists, for each table of $1 (schemas) and $2 (names), the
// table and its partition ancestors from itself up to the root, each with
// its bound and its parent's partition strategy and key columns (the empty
// name for an expression). Tables that are no partition, or gone, have no rows.
const AncestorsSQL = `SELECT t.ord::int, an.nspname::text, ac.relname::text,
 COALESCE(pg_get_expr(ac.relpartbound, ac.oid), ''), COALESCE(pt.partstrat::text, ''),
 COALESCE((SELECT array_agg(COALESCE(pa.attname::text, '') ORDER BY k.o)
   FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY AS k(attnum, o)
   LEFT JOIN pg_attribute pa ON pa.attrelid = pt.partrelid AND pa.attnum = k.attnum), '{}')
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(nsp, rel, ord)
JOIN pg_namespace tn ON tn.nspname = t.nsp
JOIN pg_class tc ON tc.relnamespace = tn.oid AND tc.relname = t.rel
CROSS JOIN LATERAL pg_partition_ancestors(tc.oid) WITH ORDINALITY AS a(relid, depth)
JOIN pg_class ac ON ac.oid = a.relid
JOIN pg_namespace an ON an.oid = ac.relnamespace
LEFT JOIN pg_inherits i ON i.inhrelid = ac.oid AND ac.relispartition
LEFT JOIN pg_partitioned_table pt ON pt.partrelid = i.inhparent
ORDER BY t.ord, a.depth`

// ancestor is one row of AncestorsSQL.
type ancestor struct {
	name     Name
	bound    string   // this table's bound; "" for the root
	strategy string   // the parent's: "r", "l", "h"; "" for the root
	keys     []string // the parent's key columns, "" for an expression
}

// Partition says which rows of their root the tables of one TRUNCATE
// record removed, the tables all sharing the root's subject: nil when the
// root itself is among them (the whole table), else the bounds of the one
// partition whose subtree they are (docs/DESIGN.md §4), or Unbounded with
// the reason.
func Partition(ctx context.Context, q Querier, tables []Name) (*walheader.Partition, error) {
	schemas, names := make([]string, len(tables)), make([]string, len(tables))
	for i, t := range tables {
		schemas[i], names[i] = t.Schema, t.Table
	}
	rows, err := q.Query(ctx, AncestorsSQL, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("read partition ancestors of %s: %w", tables[0], err)
	}
	chains := make([][]ancestor, len(tables))
	for rows.Next() {
		var (
			ord int
			a   ancestor
		)
		if err := rows.Scan(&ord, &a.name.Schema, &a.name.Table, &a.bound, &a.strategy, &a.keys); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read partition ancestors of %s: %w", tables[0], err)
		}
		if ord >= 1 && ord <= len(chains) {
			chains[ord-1] = append(chains[ord-1], a)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read partition ancestors of %s: %w", tables[0], err)
	}
	return partitionOf(tables, chains), nil
}

// partitionOf is Partition after the query: chains[i] is tables[i] and its
// ancestors up to the root.
func partitionOf(tables []Name, chains [][]ancestor) *walheader.Partition {
	for i, c := range chains {
		if len(c) == 0 {
			return unbounded(tables[i], "is no partition in the catalog any more: which rows it held is unknown")
		}
	}
	in := func(n Name) bool { return slices.Contains(tables, n) }
	if root := chains[0][len(chains[0])-1].name; in(root) {
		return nil // the root itself: every row
	}
	// The tops are the tables none of whose ancestors was truncated too:
	// TRUNCATE of a partitioned table names its whole subtree.
	var tops []int
	for i, c := range chains {
		if !slices.ContainsFunc(c[1:], func(a ancestor) bool { return in(a.name) }) {
			tops = append(tops, i)
		}
	}
	if len(tops) > 1 {
		var list []string
		for _, i := range tops {
			list = append(list, quoted(tables[i]))
		}
		return unbounded(tables[tops[0]], fmt.Sprintf("was truncated with several partitions of the same root in one statement (%s): no one bound holds their rows", strings.Join(list, ", ")))
	}
	chain := chains[tops[0]]
	p := &walheader.Partition{Leaf: quoted(chain[0].name)}
	for i := len(chain) - 2; i >= 0; i-- {
		a := chain[i]
		switch {
		case a.bound == boundDefault:
			return unbounded(chain[0].name, fmt.Sprintf("lies in the default partition %s: its rows are those no other partition takes", quoted(a.name)))
		case a.strategy == "h" || strings.HasPrefix(a.bound, boundHash):
			return unbounded(chain[0].name, fmt.Sprintf("lies in the hash partition %s: no bound says which rows it held", quoted(a.name)))
		case slices.Contains(a.keys, ""):
			return unbounded(chain[0].name, fmt.Sprintf("lies in %s, whose parent is partitioned by an expression: no column bound says which rows it held", quoted(a.name)))
		}
		from, to, list, err := parseBound(a.bound)
		if err != nil {
			return unbounded(chain[0].name, err.Error())
		}
		level := walheader.PartitionLevel{Columns: a.keys, From: from, To: to, In: list}
		switch {
		case a.strategy == "r" && from != nil && len(from) == len(a.keys):
			level.Strategy = walheader.StrategyRange
		case a.strategy == "l" && list != nil && len(a.keys) == 1:
			level.Strategy = walheader.StrategyList
		default:
			return unbounded(chain[0].name, fmt.Sprintf("bound %q of %s does not fit its parent's partition key (%s) %v", a.bound, quoted(a.name), a.strategy, a.keys))
		}
		p.Levels = append(p.Levels, level)
	}
	return p
}

func unbounded(t Name, reason string) *walheader.Partition {
	return &walheader.Partition{Leaf: quoted(t), Unbounded: quoted(t) + " " + reason}
}

// quoted renders n as test_decoding does (Redms-Leaf, Partition.Leaf).
func quoted(n Name) string {
	return testdecoding.Table{Schema: n.Schema, Name: n.Table}.String()
}
