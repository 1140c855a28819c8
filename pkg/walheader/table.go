package walheader

import (
	"encoding/json"
	"fmt"
)

// Partition is what a TRUNCATE of a partition, published on its root's
// subject, says about which of the root's rows it removed (docs/DESIGN.md
// §4): the bounds of every level from the root's child down to the
// partition. A row of the root belongs to it when it lies inside every
// level's bound. Leaf is the truncated partition: a leaf, or a partitioned
// partition whose whole subtree the TRUNCATE named (test_decoding lists
// every table a TRUNCATE emptied; the tables of one record that share a
// subject travel as one message). Unbounded, when not empty, says why no
// bound can tell its rows apart (a hash or default partition, an
// expression partition key, a table folded by REDMS_PARTITION_SUFFIX_REGEXP,
// several partitions of one root in one statement); the loader then parks
// the table.
type Partition struct {
	Leaf      string           `json:"leaf"`
	Levels    []PartitionLevel `json:"levels,omitempty"`
	Unbounded string           `json:"unbounded,omitempty"`
}

// PartitionLevel is one level's bound: a range FROM (From) TO (To) compared
// row-wise over Columns, lower bound inclusive and upper exclusive, or a
// list IN (In) over its one column.
type PartitionLevel struct {
	Strategy string   `json:"strategy"` // StrategyRange or StrategyList
	Columns  []string `json:"columns"`
	From     []Bound  `json:"from,omitempty"`
	To       []Bound  `json:"to,omitempty"`
	In       []Bound  `json:"in,omitempty"`
}

// Partition strategies.
const (
	StrategyRange = "range"
	StrategyList  = "list"
)

// Bound is one value of a partition bound: Kind BoundValue with Value in
// Postgres text form, or BoundNull, BoundMinValue, BoundMaxValue.
type Bound struct {
	Kind  string `json:"kind"`
	Value string `json:"value,omitempty"`
}

// Bound kinds.
const (
	BoundValue    = "value"
	BoundNull     = "null"
	BoundMinValue = "minvalue"
	BoundMaxValue = "maxvalue"
)

// encodeJSON renders a header value of one of this package's types (a
// Partition, a map of strings), which json.Marshal cannot fail on.
func encodeJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func decodeJSON(name, s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode %s %q: %w", name, s, err)
	}
	return nil
}
