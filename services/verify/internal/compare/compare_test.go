package compare

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/rsemu/emu"
)

// sourceDDL holds a table of every value rule, one of keys that differ only
// by trailing blanks, and a keyless one.
const sourceDDL = `
CREATE TABLE public.items (id int PRIMARY KEY, name varchar(20), note text, code char(4),
  amount numeric(5,2), big numeric, f double precision, r real, ok boolean, at timestamptz,
  d date, ts timestamp, u uuid, b bytea, j jsonb, tt timetz, tags text[]);
INSERT INTO public.items
SELECT g, 'name ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END, chr(97 + g % 26),
  g % 1000 + 0.255, g * 1.000000001, g / 7.0, g / 3.0, g % 2 = 0, '2024-01-01 00:00:00+02'::timestamptz + g * interval '1 minute',
  '2024-01-01'::date + g, '2024-01-01 12:00:00.5'::timestamp + g * interval '1 second', md5(g::text)::uuid,
  decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'a', 'x'), '12:00:00+05:30', ARRAY['a', 'b"' || g]
FROM generate_series(1, 3000) g;
UPDATE public.items SET note = '' WHERE id = 9;
UPDATE public.items SET code = 'ab' WHERE id = 10;
UPDATE public.items SET big = 1e30, amount = 999.99 WHERE id = 11;
UPDATE public.items SET f = 'Infinity', r = 'NaN', big = 'NaN', at = 'infinity' WHERE id = 12;
UPDATE public.items SET note = repeat('x', 65534) || 'é' || 'tail' WHERE id = 13;
UPDATE public.items SET amount = -999.99, big = -1e25 WHERE id = 14;
INSERT INTO public.items (id) VALUES (3001);
CREATE TABLE public.tkeys (k varchar(10) PRIMARY KEY, v int);
INSERT INTO public.tkeys VALUES ('x', 1), ('x ', 2), ('y', 3), ('z', 4);
CREATE TABLE public.bag (a int, b text);
ALTER TABLE public.bag REPLICA IDENTITY FULL;
INSERT INTO public.bag SELECT g % 50, 'v' || (g % 50) FROM generate_series(1, 400) g;
`

// mirror copies the source tables into the warehouse as the loader would
// write them: each column of its mapped type, each value through
// typemap.Fit of the text test_decoding prints.
func mirror(t *testing.T, ctx context.Context, src, wh *pgxpool.Pool, tables ...string) {
	t.Helper()
	mirrorAs(t, ctx, typemap.Postgres, src, wh, wh, tables...)
}

// mirrorAs creates the targets through ddl (the emulator for Redshift) and
// fills them through data.
func mirrorAs(t *testing.T, ctx context.Context, d typemap.Dialect, src, ddl, wh *pgxpool.Pool, tables ...string) {
	t.Helper()
	for _, name := range tables {
		rows, err := src.Query(ctx, `SELECT a.attname, format_type(a.atttypid, NULL), format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, "public."+name)
		if err != nil {
			t.Fatal(err)
		}
		type col struct{ name, printed, declared string }
		cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (col, error) {
			var c col
			return c, r.Scan(&c.name, &c.printed, &c.declared)
		})
		if err != nil {
			t.Fatal(err)
		}
		var defs, sel, casts []string
		var targets []typemap.Target
		for i, c := range cols {
			tg := typemap.Map(d, typemap.Declared(c.printed, c.declared), typemap.Options{})
			targets = append(targets, tg)
			defs = append(defs, fmt.Sprintf("%q %s", c.name, tg.SQL))
			sel = append(sel, fmt.Sprintf("CASE WHEN %q IS NULL THEN NULL ELSE format('%%s', %q) END", c.name, c.name))
			casts = append(casts, fmt.Sprintf("$%d::text::%s", i+1, tg.SQL))
		}
		if _, err := ddl.Exec(ctx, fmt.Sprintf("CREATE TABLE public.%q (%s)", name, strings.Join(defs, ", "))); err != nil {
			t.Fatal(err)
		}
		conn, err := src.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// test_decoding prints in the server's time zone; any zone will do,
		// Fit brings timestamptz and timetz to UTC.
		if _, err := conn.Exec(ctx, "SET TimeZone = 'Europe/Berlin'"); err != nil {
			t.Fatal(err)
		}
		rs, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM public.%q", strings.Join(sel, ", "), name))
		if err != nil {
			t.Fatal(err)
		}
		var all [][]any
		for rs.Next() {
			vals := make([]*string, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			args := make([]any, len(cols))
			for i, v := range vals {
				s := ""
				if v != nil {
					s = *v
				}
				fit, null, _ := typemap.Fit(targets[i], s, v == nil)
				if !null {
					args[i] = fit
				}
			}
			all = append(all, args)
		}
		if err := rs.Err(); err != nil {
			t.Fatal(err)
		}
		conn.Release()
		ins := fmt.Sprintf("INSERT INTO public.%q VALUES (%s)", name, strings.Join(casts, ", "))
		for _, args := range all {
			if _, err := wh.Exec(ctx, ins, args...); err != nil {
				t.Fatalf("%s %v: %v", ins, args, err)
			}
		}
	}
}

func pools(t *testing.T) (context.Context, *testenv.Postgres, *pgxpool.Pool, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	pg := testenv.StartPostgres(t)
	pg.CreateDatabase(t, "src")
	pg.CreateDatabase(t, "wh")
	src := testenv.Pool(t, pg.URL("src"))
	wh := testenv.Pool(t, pg.URL("wh"))
	return ctx, pg, src, wh
}

// summary renders a report's differences one line each, sorted.
func summary(rep Report) []string {
	var out []string
	for _, tr := range rep.Tables {
		if tr.Status == Failed {
			out = append(out, tr.Table+" error "+tr.Error)
		}
		for _, d := range tr.Diffs {
			line := fmt.Sprintf("%s %s (%s)", tr.Table, d.Kind, d.KeyString(tr.Keys))
			if d.Kind == Changed {
				line += " " + strings.Join(d.Columns, ",")
			}
			if d.Count != 1 {
				line += fmt.Sprintf(" x%d", d.Count)
			}
			out = append(out, line)
		}
	}
	sort.Strings(out)
	return out
}

func TestCompareFindsExactlyTheInjectedDifferences(t *testing.T) {
	ctx, pg, src, wh := pools(t)
	pg.Exec(t, "src", sourceDDL)
	mirror(t, ctx, src, wh, "items", "tkeys", "bag")
	injected(t, ctx, pg, "wh", src, wh, Options{ConfirmTimeout: time.Second, LeafRows: 16})
}

// TestCompareRedshiftFindsExactlyTheInjectedDifferences: the same through
// the Redshift emulator, whose targets have Redshift's types.
func TestCompareRedshiftFindsExactlyTheInjectedDifferences(t *testing.T) {
	ctx, pg, src, _ := pools(t)
	pg.Exec(t, "src", sourceDDL)
	pg.CreateDatabase(t, "rs")
	e, err := emu.Start(ctx, emu.Config{Listen: "127.0.0.1:0", PostgresURL: pg.URL("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	rs := testenv.Pool(t, "postgres://dev@"+e.Addr()+"/rs?sslmode=disable")
	backing := testenv.Pool(t, pg.URL("rs"))
	mirrorAs(t, ctx, typemap.Redshift, src, rs, backing, "items", "tkeys", "bag")
	injected(t, ctx, pg, "rs", src, rs, Options{Dialect: typemap.Redshift, ConfirmTimeout: time.Second, LeafRows: 16})
}

// injected compares a faithful copy (no differences), then injects one
// difference of each kind into the warehouse database whdb and expects
// exactly those.
func injected(t *testing.T, ctx context.Context, pg *testenv.Postgres, whdb string, src, wh *pgxpool.Pool, opts Options) {
	t.Helper()

	rep, err := Compare(ctx, src, wh, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(rep); len(got) != 0 || rep.ExitCode() != 0 {
		t.Fatalf("a faithful copy differs (the value rules disagree):\n%s", strings.Join(got, "\n"))
	}
	for _, tr := range rep.Tables {
		if tr.SourceRows == 0 || tr.SourceRows != tr.WarehouseRows {
			t.Fatalf("%s: rows %d/%d", tr.Table, tr.SourceRows, tr.WarehouseRows)
		}
	}

	pg.Exec(t, whdb, `
UPDATE public.items SET name = 'changed' WHERE id = 5;
DELETE FROM public.items WHERE id = 7;
INSERT INTO public.items (id, name) VALUES (100000, 'extra');
UPDATE public.items SET note = NULL WHERE id = 9;
UPDATE public.items SET code = 'ab' WHERE id = 10;
UPDATE public.items SET big = 92233720368.54775806 WHERE id = 11;
UPDATE public.tkeys SET k = 'y ' WHERE k = 'y';
INSERT INTO public.bag VALUES (3, 'v3');
`)
	rep, err = Compare(ctx, src, wh, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`public.bag extra (a="3", b="v3")`,
		`public.items changed (id="10") code`,
		`public.items changed (id="11") big`,
		`public.items changed (id="5") name`,
		`public.items changed (id="9") note`,
		`public.items extra (id="100000")`,
		`public.items missing (id="7")`,
		`public.tkeys extra (k="y ")`,
		`public.tkeys missing (k="y")`,
	}
	if got := summary(rep); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("differences:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.ExitCode() != 1 {
		t.Fatalf("exit code %d, want 1", rep.ExitCode())
	}
	for _, tr := range rep.Tables {
		if tr.Table == "public.items" && (tr.Missing != 1 || tr.Extra != 1 || tr.Changed != 4) {
			t.Fatalf("items counts: %+v", tr)
		}
	}
}

// TestCompareConfirmsAfterAnAddedColumn: a column the source gained is
// missing from the warehouse when a difference is read again, and the
// loader adds and fills it while verify waits for the applied position:
// the warehouse is read with the columns it has after the wait, so nothing
// differs. Before, the column still read as NULL there and every row with
// a value was reported changed (seen in CI: "public.customers changed
// (id="33") loyalty").
func TestCompareConfirmsAfterAnAddedColumn(t *testing.T) {
	ctx, pg, src, wh := pools(t)
	pg.Exec(t, "src", `CREATE TABLE public.addcol (id int PRIMARY KEY, v text); INSERT INTO public.addcol SELECT g, 'v' || g FROM generate_series(1, 5) g`)
	mirror(t, ctx, src, wh, "addcol")
	state := stateTable("public", "public", "addcol")
	pg.Exec(t, "wh", "CREATE TABLE "+state+` (target varchar(512) PRIMARY KEY, source_db varchar(512), source_schema varchar(512), source_table varchar(512),
  pos_base bigint, pos_index bigint, pos varchar(64), legacy_seq bigint, last_lsn varchar(32), applied_at timestamp);
INSERT INTO `+state+` VALUES ('"public"."addcol"', 'src', 'public', 'addcol', 0, 0, '', 0, '', now())`)
	pg.Exec(t, "src", "ALTER TABLE public.addcol ADD COLUMN loyalty text; UPDATE public.addcol SET loyalty = 'l' || id WHERE id > 2")
	opts := Options{Tables: []Name{{"public", "addcol"}}, ConfirmTimeout: time.Minute, Poll: 50 * time.Millisecond}
	var wg sync.WaitGroup
	opts.beforeConfirm = func() {
		// The loader's window lands while verify waits for it.
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(300 * time.Millisecond)
			pg.Exec(t, "wh", "ALTER TABLE public.addcol ADD COLUMN loyalty varchar(65535); UPDATE public.addcol SET loyalty = 'l' || id WHERE id > 2; UPDATE "+state+" SET pos_base = 9223372036854775807, pos = 'applied'")
		}()
	}
	rep, err := Compare(ctx, src, wh, opts)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(rep); len(got) != 0 || !rep.Tables[0].Confirmed {
		t.Fatalf("after the loader added and filled the column: %v %+v", got, rep.Tables[0])
	}
}

// TestCompareConfirmsAgainstTheAppliedPosition: a difference that the
// loader applies before the applied position passes the source read is in
// flight, not reported; one still there once the position passed is
// reported as confirmed; one read while the position never moves is
// reported unconfirmed.
func TestCompareConfirmsAgainstTheAppliedPosition(t *testing.T) {
	ctx, pg, src, wh := pools(t)
	pg.Exec(t, "src", sourceDDL)
	mirror(t, ctx, src, wh, "tkeys")
	state := stateTable("public", "public", "tkeys")
	pg.Exec(t, "wh", "CREATE TABLE "+state+` (target varchar(512) PRIMARY KEY, source_db varchar(512), source_schema varchar(512), source_table varchar(512),
  pos_base bigint, pos_index bigint, pos varchar(64), legacy_seq bigint, last_lsn varchar(32), applied_at timestamp);
INSERT INTO `+state+` VALUES ('"public"."tkeys"', 'src', 'public', 'tkeys', 0, 0, '', 0, '', now())`)
	opts := Options{Tables: []Name{{"public", "tkeys"}}, ConfirmTimeout: time.Minute, Poll: 50 * time.Millisecond}

	// In flight: the source changed, the loader applies it while verify waits.
	pg.Exec(t, "src", "UPDATE public.tkeys SET v = 30 WHERE k = 'y'")
	applied := false
	opts.beforeConfirm = func() {
		applied = true
		pg.Exec(t, "wh", "UPDATE public.tkeys SET v = 30 WHERE k = 'y'; UPDATE "+state+" SET pos_base = 9223372036854775807, pos = 'applied'")
	}
	rep, err := Compare(ctx, src, wh, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := summary(rep); len(got) != 0 || !applied || !rep.Tables[0].Confirmed || rep.Tables[0].Applied != "applied" {
		t.Fatalf("in-flight change reported (hook ran %v): %v %+v", applied, got, rep.Tables[0])
	}

	// Still different after the position passed: confirmed.
	pg.Exec(t, "wh", "DELETE FROM public.tkeys WHERE k = 'z'")
	opts.beforeConfirm = nil
	rep, err = Compare(ctx, src, wh, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(summary(rep), "\n"); got != `public.tkeys missing (k="z")` || !rep.Tables[0].Confirmed {
		t.Fatalf("got %q confirmed=%v", got, rep.Tables[0].Confirmed)
	}

	// The position never reaches the read: reported, not confirmed.
	pg.Exec(t, "wh", "UPDATE "+state+" SET pos_base = 0")
	opts.ConfirmTimeout = 300 * time.Millisecond
	rep, err = Compare(ctx, src, wh, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(summary(rep), "\n"); got != `public.tkeys missing (k="z")` || rep.Tables[0].Confirmed {
		t.Fatalf("got %q confirmed=%v", got, rep.Tables[0].Confirmed)
	}
}
