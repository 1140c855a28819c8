package verify

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/demo/workload"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/typemap"
)

// replicate copies every source table into target the way the loader must:
// columns typed by typemap.Map of the declared type (typemap.Declared),
// values through typemap.Fit. It is the reference the verifier is checked against.
func replicate(t *testing.T, source, target *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	var tz string
	if err := source.QueryRow(ctx, "SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	tables, err := listTables(ctx, source)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		cols, err := sourceColumns(ctx, source, tb)
		if err != nil {
			t.Fatal(err)
		}
		var defs, params []string
		for i := range cols {
			cols[i].target = typemap.Map(typemap.Postgres, typemap.Declared(cols[i].pgType, cols[i].declared), typemap.Options{})
			defs = append(defs, quoteIdent(cols[i].name)+" "+cols[i].target.SQL)
			params = append(params, fmt.Sprintf("$%d::text::%s", i+1, cols[i].target.SQL))
		}
		if _, err := target.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", qualified(tb), strings.Join(defs, ", "))); err != nil {
			t.Fatalf("create %s: %v", tb, err)
		}
		rows, err := readRows(ctx, source, selectSQL(tb, cols, nil), tz)
		if err != nil {
			t.Fatal(err)
		}
		insert := fmt.Sprintf("INSERT INTO %s VALUES (%s)", qualified(tb), strings.Join(params, ", "))
		for _, row := range rows {
			args := make([]any, len(row))
			for i, v := range row {
				fit, null, _ := typemap.Fit(cols[i].target, deref(v), v == nil)
				if !null {
					args[i] = fit
				}
			}
			if _, err := target.Exec(ctx, "SET TimeZone = '"+tz+"'"); err != nil {
				t.Fatal(err)
			}
			if _, err := target.Exec(ctx, insert, args...); err != nil {
				t.Fatalf("insert into %s %v: %v", tb, args, err)
			}
		}
	}
}

func TestCompare(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	source := testenv.Pool(t, pg.CreateDatabase(t, "source"))
	target := testenv.Pool(t, pg.CreateDatabase(t, "target"))

	g := workload.New(7, workload.Config{Rate: 500, InitialRows: 5})
	if err := g.Setup(ctx, source); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Run(ctx, source, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	replicate(t, source, target)

	rep, err := Compare(ctx, source, target, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("equal data:\n%s", rep.Summary())
	if !rep.OK() {
		t.Fatalf("equal data reported different: %v", rep.Diffs)
	}
	if len(rep.Tables) != len(g.Tables()) {
		t.Fatalf("compared %d tables, want %d", len(rep.Tables), len(g.Tables()))
	}
	for _, tr := range rep.Tables {
		if tr.Rows == 0 || tr.Rows != tr.TargetRows {
			t.Errorf("%s: %d source rows, %d target rows", tr.Table, tr.Rows, tr.TargetRows)
		}
	}

	var lowID int64
	if err := target.QueryRow(ctx, `SELECT min(id) FROM "Order.Items Big"`).Scan(&lowID); err != nil {
		t.Fatal(err)
	}
	only := func(name string) Options {
		return Options{Tables: []Table{{Schema: "public", Name: name}}}
	}
	cases := []struct {
		name  string
		table string
		sql   string
		want  string
	}{
		{"missing row", "Order.Items Big", fmt.Sprintf(`DELETE FROM "Order.Items Big" WHERE id = %d`, lowID),
			fmt.Sprintf(`public.Order.Items Big key (id="%d"): missing from the target`, lowID)},
		{"extra row", "customers", `INSERT INTO customers (id, name) VALUES (999999, 'ghost')`,
			`public.customers key (id="999999"): extra row in the target`},
		{"changed value", "order_lines", `UPDATE order_lines SET qty = qty + 1 WHERE (order_id, line_no) = (SELECT order_id, line_no FROM order_lines ORDER BY 1, 2 LIMIT 1)`,
			`column qty: source "`},
		{"changed null", "all_types", `UPDATE all_types SET c_bool = NULL WHERE id = (SELECT min(id) FROM all_types WHERE c_bool IS NOT NULL)`,
			`column c_bool: source "`},
		{"missing column", "sessions", `ALTER TABLE sessions DROP COLUMN started_at`,
			`column started_at: source "`},
		{"missing table", "late_arrivals", `DROP TABLE late_arrivals`,
			`public.late_arrivals key (id="`},
	}
	for _, c := range cases {
		if _, err := target.Exec(ctx, c.sql); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		rep, err := Compare(ctx, source, target, only(c.table))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if rep.OK() {
			t.Errorf("%s: no difference found", c.name)
			continue
		}
		got := rep.Diffs[0].String()
		t.Logf("%s: %s", c.name, got)
		if !strings.Contains(got, c.want) {
			t.Errorf("%s: first difference %q, want it to contain %q", c.name, got, c.want)
		}
	}
}

func TestEqual(t *testing.T) {
	s := func(v string) *string { return &v }
	cases := []struct {
		kind      typemap.Kind
		want, got *string
		equal     bool
	}{
		{typemap.KindNumeric, s("1.50"), s("1.5"), true},
		{typemap.KindNumeric, s("1.50000000"), s("1.5"), true},
		{typemap.KindNumeric, s("-0.00"), s("0"), true},
		{typemap.KindNumeric, s("1e30"), s("1000000000000000000000000000000"), true},
		{typemap.KindNumeric, s("1.5"), s("1.51"), false},
		{typemap.KindBigInt, s("10"), s("10.0"), true},
		{typemap.KindDouble, s("0.1"), s("1.0000000000000001e-01"), true},
		{typemap.KindDouble, s("-0"), s("0"), true},
		{typemap.KindReal, s("3.4028235e+38"), s("3.40282347e+38"), true},
		{typemap.KindReal, s("1.5"), s("1.25"), false},
		{typemap.KindTimestamp, s("2024-01-01 00:00:00.500"), s("2024-01-01 00:00:00.5"), true},
		{typemap.KindTimestampTZ, s("2024-01-01 00:00:00.000+00"), s("2024-01-01 00:00:00+00"), true},
		{typemap.KindTimestamp, s("2024-01-01 00:00:01"), s("2024-01-01 00:00:00"), false},
		{typemap.KindVarchar, s("a"), s("a "), false},
		{typemap.KindVarchar, s(""), nil, false},
		{typemap.KindVarchar, nil, nil, true},
		{typemap.KindChar, s("ab  "), s("ab"), true},
	}
	for _, c := range cases {
		if got := Equal(c.kind, c.want, c.got); got != c.equal {
			t.Errorf("Equal(%v, %s, %s) = %v, want %v", c.kind, show(c.want), show(c.got), got, c.equal)
		}
	}
}

func TestSelectSQL(t *testing.T) {
	cols := []column{{name: "id", key: true}, {name: `We"ird`}}
	got := selectSQL(Table{"s", "Order.Items Big"}, cols, map[string]bool{"id": true}) + orderByKey(cols)
	want := `SELECT CASE WHEN "id" IS NULL THEN NULL ELSE format('%s', "id") END, NULL::text FROM "s"."Order.Items Big" ORDER BY "id"`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// A table without a primary key is a multiset of rows: identical rows
// count one by one, on both sides.
func TestCompareKeylessAsMultiset(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	source := testenv.Pool(t, pg.CreateDatabase(t, "source"))
	target := testenv.Pool(t, pg.CreateDatabase(t, "target"))
	for _, db := range []*pgxpool.Pool{source, target} {
		if _, err := db.Exec(ctx, "CREATE TABLE history (aid integer, delta integer, note text)"); err != nil {
			t.Fatal(err)
		}
	}
	set := func(db *pgxpool.Pool, rows string) {
		t.Helper()
		if _, err := db.Exec(ctx, "TRUNCATE history; INSERT INTO history VALUES "+rows); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name, source, target string
		missing, extra       int
	}{
		{"equal with duplicates", "(1, 5, 'a'), (1, 5, 'a'), (2, 0, NULL)", "(2, 0, NULL), (1, 5, 'a'), (1, 5, 'a')", 0, 0},
		{"one copy missing", "(1, 5, 'a'), (1, 5, 'a'), (2, 0, NULL)", "(1, 5, 'a'), (2, 0, NULL)", 1, 0},
		{"one copy extra", "(1, 5, 'a'), (2, 0, NULL)", "(1, 5, 'a'), (1, 5, 'a'), (2, 0, NULL)", 0, 1},
	}
	for _, c := range cases {
		set(source, c.source)
		set(target, c.target)
		rep, err := Compare(ctx, source, target, Options{MaxDiffs: 5})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tr := rep.Tables[0]
		if tr.Missing != c.missing || tr.Extra != c.extra || tr.Changed != 0 {
			t.Errorf("%s: missing %d extra %d changed %d, want missing %d extra %d; diffs %v",
				c.name, tr.Missing, tr.Extra, tr.Changed, c.missing, c.extra, rep.Diffs)
		}
	}
}
