package apply

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/demo/verify"
	"github.com/redms/redms/pkg/demo/workload"
	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// TestApplyWorkload replicates the shared seeded workload (every mapped type
// with edge values, TOAST, composite and quoted keys, key changes, COPY, a
// column added, dropped and retyped, a multi-table TRUNCATE) from a real slot,
// applies it in random windows with redeliveries, and checks the warehouse
// with pkg/demo/verify, the comparison the end-to-end tests use.
func TestApplyWorkload(t *testing.T) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	src := testenv.Pool(t, pg.CreateDatabase(t, "wsrc"))
	if _, err := src.Exec(ctx, `SELECT pg_create_logical_replication_slot('w', 'test_decoding')`); err != nil {
		t.Fatal(err)
	}
	gen := workload.New(7, workload.Config{StatementsPerTx: 6, InitialRows: 20})
	if err := gen.Setup(ctx, src); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Run(ctx, src, 3*time.Second, workload.WithRate(60)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Exec(ctx, `CHECKPOINT`); err != nil { // flush WAL: decoding reads only flushed WAL
		t.Fatal(err)
	}
	tables := slotTables(t, src, "w")
	t.Run("postgres", func(t *testing.T) {
		pool := testenv.Pool(t, pg.CreateDatabase(t, "wwh"))
		applyWorkload(t, newEnv(t, warehouse.Postgres, pool, pool, s3srv), tables, src, warehouse.Postgres)
	})
	t.Run("redshift", func(t *testing.T) {
		pool, read := startRedshift(t, pg, s3srv, "wrs")
		applyWorkload(t, newEnv(t, warehouse.Redshift, pool, read, s3srv), tables, src, warehouse.Redshift)
	})
}

func applyWorkload(t *testing.T, e *env, tables []Window, src *pgxpool.Pool, d warehouse.Dialect) {
	ctx := context.Background()
	rnd := rand.New(rand.NewPCG(7, 7))
	changes := 0
	for _, tw := range tables {
		msgs := tw.Msgs
		changes += len(msgs)
		for done := 0; done < len(msgs); {
			// Redeliver a random part of what was applied, then a new stretch.
			from := done - rnd.IntN(min(done, 20)+1)
			to := min(len(msgs), done+1+rnd.IntN(60))
			if rnd.IntN(3) == 0 {
				// The redelivered part arrives again as new messages (a
				// capture restart republishes): the watermark lets it through.
				e.resetState(tw.Table.Name, walheader.Pos{})
			}
			e.apply(Window{Table: tw.Table, Msgs: msgs[from:to]})
			done = to
		}
	}
	t.Logf("%d changes in %d tables", changes, len(tables))
	if changes < 500 {
		t.Fatalf("only %d changes decoded: the workload did not run", changes)
	}
	rep, err := verify.Compare(ctx, src, e.read, verify.Options{MaxDiffs: 3, Dialect: d})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("warehouse differs from source after %d changes:\n%s", changes, rep.Summary())
		for _, d := range rep.Diffs {
			t.Log(d.String())
		}
	}
}

// slotTables reads the slot's changes into one window of messages per table
// (in stream order, stream sequences assigned in decoding order), with the
// key headers capture would send: the primary key, else FULL identity.
func slotTables(t *testing.T, src *pgxpool.Pool, slot string) []Window {
	t.Helper()
	ctx := context.Background()
	rows, err := src.Query(ctx, `SELECT lsn::text, data FROM pg_logical_slot_get_changes($1, NULL, NULL)`, slot)
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		lsn, data string
		rec       testdecoding.Record
	}
	var all []change
	for rows.Next() {
		var c change
		if err := rows.Scan(&c.lsn, &c.data); err != nil {
			t.Fatal(err)
		}
		if c.rec, err = testdecoding.Parse([]byte(c.data)); err != nil {
			t.Fatalf("parse %q: %v", c.data, err)
		}
		all = append(all, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	keyCache := map[testdecoding.Table]walheader.Meta{}
	keysOf := func(tb testdecoding.Table) walheader.Meta {
		if m, ok := keyCache[tb]; ok {
			return m
		}
		var cols []string
		var ident string
		err := src.QueryRow(ctx, `SELECT coalesce(array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum)) FILTER (WHERE a.attname IS NOT NULL), '{}'), c.relreplident::text
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
			LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)
			WHERE n.nspname = $1 AND c.relname = $2 GROUP BY c.relreplident`, tb.Schema, tb.Name).Scan(&cols, &ident)
		m := walheader.Meta{Keys: cols, KeySource: walheader.KeySourcePrimaryKey}
		switch {
		case err != nil:
			m = walheader.Meta{Keys: []string{}, KeySource: walheader.KeySourceNone} // dropped since
		case ident == "f":
			m = walheader.Meta{Keys: []string{}, KeySource: walheader.KeySourceReplicaIdentityFull}
		case len(cols) == 0:
			m.KeySource = walheader.KeySourceNone
		}
		// the declared types, as capture sends them (Redms-Types)
		var names, types []string
		if err := src.QueryRow(ctx, `SELECT coalesce(array_agg(a.attname::text ORDER BY a.attnum), '{}'), coalesce(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum), '{}')
			FROM pg_attribute a WHERE a.attrelid = to_regclass(quote_ident($1) || '.' || quote_ident($2)) AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypmod >= 0`,
			tb.Schema, tb.Name).Scan(&names, &types); err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			if m.Types == nil {
				m.Types = map[string]string{}
			}
			m.Types[n] = types[i]
		}
		keyCache[tb] = m
		return m
	}
	byTable := map[testdecoding.Table]*Window{}
	var order []testdecoding.Table
	ordinal := map[string]int{}
	var seq uint64
	for _, c := range all {
		var tables []testdecoding.Table
		switch c.rec.Kind {
		case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete:
			tables = []testdecoding.Table{c.rec.Table}
		case testdecoding.KindTruncate:
			tables = c.rec.Tables
		}
		for _, tb := range tables {
			w := byTable[tb]
			if w == nil {
				w = &Window{Table: subject.Table{DB: "wsrc", Schema: tb.Schema, Name: tb.Name}}
				byTable[tb] = w
				order = append(order, tb)
			}
			m := keysOf(tb)
			m.LSN, m.CommitLSN, m.Ordinal = c.lsn, c.lsn, ordinal[c.lsn]
			ordinal[c.lsn]++
			seq++
			w.Msgs = append(w.Msgs, NewMsg(seq, m, []byte(c.data)))
		}
	}
	out := make([]Window, 0, len(order))
	for _, tb := range order {
		out = append(out, *byTable[tb])
	}
	return out
}
