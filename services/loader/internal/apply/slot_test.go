package apply

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// TestApplyFromRealSlot decodes real changes with test_decoding from a
// source database, applies them window by window (and a replay of every
// window), and compares the source and target tables row by row.
func TestApplyFromRealSlot(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	t.Run("postgres", func(t *testing.T) {
		pool := testenv.Pool(t, pg.CreateDatabase(t, "wh"))
		slotScenario(t, pg, newEnv(t, warehouse.Postgres, pool, pool, s3srv), "src")
	})
	t.Run("redshift", func(t *testing.T) {
		pool, read := startRedshift(t, pg, s3srv, "rs")
		slotScenario(t, pg, newEnv(t, warehouse.Redshift, pool, read, s3srv), "src2")
	})
}

func slotScenario(t *testing.T, pg *testenv.Postgres, e *env, srcDB string) {
	ctx := context.Background()
	srcURL := pg.CreateDatabase(t, srcDB)

	src, err := pgx.Connect(ctx, srcURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close(context.Background()) })
	run := func(sql string) {
		t.Helper()
		if _, err := src.Exec(ctx, sql); err != nil {
			t.Fatalf("%v\nsql: %s", err, sql)
		}
	}
	run(`SET synchronous_commit = on`) // decoding reads only flushed WAL
	run(`CREATE TABLE accounts (id integer PRIMARY KEY, owner text, balance numeric(12,2), active boolean, doc text)`)
	run(`ALTER TABLE accounts ALTER COLUMN doc SET STORAGE EXTERNAL`) // out of line, uncompressed: TOAST
	run(`CREATE TABLE pairs (a integer, b text, v integer, PRIMARY KEY (a, b))`)
	run(`CREATE TABLE logs (id integer, msg text)`)
	run(`ALTER TABLE logs REPLICA IDENTITY FULL`)
	run(`SELECT pg_create_logical_replication_slot('t_` + srcDB + `', 'test_decoding')`)

	big := strings.Repeat("0123456789", 1000)
	var batches [][]string
	batches = append(batches, []string{
		`INSERT INTO accounts SELECT g, 'owner ' || g, g * 1.5, g % 2 = 0, NULL FROM generate_series(1, 50) g`,
		fmt.Sprintf(`UPDATE accounts SET doc = '%s' || id WHERE id <= 10`, big),
		`UPDATE accounts SET balance = balance + 1 WHERE id <= 20`, // unchanged-toast-datum for doc
		`INSERT INTO pairs SELECT g, 'k' || g, g FROM generate_series(1, 20) g`,
		`INSERT INTO logs VALUES (1, 'a'), (2, 'b'), (2, NULL), (3, NULL), (NULL, NULL)`,
	})
	batches = append(batches, []string{
		`UPDATE accounts SET id = id + 1000 WHERE id IN (3, 4)`, // key change, TOAST unchanged
		`DELETE FROM accounts WHERE id BETWEEN 30 AND 35`,
		`UPDATE accounts SET owner = '', active = NULL WHERE id = 40`,
		`UPDATE pairs SET b = b || 'x' WHERE a <= 5`,
		`DELETE FROM pairs WHERE a BETWEEN 6 AND 8`,
		`UPDATE logs SET msg = 'c' WHERE id = 1`,
		`UPDATE logs SET msg = 'd' WHERE id = 2 AND msg IS NULL`,
		`DELETE FROM logs WHERE id = 3`,
		`ALTER TABLE accounts ADD COLUMN note varchar(5)`,
		`UPDATE accounts SET note = 'n' || id WHERE id BETWEEN 41 AND 45`,
		`INSERT INTO accounts (id, owner, note) VALUES (60, 'late', '\N')`,
	})
	batches = append(batches, []string{
		`UPDATE accounts SET balance = 0 WHERE id = 1`, // doc unchanged, known only in the warehouse
		`TRUNCATE pairs`,
		`INSERT INTO pairs VALUES (100, 'new', 1)`,
		`ALTER TABLE accounts DROP COLUMN active`,
		`UPDATE accounts SET owner = 'after drop' WHERE id = 2`,
	})

	for bi, batch := range batches {
		for _, sql := range batch {
			run(sql)
		}
		windows := e.slotWindows(t, src, "t_"+srcDB)
		for _, w := range windows {
			e.apply(w)
		}
		// A replay of the whole batch (watermarks reset) changes nothing.
		if bi == 1 {
			for _, w := range windows {
				e.resetState(w.Table.Name, walheader.Pos{})
				e.apply(w)
			}
		}
	}
	// test_decoding prints types without their modifiers, so numeric(12,2)
	// arrives as numeric and lands as NUMERIC(19,8).
	for _, tc := range []struct{ table, source, order string }{
		{"accounts", "id, owner, balance::numeric(19,8) AS balance, doc, note", "id"},
		{"pairs", "*", "a, b"},
		{"logs", "*", "id, msg"},
	} {
		q := `SELECT row_to_json(t)::text FROM (SELECT %s FROM public.%s ORDER BY %s) t`
		want := queryLines(t, src, fmt.Sprintf(q, tc.source, tc.table, tc.order))
		got := queryLines(t, e.read, fmt.Sprintf(q, "*", tc.table, tc.order))
		if got != want {
			t.Errorf("%s differs:\n%s", tc.table, lineDiff(want, got))
		}
	}
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryLines(t *testing.T, q querier, sql string) string {
	t.Helper()
	rows, err := q.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// slotWindows reads the slot's pending changes and groups them into one
// window per table, headers as capture sets them.
func (e *env) slotWindows(t *testing.T, src *pgx.Conn, slot string) []Window {
	t.Helper()
	keys := map[string][]string{"accounts": {"id"}, "pairs": {"a", "b"}}
	rows, err := src.Query(context.Background(), `SELECT lsn::text, data FROM pg_logical_slot_get_changes($1, NULL, NULL, 'include-xids', '0')`, slot)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	byTable := map[string]*Window{}
	var order []string
	ordinal := map[string]int{}
	for rows.Next() {
		var lsn, data string
		if err := rows.Scan(&lsn, &data); err != nil {
			t.Fatal(err)
		}
		rec, err := testdecoding.Parse([]byte(data))
		if err != nil {
			t.Fatalf("parse %q: %v", data, err)
		}
		var tables []testdecoding.Table
		switch rec.Kind {
		case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete:
			tables = []testdecoding.Table{rec.Table}
		case testdecoding.KindTruncate:
			tables = rec.Tables
		default:
			continue
		}
		for _, tb := range tables {
			w := byTable[tb.Name]
			if w == nil {
				w = &Window{Table: subject.Table{DB: "src", Schema: tb.Schema, Name: tb.Name}}
				byTable[tb.Name] = w
				order = append(order, tb.Name)
			}
			meta := walheader.Meta{LSN: lsn, Ordinal: ordinal[lsn], CommitLSN: lsn, Keys: keys[tb.Name], KeySource: walheader.KeySourcePrimaryKey}
			if tb.Name == "logs" {
				meta.Keys, meta.KeySource = []string{}, walheader.KeySourceReplicaIdentityFull
			}
			ordinal[lsn]++
			e.seq++
			w.Msgs = append(w.Msgs, NewMsg(e.seq, meta, []byte(data)))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var out []Window
	for _, name := range order {
		out = append(out, *byTable[name])
	}
	return out
}

// lineDiff lists the lines only the source (-) or only the target (+) has.
func lineDiff(want, got string) string {
	count := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+l)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
