package catalog

import (
	"reflect"
	"testing"

	"github.com/redms/redms/pkg/walheader"
)

func TestParseBound(t *testing.T) {
	v := func(s string) walheader.Bound { return walheader.Bound{Kind: walheader.BoundValue, Value: s} }
	null := walheader.Bound{Kind: walheader.BoundNull}
	minv, maxv := walheader.Bound{Kind: walheader.BoundMinValue}, walheader.Bound{Kind: walheader.BoundMaxValue}
	for _, tc := range []struct {
		expr         string
		from, to, in []walheader.Bound
	}{
		{"FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')", []walheader.Bound{v("2024-01-01")}, []walheader.Bound{v("2025-01-01")}, nil},
		{"FOR VALUES FROM (MINVALUE, MINVALUE) TO ('2024-01-01', '-5')", []walheader.Bound{minv, minv}, []walheader.Bound{v("2024-01-01"), v("-5")}, nil},
		{"FOR VALUES FROM (1.5, 'a') TO (MAXVALUE, MAXVALUE)", []walheader.Bound{v("1.5"), v("a")}, []walheader.Bound{maxv, maxv}, nil},
		{"FOR VALUES IN ('eu', 'it''s', NULL)", nil, nil, []walheader.Bound{v("eu"), v("it's"), null}},
		{"FOR VALUES IN ('x, y', ')', true)", nil, nil, []walheader.Bound{v("x, y"), v(")"), v("true")}},
		{"FOR VALUES IN ('')", nil, nil, []walheader.Bound{v("")}},
	} {
		from, to, in, err := parseBound(tc.expr)
		if err != nil || !reflect.DeepEqual(from, tc.from) || !reflect.DeepEqual(to, tc.to) || !reflect.DeepEqual(in, tc.in) {
			t.Errorf("parseBound(%q) = %v %v %v, %v; want %v %v %v", tc.expr, from, to, in, err, tc.from, tc.to, tc.in)
		}
	}
	for _, bad := range []string{"", "DEFAULT", "FOR VALUES WITH (modulus 2, remainder 0)", "FOR VALUES IN ('x'",
		"FOR VALUES IN ('x') extra", "FOR VALUES FROM (1) TO (2, 3)", "FOR VALUES FROM (1)", "FOR VALUES IN ()", "FOR VALUES IN (1,2)"} {
		if from, to, in, err := parseBound(bad); err == nil {
			t.Errorf("parseBound(%q) = %v %v %v, want an error", bad, from, to, in)
		}
	}
}

func TestPartitionOf(t *testing.T) {
	root, mid, leaf, other := Name{"s", "root"}, Name{"s", "mid"}, Name{"s", "leaf"}, Name{"s", "other"}
	rootRow := ancestor{name: root}
	midRow := ancestor{name: mid, bound: "FOR VALUES FROM (1) TO (10)", strategy: "r", keys: []string{"a"}}
	leafRow := ancestor{name: leaf, bound: "FOR VALUES IN ('x')", strategy: "l", keys: []string{"b"}}
	otherRow := ancestor{name: other, bound: "DEFAULT", strategy: "l", keys: []string{"b"}}
	v := func(s string) walheader.Bound { return walheader.Bound{Kind: walheader.BoundValue, Value: s} }
	levelMid := walheader.PartitionLevel{Strategy: walheader.StrategyRange, Columns: []string{"a"}, From: []walheader.Bound{v("1")}, To: []walheader.Bound{v("10")}}
	levelLeaf := walheader.PartitionLevel{Strategy: walheader.StrategyList, Columns: []string{"b"}, In: []walheader.Bound{v("x")}}
	cases := []struct {
		name      string
		tables    []Name
		chains    [][]ancestor
		want      *walheader.Partition
		unbounded bool
	}{
		{"leaf", []Name{leaf}, [][]ancestor{{leafRow, midRow, rootRow}}, &walheader.Partition{Leaf: "s.leaf", Levels: []walheader.PartitionLevel{levelMid, levelLeaf}}, false},
		{"subtree", []Name{mid, leaf, other}, [][]ancestor{{midRow, rootRow}, {leafRow, midRow, rootRow}, {otherRow, midRow, rootRow}},
			&walheader.Partition{Leaf: "s.mid", Levels: []walheader.PartitionLevel{levelMid}}, false},
		{"root", []Name{root, mid, leaf}, [][]ancestor{{rootRow}, {midRow, rootRow}, {leafRow, midRow, rootRow}}, nil, false},
		{"default", []Name{other}, [][]ancestor{{otherRow, midRow, rootRow}}, nil, true},
		{"two tops", []Name{leaf, other}, [][]ancestor{{leafRow, midRow, rootRow}, {otherRow, midRow, rootRow}}, nil, true},
		{"gone", []Name{leaf}, [][]ancestor{nil}, nil, true},
		{"expression", []Name{mid}, [][]ancestor{{{name: mid, bound: "FOR VALUES FROM (1) TO (10)", strategy: "r", keys: []string{""}}, rootRow}}, nil, true},
		{"hash", []Name{mid}, [][]ancestor{{{name: mid, bound: "FOR VALUES WITH (modulus 2, remainder 0)", strategy: "h", keys: []string{"a"}}, rootRow}}, nil, true},
		{"mismatch", []Name{mid}, [][]ancestor{{{name: mid, bound: "FOR VALUES FROM (1) TO (10)", strategy: "r", keys: []string{"a", "b"}}, rootRow}}, nil, true},
	}
	for _, tc := range cases {
		got := partitionOf(tc.tables, tc.chains)
		if tc.unbounded {
			if got == nil || got.Unbounded == "" || len(got.Levels) != 0 {
				t.Errorf("%s: %+v, want unbounded", tc.name, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
