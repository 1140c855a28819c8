package warehouse

import (
	"errors"
	"fmt"
	"strings"

	"github.com/redms/redms/pkg/walheader"
)

// DeletePartition deletes the rows of root target t that lie inside every
// level of a truncated leaf partition's bounds (docs/DESIGN.md §4): a range
// level row-wise from its lower bound (inclusive) to its upper bound
// (exclusive), MINVALUE and MAXVALUE leaving that end open; a list level by
// IN, a NULL in the list matching NULL. Bound values are literals compared
// against the target's columns, so the warehouse reads them as the column's
// type. A partition whose Unbounded is set, or a level this cannot express,
// is an error.
func DeletePartition(d Dialect, t Table, p walheader.Partition) (string, error) {
	if p.Unbounded != "" {
		return "", fmt.Errorf("partition %s has no bounds: %s", p.Leaf, p.Unbounded)
	}
	if len(p.Levels) == 0 {
		return "", fmt.Errorf("partition %s: no bound levels", p.Leaf)
	}
	conds := make([]string, 0, len(p.Levels))
	for i, l := range p.Levels {
		c, err := levelCond(d, t, l)
		if err != nil {
			return "", fmt.Errorf("partition %s level %d: %w", p.Leaf, i+1, err)
		}
		if c != "" {
			conds = append(conds, c)
		}
	}
	where := "1 = 1"
	if len(conds) > 0 {
		where = strings.Join(conds, " AND ")
	}
	return "DELETE FROM " + t.SQL() + " WHERE " + where, nil
}

// never is a condition no row meets.
const never = "1 = 0"

func levelCond(d Dialect, t Table, l walheader.PartitionLevel) (string, error) {
	if len(l.Columns) == 0 {
		return "", errors.New("no columns")
	}
	cols := make([]string, len(l.Columns))
	for i, c := range l.Columns {
		cols[i] = t.SQL() + "." + Ident(c)
	}
	switch l.Strategy {
	case walheader.StrategyList:
		return listCond(d, cols, l.In)
	case walheader.StrategyRange:
		if len(l.From) != len(cols) || len(l.To) != len(cols) {
			return "", fmt.Errorf("range over %d columns with %d FROM and %d TO values", len(cols), len(l.From), len(l.To))
		}
		lo, err := rangeEnd(d, cols, l.From, true)
		if err != nil {
			return "", fmt.Errorf("FROM: %w", err)
		}
		hi, err := rangeEnd(d, cols, l.To, false)
		if err != nil {
			return "", fmt.Errorf("TO: %w", err)
		}
		switch {
		case lo == never || hi == never:
			return never, nil
		case lo == "":
			return hi, nil
		case hi == "":
			return lo, nil
		}
		return lo + " AND " + hi, nil
	}
	return "", fmt.Errorf("unknown strategy %q", l.Strategy)
}

func listCond(d Dialect, cols []string, in []walheader.Bound) (string, error) {
	if len(cols) != 1 {
		return "", fmt.Errorf("list partition over %d columns", len(cols))
	}
	var vals []string
	null := false
	for _, b := range in {
		switch b.Kind {
		case walheader.BoundValue:
			vals = append(vals, Literal(d, b.Value))
		case walheader.BoundNull:
			null = true
		default:
			return "", fmt.Errorf("%s in a list bound", b.Kind)
		}
	}
	var parts []string
	if len(vals) > 0 {
		parts = append(parts, cols[0]+" IN ("+strings.Join(vals, ", ")+")")
	}
	if null {
		parts = append(parts, cols[0]+" IS NULL")
	}
	switch len(parts) {
	case 0:
		return "", errors.New("empty list bound")
	case 1:
		return parts[0], nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", nil
}

// rangeEnd is the condition of one end of a range bound: lower (inclusive)
// or upper (exclusive). Values up to the first MINVALUE or MAXVALUE are
// compared row-wise (Postgres requires every later column to repeat it);
// "" means no condition, never no row.
func rangeEnd(d Dialect, cols []string, bounds []walheader.Bound, lower bool) (string, error) {
	var vals []string
	open := ""
	for _, b := range bounds {
		switch b.Kind {
		case walheader.BoundValue:
			if open != "" {
				return "", fmt.Errorf("a value after %s", open)
			}
			vals = append(vals, Literal(d, b.Value))
		case walheader.BoundMinValue, walheader.BoundMaxValue:
			if open != "" && open != b.Kind {
				return "", fmt.Errorf("%s after %s", b.Kind, open)
			}
			open = b.Kind
		default:
			return "", fmt.Errorf("%s in a range bound", b.Kind)
		}
	}
	var op string
	switch {
	case lower && (open == "" || open == walheader.BoundMinValue):
		op = ">="
	case lower:
		op = ">" // (v, MAXVALUE): rows past every row with prefix v
	case open == "":
		op = "<"
	case open == walheader.BoundMaxValue:
		op = "<="
	default:
		op = "<" // (v, MINVALUE): rows before every row with prefix v
	}
	if len(vals) == 0 {
		if (lower && open == walheader.BoundMinValue) || (!lower && open == walheader.BoundMaxValue) {
			return "", nil
		}
		return never, nil
	}
	return rowCompare(cols[:len(vals)], vals, op), nil
}

// rowCompare is the row-wise comparison (cols) op (vals), spelled out
// column by column (Redshift has no row comparison).
func rowCompare(cols, vals []string, op string) string {
	if len(cols) == 1 {
		return cols[0] + " " + op + " " + vals[0]
	}
	strict := op[:1]
	return "(" + cols[0] + " " + strict + " " + vals[0] + " OR (" + cols[0] + " = " + vals[0] + " AND " + rowCompare(cols[1:], vals[1:], op) + "))"
}
