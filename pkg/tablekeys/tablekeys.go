// Package tablekeys reads REDMS_TABLE_KEYS, the key columns an operator
// gives tables whose changes carry none (capture for tables the catalog
// gives no key and for --stdin, the loader for messages without keys):
//
//	public.orders=id;public.lines=order_id,line
package tablekeys

import (
	"fmt"
	"strings"
)

// Table is a schema-qualified table name, unquoted.
type Table struct {
	Schema, Name string
}

// String is schema.table.
func (t Table) String() string { return t.Schema + "." + t.Name }

// Keys are the configured key columns per table, in key order.
type Keys map[Table][]string

// Parse reads `schema.table=col[,col];…`; blanks around names and empty
// items are ignored.
func Parse(s string) (Keys, error) {
	keys := Keys{}
	for item := range strings.SplitSeq(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		table, cols, ok := strings.Cut(item, "=")
		schema, name, dot := strings.Cut(strings.TrimSpace(table), ".")
		if !ok || !dot || schema == "" || name == "" {
			return nil, fmt.Errorf("parse table keys %q: want schema.table=col[,col]", item)
		}
		var columns []string
		for c := range strings.SplitSeq(cols, ",") {
			if c = strings.TrimSpace(c); c != "" {
				columns = append(columns, c)
			}
		}
		if len(columns) == 0 {
			return nil, fmt.Errorf("parse table keys %q: no columns", item)
		}
		keys[Table{Schema: schema, Name: name}] = columns
	}
	return keys, nil
}

// ByName is the keys by "schema.table".
func (k Keys) ByName() map[string][]string {
	out := make(map[string][]string, len(k))
	for t, cols := range k {
		out[t.String()] = cols
	}
	return out
}
