package warehouse

import (
	"fmt"
	"strings"
)

// Bound is one end of a key range: a SQL value per key column (a typed
// literal), nil for unbounded.
type Bound []string

// DeleteRange is a snapshot chunk's range replace (docs/CONTRACTS.md): it
// deletes the target rows whose key (keys, compared in key order) lies in
// (from, to] and that no staging row of step names (the keys the chunk
// kept, every key the window's live changes touch); a step below 0 spares
// none (a snapshot read while nothing changed: no anti-join to run).
// Text keys compare by their bytes, as capture reads a chunk's range
// (typemap.SortKey): Redshift has no other order, and on Postgres the key
// compares under collation "C" whatever the database's.
func DeleteRange(d Dialect, t Table, keys []Match, from, to Bound, step int) string {
	cols := make([]string, len(keys))
	for i, k := range keys {
		cols[i] = t.SQL() + "." + Ident(k.Target)
		if k.Exact && d == Postgres {
			cols[i] += ` COLLATE "C"`
		}
	}
	conds := []string{}
	if from != nil {
		conds = append(conds, lexAfter(cols, from))
	}
	if to != nil {
		conds = append(conds, "NOT "+lexAfter(cols, to))
	}
	if step >= 0 {
		conds = append(conds, "NOT EXISTS (SELECT 1 FROM "+Ident(StageTable)+" WHERE "+where(t, step, keys, false)+")")
	}
	if len(conds) == 0 {
		return "DELETE FROM " + t.SQL()
	}
	return "DELETE FROM " + t.SQL() + " WHERE " + strings.Join(conds, " AND ")
}

// lexAfter is the condition that cols come after b in key order
// (row-wise, without row values, which Redshift lacks).
func lexAfter(cols []string, b Bound) string {
	ors := make([]string, len(cols))
	for i := range cols {
		ands := make([]string, 0, i+1)
		for j := 0; j < i; j++ {
			ands = append(ands, cols[j]+" = "+b[j])
		}
		ands = append(ands, cols[i]+" > "+b[i])
		ors[i] = strings.Join(ands, " AND ")
	}
	if len(ors) == 1 {
		return "(" + ors[0] + ")"
	}
	return "((" + strings.Join(ors, ") OR (") + "))"
}

// Typed is a literal of the column type sql (a key bound).
func Typed(d Dialect, value, sql string) string {
	return fmt.Sprintf("CAST(%s AS %s)", Literal(d, value), sql)
}
