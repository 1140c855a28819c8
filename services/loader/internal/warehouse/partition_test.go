package warehouse

import (
	"testing"

	"github.com/redms/redms/pkg/walheader"
)

func TestDeletePartition(t *testing.T) {
	tbl := Table{Schema: "public", Name: "ev"}
	v := func(s string) walheader.Bound { return walheader.Bound{Kind: walheader.BoundValue, Value: s} }
	minv := walheader.Bound{Kind: walheader.BoundMinValue}
	maxv := walheader.Bound{Kind: walheader.BoundMaxValue}
	null := walheader.Bound{Kind: walheader.BoundNull}
	rng := func(cols []string, from, to []walheader.Bound) walheader.PartitionLevel {
		return walheader.PartitionLevel{Strategy: walheader.StrategyRange, Columns: cols, From: from, To: to}
	}
	list := func(col string, in ...walheader.Bound) walheader.PartitionLevel {
		return walheader.PartitionLevel{Strategy: walheader.StrategyList, Columns: []string{col}, In: in}
	}
	const c, a, b = `"public"."ev"."at"`, `"public"."ev"."a"`, `"public"."ev"."b"`
	cases := []struct {
		name   string
		d      Dialect
		levels []walheader.PartitionLevel
		want   string
	}{
		{"range", Postgres, []walheader.PartitionLevel{rng([]string{"at"}, []walheader.Bound{v("2023-01-01")}, []walheader.Bound{v("2023-02-01")})},
			`DELETE FROM "public"."ev" WHERE ` + c + ` >= '2023-01-01' AND ` + c + ` < '2023-02-01'`},
		{"range open below", Postgres, []walheader.PartitionLevel{rng([]string{"at"}, []walheader.Bound{minv}, []walheader.Bound{v("x'y")})},
			`DELETE FROM "public"."ev" WHERE ` + c + ` < 'x''y'`},
		{"range open above, redshift literal", Redshift, []walheader.PartitionLevel{rng([]string{"at"}, []walheader.Bound{v(`a\b`)}, []walheader.Bound{maxv})},
			`DELETE FROM "public"."ev" WHERE ` + c + ` >= 'a\\b'`},
		{"range unbounded both ends", Postgres, []walheader.PartitionLevel{rng([]string{"at"}, []walheader.Bound{minv}, []walheader.Bound{maxv})},
			`DELETE FROM "public"."ev" WHERE 1 = 1`},
		{"two columns row-wise", Postgres, []walheader.PartitionLevel{rng([]string{"a", "b"}, []walheader.Bound{v("1"), v("10")}, []walheader.Bound{v("2"), v("0")})},
			`DELETE FROM "public"."ev" WHERE (` + a + ` > '1' OR (` + a + ` = '1' AND ` + b + ` >= '10')) AND (` + a + ` < '2' OR (` + a + ` = '2' AND ` + b + ` < '0'))`},
		{"two columns with MINVALUE and MAXVALUE tails", Postgres, []walheader.PartitionLevel{rng([]string{"a", "b"}, []walheader.Bound{v("1"), minv}, []walheader.Bound{v("1"), maxv})},
			`DELETE FROM "public"."ev" WHERE ` + a + ` >= '1' AND ` + a + ` <= '1'`},
		{"lower MAXVALUE tail excludes the prefix", Postgres, []walheader.PartitionLevel{rng([]string{"a", "b"}, []walheader.Bound{v("1"), maxv}, []walheader.Bound{v("3"), minv})},
			`DELETE FROM "public"."ev" WHERE ` + a + ` > '1' AND ` + a + ` < '3'`},
		{"list with null, then range", Redshift, []walheader.PartitionLevel{list("region", v("eu"), v("e'u"), null), rng([]string{"at"}, []walheader.Bound{minv}, []walheader.Bound{v("2023-02-01")})},
			`DELETE FROM "public"."ev" WHERE ("public"."ev"."region" IN ('eu', 'e''u') OR "public"."ev"."region" IS NULL) AND ` + c + ` < '2023-02-01'`},
		{"list of null only", Postgres, []walheader.PartitionLevel{list("region", null)},
			`DELETE FROM "public"."ev" WHERE "public"."ev"."region" IS NULL`},
		{"a level no row meets", Postgres, []walheader.PartitionLevel{rng([]string{"at"}, []walheader.Bound{maxv}, []walheader.Bound{maxv})},
			`DELETE FROM "public"."ev" WHERE 1 = 0`},
	}
	for _, tc := range cases {
		got, err := DeletePartition(tc.d, tbl, walheader.Partition{Leaf: "public.ev_x", Levels: tc.levels})
		if err != nil || got != tc.want {
			t.Errorf("%s:\ngot  %s (%v)\nwant %s", tc.name, got, err, tc.want)
		}
	}
	for name, p := range map[string]walheader.Partition{
		"unbounded":           {Leaf: "l", Unbounded: "hash partition"},
		"no levels":           {Leaf: "l"},
		"unknown strategy":    {Leaf: "l", Levels: []walheader.PartitionLevel{{Strategy: "hash", Columns: []string{"a"}}}},
		"range arity":         {Leaf: "l", Levels: []walheader.PartitionLevel{rng([]string{"a", "b"}, []walheader.Bound{v("1")}, []walheader.Bound{v("2"), v("3")})}},
		"null in a range":     {Leaf: "l", Levels: []walheader.PartitionLevel{rng([]string{"a"}, []walheader.Bound{null}, []walheader.Bound{v("2")})}},
		"value after minimum": {Leaf: "l", Levels: []walheader.PartitionLevel{rng([]string{"a", "b"}, []walheader.Bound{minv, v("1")}, []walheader.Bound{v("2"), v("3")})}},
		"list of two columns": {Leaf: "l", Levels: []walheader.PartitionLevel{{Strategy: walheader.StrategyList, Columns: []string{"a", "b"}, In: []walheader.Bound{v("1")}}}},
		"empty list":          {Leaf: "l", Levels: []walheader.PartitionLevel{list("a")}},
	} {
		if got, err := DeletePartition(Postgres, tbl, p); err == nil {
			t.Errorf("%s: %s, want an error", name, got)
		}
	}
}
