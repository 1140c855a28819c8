package testdecoding

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/testinfra/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and testdata/recvlogical.txt from a real Postgres")

// goldenScenario is a workload whose test_decoding output is pinned in
// testdata/<name>.golden. setup runs before the slot exists (so its effects
// are not decoded); each statement of run is its own transaction.
type goldenScenario struct {
	name string
	// extension, if set, is a contrib extension the scenario needs; without
	// it the scenario only logs that it did not run.
	extension string
	setup     []string
	run       []string
	// copyRows, if > 0, COPYs that many rows into public.copied after run.
	copyRows int
	// summarize keeps only the first and last 3 parsed records in the golden
	// file (all raw records are kept).
	summarize bool
}

func goldenScenarios() []goldenScenario {
	typeCols := []string{
		"id integer PRIMARY KEY",
		"c_smallint smallint", "c_integer integer", "c_bigint bigint",
		"c_numeric_ps numeric(10,2)", "c_numeric numeric",
		"c_real real", "c_double double precision",
		"c_boolean boolean", "c_varchar varchar(10)", "c_char char(5)", "c_text text",
		"c_json json", "c_jsonb jsonb", "c_xml xml",
		"c_int_array int[]", "c_text_array text[]",
		"c_int4range int4range", "c_tstzrange tstzrange",
		`c_enum "MyEnum"`, `c_weird_type "Weird.Schema"."Weird]:Type"`, "c_domain posint",
		"c_inet inet", "c_interval interval", "c_uuid uuid", "c_bytea bytea",
		"c_date date", "c_timestamp timestamp", "c_timestamptz timestamptz",
		"c_time time", "c_timetz timetz", "c_bit bit(4)", "c_varbit varbit(8)", "c_oid oid",
	}
	typeVals := func(id int, vals ...string) string {
		return fmt.Sprintf("INSERT INTO types VALUES (%d, %s)", id, strings.Join(vals, ", "))
	}
	row1 := []string{
		"-32768", "2147483647", "-9223372036854775808",
		"12345678.91", "3.14159265358979323846264338327950288419716939937510",
		"3.4028235e+38", "2.2250738585072014e-308",
		"true", "'varchar'", "'ab'", "'text'",
		`'{"a": [1, 2.5, "x''y"]}'`, `'{"b": {"c": null}, "a": 1}'`, "'<a href=\"x\">t&amp;</a>'",
		"'{1,2,NULL}'", `'{"a b","c,d","e\"f",NULL,""}'`,
		"'[1,10)'", "'[2024-01-01 00:00:00+00,infinity)'",
		"'Mixed Case'", "'x]:y'", "42",
		"'192.168.0.1/24'", "'1 year 2 mons 3 days 04:05:06.789'", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", `'\xdeadbeef00'`,
		"'2024-02-29'", "'2024-02-29 12:34:56.789012'", "'2024-02-29 12:34:56.789012+05:30'",
		"'23:59:59.999999'", "'12:00:00-08'", "B'0101'", "B'101'", "16384",
	}
	row2 := []string{
		"0", "-1", "0",
		"'NaN'", "'-0.000000001'",
		"'NaN'", "'Infinity'",
		"false", "''", "'   '", "''",
		"'null'", "'[]'", "'<x/>'",
		"'{}'", "'{}'",
		"'empty'", "'(,)'",
		"'lower'", "'plain'", "1",
		"'::1'", "'-178000000 years'", "'00000000-0000-0000-0000-000000000000'", "''",
		"'infinity'", "'-infinity'", "'infinity'",
		"'00:00:00'", "'24:00:00+14'", "B'0000'", "B''", "0",
	}
	return []goldenScenario{
		{
			name: "types",
			setup: []string{
				`CREATE TYPE "MyEnum" AS ENUM ('lower', 'Mixed Case', 'it''s')`,
				`CREATE SCHEMA "Weird.Schema"`,
				`CREATE TYPE "Weird.Schema"."Weird]:Type" AS ENUM ('plain', 'x]:y')`,
				`CREATE DOMAIN posint AS integer CHECK (VALUE >= 0)`,
				"CREATE TABLE types (" + strings.Join(typeCols, ", ") + ")",
			},
			run: []string{
				typeVals(1, row1...),
				typeVals(2, row2...),
				"INSERT INTO types (id, c_numeric, c_real, c_double, c_date, c_timestamp, c_timestamptz) " +
					"VALUES (3, '-Infinity', '-Infinity', '-Infinity', '4713-01-01 BC', '0001-01-01 00:00:00', '294276-12-31 23:59:59.999999+00')",
				"DELETE FROM types WHERE id = 3",
			},
		},
		{
			name:      "hstore",
			extension: "hstore",
			setup:     []string{"CREATE TABLE hs (id integer PRIMARY KEY, h hstore, a hstore[])"},
			run: []string{
				`INSERT INTO hs VALUES (1, 'a=>1, "b c"=>"d''e", n=>NULL, "q\"uote"=>"x\\y"', ARRAY['k=>v'::hstore])`,
				`INSERT INTO hs VALUES (2, '', NULL)`,
			},
		},
		{
			name:      "citext",
			extension: "citext",
			setup:     []string{"CREATE TABLE ci (id citext PRIMARY KEY, v citext)"},
			run: []string{
				`INSERT INTO ci VALUES ('MiXeD', 'it''s')`,
				`UPDATE ci SET id = 'other' WHERE id = 'mixed'`,
			},
		},
		{
			name: "identifiers",
			setup: []string{
				`CREATE SCHEMA "Weird.Schema"`,
				`CREATE TABLE "Weird.Schema"."Mixed Case.Table*>" ("Id" integer PRIMARY KEY, "col: x[y]" text, "select" text, name text)`,
				`CREATE SCHEMA "quote""d"`,
				`CREATE SCHEMA "Ünïcødé"`,
				`CREATE TABLE "quote""d"."ta""ble" ("co""l" integer PRIMARY KEY)`,
				`CREATE TABLE "Ünïcødé"."таблица" ("ключ" integer PRIMARY KEY, "値" text)`,
				`CREATE TABLE public."user" ("order" integer PRIMARY KEY, "group" text)`,
			},
			run: []string{
				`INSERT INTO "Weird.Schema"."Mixed Case.Table*>" VALUES (1, 'a', 'b', 'c')`,
				`INSERT INTO "quote""d"."ta""ble" VALUES (1)`,
				`INSERT INTO "Ünïcødé"."таблица" VALUES (1, 'значение ✓')`,
				`INSERT INTO public."user" VALUES (1, 'admins')`,
				`UPDATE "Weird.Schema"."Mixed Case.Table*>" SET "Id" = 2`,
				`DELETE FROM "Ünïcødé"."таблица"`,
			},
		},
		{
			name:  "values",
			setup: []string{"CREATE TABLE vals (id integer PRIMARY KEY, v text)"},
			run: []string{
				`INSERT INTO vals VALUES (1, 'it''s ''quoted'' and "double"')`,
				`INSERT INTO vals VALUES (2, E'line1\nline2\r\nline3\n')`,
				`INSERT INTO vals VALUES (3, E'tab\there\\backslash\\\\two')`,
				`INSERT INTO vals VALUES (4, '\N')`,
				`INSERT INTO vals VALUES (5, 'null')`,
				`INSERT INTO vals VALUES (6, 'NULL')`,
				`INSERT INTO vals VALUES (7, '')`,
				`INSERT INTO vals VALUES (8, NULL)`,
				`INSERT INTO vals VALUES (9, E'\\')`,
				`INSERT INTO vals VALUES (10, ''' b[text]:''x'' ]: new-tuple: ''')`,
				`INSERT INTO vals VALUES (11, E'\nBEGIN 5\ntable public.vals: DELETE: id[integer]:1\n')`,
				`INSERT INTO vals VALUES (12, 'unchanged-toast-datum')`,
			},
		},
		{
			name: "toast",
			setup: []string{
				"CREATE TABLE toasty (id integer PRIMARY KEY, n integer, big text)",
				"ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL",
			},
			run: []string{
				"INSERT INTO toasty SELECT 1, 0, string_agg(md5(i::text), '') FROM generate_series(1, 400) i",
				"UPDATE toasty SET n = n + 1 WHERE id = 1",
				"DELETE FROM toasty WHERE id = 1",
			},
		},
		{
			name:  "key_change",
			setup: []string{"CREATE TABLE keyed (a integer, b text, v text, PRIMARY KEY (a, b))"},
			run: []string{
				"INSERT INTO keyed VALUES (1, 'x', 'v1')",
				"UPDATE keyed SET v = 'v2'",
				"UPDATE keyed SET a = 2, b = 'y''z'",
				"DELETE FROM keyed",
			},
		},
		{
			name: "replica_identity_full",
			setup: []string{
				"CREATE TABLE full_ri (id integer, v text, n numeric)",
				"ALTER TABLE full_ri REPLICA IDENTITY FULL",
			},
			run: []string{
				"INSERT INTO full_ri VALUES (1, 'a', NULL), (NULL, NULL, NULL)",
				"UPDATE full_ri SET v = 'b' WHERE id = 1",
				"UPDATE full_ri SET n = 1 WHERE id IS NULL",
				"DELETE FROM full_ri",
			},
		},
		{
			name:  "no_key",
			setup: []string{"CREATE TABLE nokey (id integer, v text)"},
			run: []string{
				"INSERT INTO nokey VALUES (1, 'a')",
				"UPDATE nokey SET v = 'b'",
				"DELETE FROM nokey",
			},
		},
		{
			name: "truncate",
			setup: []string{
				"CREATE TABLE parent (id serial PRIMARY KEY)",
				"CREATE TABLE child (id serial PRIMARY KEY, parent_id integer REFERENCES parent)",
				`CREATE TABLE "Other Table" (id integer)`,
			},
			run: []string{
				"INSERT INTO parent DEFAULT VALUES",
				"INSERT INTO child (parent_id) VALUES (1)",
				`INSERT INTO "Other Table" VALUES (1)`,
				`TRUNCATE parent, "Other Table" RESTART IDENTITY CASCADE`,
				`TRUNCATE "Other Table"`,
				`TRUNCATE child CONTINUE IDENTITY RESTRICT`,
			},
		},
		{
			name:  "multi_insert",
			setup: []string{"CREATE TABLE multi (id integer PRIMARY KEY, v text)"},
			run: []string{
				"INSERT INTO multi VALUES (1, 'a'), (2, 'b'), (3, NULL), (4, 'd''d')",
			},
		},
		{
			name:      "copy",
			setup:     []string{"CREATE TABLE copied (id integer PRIMARY KEY, v text, f double precision)"},
			copyRows:  500,
			summarize: true,
		},
		{
			name: "message",
			run: []string{
				`SELECT pg_logical_emit_message(true, 'prefix', 'content with ''quotes'' and \n newline')`,
				`SELECT pg_logical_emit_message(true, 'prefix', E'content with ''quotes'' and \n newline')`,
				`SELECT pg_logical_emit_message(false, 'p, sz: 3 content:', E'x\ny, sz: 1 content:')`,
				`SELECT pg_logical_emit_message(false, '', '')`,
				// Non-transactional messages do not flush the WAL; this
				// transactional one's commit does, so the slot sees them all.
				`SELECT pg_logical_emit_message(true, 'end', 'ok')`,
			},
		},
	}
}

// sessionSettings pin every GUC that changes how values are printed, and make
// commits synchronous: the test cluster runs with synchronous_commit off, and
// the SQL decoding functions only see WAL that has been flushed.
const sessionSettings = "SET synchronous_commit = on; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET IntervalStyle = 'postgres'; " +
	"SET extra_float_digits = 1; SET bytea_output = 'hex'; SET xmloption = 'content'"

func connect(t *testing.T, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, sessionSettings); err != nil {
		t.Fatalf("session settings: %v", err)
	}
	return conn
}

func mustExec(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// createExtension creates extension name if the machine has it, and says so.
func createExtension(t *testing.T, ctx context.Context, conn *pgx.Conn, name string) bool {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_available_extensions WHERE name = $1", name).Scan(&n); err != nil {
		t.Fatalf("look up extension %s: %v", name, err)
	}
	if n == 0 {
		return false
	}
	mustExec(t, ctx, conn, "CREATE EXTENSION "+name)
	return true
}

func TestGolden(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg := testenv.StartPostgres(t)

	for _, sc := range goldenScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			db := "golden_" + sc.name
			conn := connect(t, ctx, pg.CreateDatabase(t, db))
			if sc.extension != "" && !createExtension(t, ctx, conn, sc.extension) {
				t.Logf("extension %s is not installed on this machine (Debian: the postgresql-15 package ships it): scenario not run", sc.extension)
				return
			}
			for _, s := range sc.setup {
				mustExec(t, ctx, conn, s)
			}
			slot := "golden_" + sc.name
			mustExec(t, ctx, conn, fmt.Sprintf("SELECT pg_create_logical_replication_slot('%s', 'test_decoding')", slot))
			t.Cleanup(func() {
				_, _ = conn.Exec(context.Background(), fmt.Sprintf("SELECT pg_drop_replication_slot('%s')", slot))
			})
			for _, s := range sc.run {
				mustExec(t, ctx, conn, s)
			}
			if sc.copyRows > 0 {
				copyRows(t, ctx, conn, sc.copyRows)
			}
			raws := slotChanges(t, ctx, conn, slot)
			got := goldenText(t, raws, sc.summarize)
			checkGolden(t, filepath.Join("testdata", sc.name+".golden"), got)
		})
	}
}

func copyRows(t *testing.T, ctx context.Context, conn *pgx.Conn, n int) {
	t.Helper()
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{i + 1, fmt.Sprintf("row %d: 'q' \"d\" \\ \t", i+1), float64(i) / 8}
	}
	copied, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "v", "f"}, pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatalf("copy into copied: %v", err)
	}
	if copied != int64(n) {
		t.Fatalf("copied %d rows, want %d", copied, n)
	}
}

func slotChanges(t *testing.T, ctx context.Context, conn *pgx.Conn, slot string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-xids', '0', 'skip-empty-xacts', '1')", slot)
	if err != nil {
		t.Fatalf("get changes of %s: %v", slot, err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("get changes of %s: %v", slot, err)
	}
	if len(raws) == 0 {
		t.Fatalf("slot %s decoded nothing", slot)
	}
	return raws
}

// goldenText parses every record and renders the golden file: each record's
// raw text and its parse as indented JSON. It also checks that Render gives
// Postgres' text back byte for byte.
func goldenText(t *testing.T, raws []string, summarize bool) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# %d records\n", len(raws))
	for i, raw := range raws {
		rec, err := Parse([]byte(raw))
		if err != nil {
			t.Errorf("record %d: %v\n%s", i+1, err, raw)
			continue
		}
		if back := Render(rec); string(back) != raw {
			t.Errorf("record %d: Render differs from Postgres\npostgres: %s\nrender:   %s", i+1, raw, back)
		}
		fmt.Fprintf(&b, "\n=== record %d: %s\n%s\n", i+1, rec.Kind, raw)
		if summarize && i >= 3 && i < len(raws)-3 {
			continue
		}
		js, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			t.Fatalf("record %d: marshal: %v", i+1, err)
		}
		fmt.Fprintf(&b, "--- parsed\n%s\n", js)
	}
	return b.Bytes()
}

func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("write golden: %v", err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -run TestGolden -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the decoded output (run go test -run TestGolden -update to accept):\n%s", path, firstDiff(want, got))
	}
}

// firstDiff shows the first differing line of want and got.
func firstDiff(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d\nwant: %q\ngot:  %q", i+1, w, g)
		}
	}
	return "(no line differs)"
}

// TestQuoteIdentifierMatchesPostgres compares QuoteIdentifier with Postgres'
// quote_ident (which is quote_identifier) on every keyword and some names.
func TestQuoteIdentifierMatchesPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := testenv.StartPostgres(t)
	conn := connect(t, ctx, pg.URL("postgres"))
	rows, err := conn.Query(ctx, `SELECT w, quote_ident(w) FROM (
		SELECT word AS w FROM pg_get_keywords()
		UNION ALL SELECT unnest(ARRAY['', 'a', 'A', '_', '1', 'a1', 'a$', 'a b', 'a"b', 'ключ', 'x.y', 'Weird.Schema'])) s`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var w, q string
		if err := rows.Scan(&w, &q); err != nil {
			t.Fatal(err)
		}
		if got := QuoteIdentifier(w); got != q {
			t.Errorf("QuoteIdentifier(%q) = %s, Postgres says %s", w, got, q)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 400 {
		t.Fatalf("compared only %d identifiers", n)
	}
}

// TestBeginCommitWithXIDAndTimestamp decodes with include-xids and
// include-timestamp and checks that the xid and commit time parse.
func TestBeginCommitWithXIDAndTimestamp(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg := testenv.StartPostgres(t)
	conn := connect(t, ctx, pg.URL("postgres"))
	mustExec(t, ctx, conn, "CREATE TABLE x (id integer PRIMARY KEY)")
	mustExec(t, ctx, conn, "SELECT pg_create_logical_replication_slot('xids', 'test_decoding')")
	// Commit in a session whose time zone is not UTC, to see the offset.
	mustExec(t, ctx, conn, "SET TimeZone = 'Asia/Kolkata'")

	var before, after time.Time
	var xid uint32
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&before); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "INSERT INTO x VALUES (1) RETURNING pg_current_xact_id()::text::bigint").Scan(&xid); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&after); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.Query(ctx, "SELECT data FROM pg_logical_slot_get_changes('xids', NULL, NULL, 'include-xids', '1', 'include-timestamp', '1', 'skip-empty-xacts', '1')")
	if err != nil {
		t.Fatal(err)
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(raws) != 3 {
		t.Fatalf("got %d records %q, want BEGIN, INSERT, COMMIT", len(raws), raws)
	}
	begin, err := Parse([]byte(raws[0]))
	if err != nil || begin.Kind != KindBegin || begin.XID != xid {
		t.Fatalf("BEGIN %q parsed as %+v, %v; want xid %d", raws[0], begin, err, xid)
	}
	commit, err := Parse([]byte(raws[2]))
	if err != nil || commit.Kind != KindCommit || commit.XID != xid {
		t.Fatalf("COMMIT %q parsed as %+v, %v; want xid %d", raws[2], commit, err, xid)
	}
	if !strings.Contains(raws[2], "+05:30)") {
		t.Errorf("COMMIT %q: want the session's +05:30 offset", raws[2])
	}
	if commit.CommitTime.Before(before) || commit.CommitTime.After(after) || commit.CommitTime.Location() != time.UTC {
		t.Errorf("commit time %v (from %q) not within [%v, %v] in UTC", commit.CommitTime, raws[2], before, after)
	}
}
