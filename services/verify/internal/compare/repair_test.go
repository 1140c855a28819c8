package compare

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestLowerKeySQL(t *testing.T) {
	got := lowerKeySQL(Name{Schema: "public", Table: "t"}, []string{"a", "B"}, []string{"integer", "character varying(10)"}, []string{"", "C"})
	want := `SELECT "a"::text AS k0, "B"::text AS k1 FROM "public"."t" WHERE ("a", "B") < ($1::integer, $2::character varying(10)) ORDER BY "a" DESC, "B" DESC LIMIT 1`
	if got != want {
		t.Errorf("lowerKeySQL:\n got %s\nwant %s", got, want)
	}
	got = lowerKeySQL(Name{Schema: "public", Table: "t"}, []string{"a", "B"}, []string{"integer", "character varying(10)"}, []string{"", "en_US.UTF-8"})
	want = `SELECT "a"::text AS k0, "B"::text AS k1 FROM "public"."t" WHERE ("a", "B"::text COLLATE "C") < ($1::integer, $2::text) ORDER BY "a" DESC, "B"::text COLLATE "C" DESC LIMIT 1`
	if got != want {
		t.Errorf("lowerKeySQL, a key under a linguistic collation:\n got %s\nwant %s", got, want)
	}
}

// TestRepairRanges: each differing key k becomes (p, k], p the greatest
// source key below k — for a missing, a changed and an extra key, one
// below every source key, and keys differing by trailing blanks; a keyless
// table is requested whole.
func TestRepairRanges(t *testing.T) {
	ctx, pg, src, wh := pools(t)
	pg.Exec(t, "src", sourceDDL)
	// A text key under ICU (a < A < b < B): the range below B is in the
	// warehouse's byte order (A, B], as capture reads it, not (b, B],
	// which holds no key there.
	pg.Exec(t, "src", `CREATE TABLE public.words (k text COLLATE "und-x-icu" PRIMARY KEY); INSERT INTO public.words VALUES ('a'), ('A'), ('b'), ('B')`)
	mirror(t, ctx, src, wh, "items", "tkeys", "bag", "words")
	pg.Exec(t, "wh", `
UPDATE public.items SET name = 'changed' WHERE id = 5;
DELETE FROM public.items WHERE id = 7;
INSERT INTO public.items (id) VALUES (100000), (-4);
UPDATE public.tkeys SET k = 'y ' WHERE k = 'y';
INSERT INTO public.bag VALUES (3, 'v3');
DELETE FROM public.words WHERE k = 'B';`)
	rep, err := Compare(ctx, src, wh, Options{ConfirmTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"public.items": `[{"from":["4"],"to":["5"]},{"from":["6"],"to":["7"]},{"from":["3001"],"to":["100000"]},{"from":null,"to":["-4"]}]`,
		"public.tkeys": `[{"from":["x "],"to":["y"]},{"from":["y"],"to":["y "]}]`,
		"public.bag":   "whole",
		"public.words": `[{"from":["A"],"to":["B"]}]`,
	}
	for _, tr := range rep.Tables {
		ranges, whole, err := RepairRanges(ctx, src, tr)
		if err != nil {
			t.Fatalf("%s: %v", tr.Table, err)
		}
		got := "whole"
		if !whole {
			b, _ := json.Marshal(ranges)
			got = string(b)
		}
		if w := want[tr.Table]; !sameRanges(got, w) {
			t.Errorf("%s (%d differences): ranges %s, want %s", tr.Table, tr.Differences(), got, w)
		}
	}
}

// sameRanges compares two JSON lists of ranges in any order.
func sameRanges(a, b string) bool {
	if a == "whole" || b == "whole" {
		return a == b
	}
	var x, y []json.RawMessage
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil || len(x) != len(y) {
		return false
	}
	set := map[string]int{}
	for _, r := range x {
		set[string(r)]++
	}
	for _, r := range y {
		set[string(r)]--
	}
	for _, n := range set {
		if n != 0 {
			return false
		}
	}
	return strings.HasPrefix(a, "[")
}
