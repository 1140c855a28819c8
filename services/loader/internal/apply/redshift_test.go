package apply

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/services/loader/internal/warehouse"
	"github.com/redms/redms/services/rsemu/emu"
)

// TestApplyRedshift runs the scenarios through the Redshift emulator
// (services/rsemu): Redshift SQL, COPY from the S3 manifest, and Redshift's
// refusals.
func TestApplyRedshift(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool, read := startRedshift(t, pg, s3srv, "wh")
	runScenarios(t, newEnv(t, warehouse.Redshift, pool, read, s3srv))
}

// startRedshift puts the emulator in front of a new database db of pg and
// returns a pool to the emulator and one to the backing database.
func startRedshift(t *testing.T, pg *testenv.Postgres, s3srv *testenv.S3, db string) (*pgxpool.Pool, *pgxpool.Pool) {
	backing := pg.CreateDatabase(t, db)
	srv, err := emu.Start(context.Background(), emu.Config{
		Listen: "127.0.0.1:0", PostgresURL: pg.URL("postgres"),
		S3Endpoint: s3srv.Endpoint(), S3Region: s3srv.Region(),
		S3AccessKeyID: s3srv.AccessKeyID(), S3SecretAccessKey: s3srv.SecretAccessKey(),
	})
	if err != nil {
		t.Fatalf("start redshift emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close redshift emulator: %v", err)
		}
	})
	pool := testenv.Pool(t, "postgres://postgres@"+srv.Addr()+"/"+db+"?sslmode=disable")
	return pool, testenv.Pool(t, backing)
}

// TestRedshiftTableKeys: created targets declare the source key as PRIMARY
// KEY and SORTKEY and distribute on its first column; a retype, widening or
// drop that hits such a column (which Redshift refuses to ALTER) rebuilds
// the table inside the window's transaction.
func TestRedshiftTableKeys(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool, read := startRedshift(t, pg, s3srv, "wh")
	e := newEnv(t, warehouse.Redshift, pool, read, s3srv)
	ctx := context.Background()
	keys := func(table string) string {
		t.Helper()
		return queryLines(t, read, `SELECT "column" || ' ' || type || ' dist=' || distkey || ' sort=' || sortkey || ' pk=' ||
			EXISTS (SELECT 1 FROM rsemu.column_constraints k JOIN pg_attribute a ON a.attrelid = k.relid AND a.attnum = k.attnum
				WHERE k.relid = ('public.' || quote_ident(d.tablename))::regclass AND a.attname = d."column")
			FROM rsemu.pg_table_def d WHERE schemaname = 'public' AND tablename = '`+table+`' ORDER BY "column"`)
	}

	t.Run("created with keys", func(t *testing.T) {
		e.t = t
		k := func(s string) rec { return pk(s, "region", "id") }
		e.apply(e.window("keyed",
			k(`table public.keyed: INSERT: id[integer]:1 region[text]:'eu' v[text]:'a'`),
			k(`table public.keyed: INSERT: id[integer]:2 region[text]:'us' v[text]:'b'`),
		))
		want := "id integer dist=false sort=2 pk=true\n" +
			"region character varying(65535) dist=true sort=1 pk=true\n" +
			"v character varying(65535) dist=false sort=0 pk=false"
		if got := keys("keyed"); got != want {
			t.Errorf("keys:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("retype, widening and drop of key columns rebuild the table", func(t *testing.T) {
		e.t = t
		// An operator's target: keyed, distributed and sorted.
		if _, err := pool.Exec(ctx, `SET enable_case_sensitive_identifier TO true;
			CREATE TABLE public.rb (code VARCHAR(20) NOT NULL, n INTEGER NOT NULL, v INTEGER, s DATE, w VARCHAR(8), PRIMARY KEY (code, n))
			DISTKEY (code) SORTKEY (code, n, s)`); err != nil {
			t.Fatal(err)
		}
		types := map[string]string{"code": "character varying(5)", "w": "character varying(2)"}
		k := func(s string, keys ...string) rec { return pk(s, keys...).typed(types) }
		e.apply(e.window("rb",
			k(`table public.rb: INSERT: code[character varying]:'a' n[integer]:1 v[integer]:1 s[date]:'2026-01-01' w[character varying]:'w1'`, "code", "n"),
			k(`table public.rb: INSERT: code[character varying]:'b' n[integer]:2 v[integer]:2 s[date]:'2026-01-02' w[character varying]:'w2'`, "code", "n"),
		))
		// widening the DISTKEY (a SORTKEY and PRIMARY KEY column too),
		// dropping a SORTKEY column, retyping another one: one rebuild
		types = map[string]string{"code": "character varying(10)", "w": "character varying(4)"}
		e.apply(e.window("rb",
			k(`table public.rb: INSERT: code[character varying]:'cccccccccc' n[integer]:3 v[bigint]:4000000000 w[character varying]:'w3'`, "code", "n"),
		))
		if got, want := e.columns("rb"), "code VARCHAR(40), n INTEGER, v BIGINT, w VARCHAR(16)"; got != want {
			t.Errorf("columns after the first rebuild: %s, want %s", got, want)
		}
		if got, want := keys("rb"), "code character varying(40) dist=true sort=1 pk=true\n"+
			"n integer dist=false sort=2 pk=true\n"+
			"v bigint dist=false sort=0 pk=false\n"+
			"w character varying(16) dist=false sort=0 pk=false"; got != want {
			t.Errorf("keys after the first rebuild:\n%s\nwant\n%s", got, want)
		}
		// retyping a key column
		e.apply(e.window("rb",
			k(`table public.rb: INSERT: code[character varying]:'d' n[bigint]:4 v[bigint]:4 w[character varying]:'w4'`, "code", "n"),
		))
		if got, want := e.columns("rb"), "code VARCHAR(40), n BIGINT, v BIGINT, w VARCHAR(16)"; got != want {
			t.Errorf("columns after retyping a key column: %s, want %s", got, want)
		}
		// the source's key changes and its old key column goes
		e.apply(e.window("rb",
			k(`table public.rb: INSERT: n[bigint]:5 v[bigint]:5 w[character varying]:'w5'`, "n"),
		))
		e.expect("rb", `{"n":1,"v":1,"w":"w1"}
{"n":2,"v":2,"w":"w2"}
{"n":3,"v":4000000000,"w":"w3"}
{"n":4,"v":4,"w":"w4"}
{"n":5,"v":5,"w":"w5"}`)
		if got, want := keys("rb"), "n bigint dist=true sort=1 pk=true\n"+
			"v bigint dist=false sort=0 pk=false\n"+
			"w character varying(16) dist=false sort=0 pk=false"; got != want {
			t.Errorf("keys after the rebuilds:\n%s\nwant\n%s", got, want)
		}
	})
}

// TestRedshiftSuperVarbyte: with REDMS_REDSHIFT_JSON=super and
// REDMS_REDSHIFT_BYTEA=varbyte json and jsonb load as SUPER, bytea as
// VARBYTE, from the same staged CSV.
func TestRedshiftSuperVarbyte(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool, read := startRedshift(t, pg, s3srv, "wh")
	e := newEnv(t, warehouse.Redshift, pool, read, s3srv)
	cfg := e.ap.cfg
	cfg.JSONSuper, cfg.ByteaVarbyte = true, true
	ap, err := New(cfg, pool, e.s3c, e.snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.ap = ap
	big := strings.Repeat("ab", 70000) // 70000 bytes: more than a VARCHAR holds
	res := e.apply(e.window("docs",
		pk(`table public.docs: INSERT: id[integer]:1 j[json]:'{"a": [1, "x"], "b": null}' jb[jsonb]:'{"k": "v\"q"}' b[bytea]:'\x00ff10'`),
		pk(`table public.docs: INSERT: id[integer]:2 j[json]:'"just a string"' jb[jsonb]:null b[bytea]:'\x`+big+`'`),
		pk(`table public.docs: INSERT: id[integer]:3 j[json]:'[]' jb[jsonb]:'{}' b[bytea]:'\x'`),
	))
	if res.Adjusted["bytes-empty-null"] != 1 {
		t.Errorf("adjusted %v", res.Adjusted)
	}
	if got, want := queryLines(t, read, `SELECT "column" || ' ' || type FROM rsemu.pg_table_def WHERE tablename = 'docs' ORDER BY "column"`),
		"b varbyte(1048576)\nid integer\nj super\njb super"; got != want {
		t.Errorf("types:\n%s\nwant\n%s", got, want)
	}
	// An empty bytea is NULL (counted): COPY loads an empty field as NULL
	// into a VARBYTE, as into every type but CHAR and VARCHAR.
	if got, want := queryLines(t, read, `SELECT id || ' ' || j::text || ' ' || coalesce(jb::text, 'NULL') || ' ' || coalesce(length(b) || ' ' || encode(substr(b, 1, 3), 'hex'), 'NULL') FROM public.docs ORDER BY id`),
		`1 {"a": [1, "x"], "b": null} {"k": "v\"q"} 3 00ff10`+"\n"+
			`2 "just a string" NULL 70000 ababab`+"\n"+
			`3 [] {} NULL`; got != want {
		t.Errorf("values:\n%s\nwant\n%s", got, want)
	}
}

// TestRedshiftFence: two owners of one table (a lease overlap) apply at the
// same time under SNAPSHOT and under SERIALIZABLE isolation. The second
// waits for the first one's lock, then finds the applied position moved and
// retries; nothing is applied twice or lost.
func TestRedshiftFence(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	for _, iso := range []string{"snapshot", "serializable"} {
		t.Run(iso, func(t *testing.T) {
			backing := pg.CreateDatabase(t, "fence_"+iso)
			srv, err := emu.Start(context.Background(), emu.Config{
				Listen: "127.0.0.1:0", PostgresURL: pg.URL("postgres"), Isolation: iso,
				S3Endpoint: s3srv.Endpoint(), S3Region: s3srv.Region(),
				S3AccessKeyID: s3srv.AccessKeyID(), S3SecretAccessKey: s3srv.SecretAccessKey(),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { srv.Close() })
			url := "postgres://postgres@" + srv.Addr() + "/fence_" + iso + "?sslmode=disable"
			read := testenv.Pool(t, backing)
			a := newEnv(t, warehouse.Redshift, testenv.Pool(t, url), read, s3srv)
			b, err := New(a.ap.cfg, testenv.Pool(t, url), a.s3c, a.snap, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			a.apply(a.window("fenced", pk(`table public.fenced: INSERT: id[integer]:1 n[integer]:0`)))
			// Both owners got the same next changes; the second owner's
			// window has one more.
			w := a.window("fenced",
				pk(`table public.fenced: UPDATE: id[integer]:1 n[integer]:1`),
				pk(`table public.fenced: INSERT: id[integer]:2 n[integer]:1`),
			)
			more := w
			more.Msgs = append(w.Msgs[:2:2], a.window("fenced", pk(`table public.fenced: UPDATE: id[integer]:2 n[integer]:2`)).Msgs...)
			errB := make(chan error, 1)
			a.ap.locked = func() {
				a.ap.locked = nil
				go func() { _, err := b.Apply(ctx, more); errB <- err }()
				// until b waits for a's lock
				testenv.Eventually(t, 20*time.Second, "the second owner to wait for the first one's lock", func() bool {
					return a.query(`SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = 'fence_`+iso+`'`) == "1"
				})
			}
			res := a.apply(w)
			if !res.Applied {
				t.Fatalf("first owner: %+v", res)
			}
			err = <-errB
			var pe *ParkError
			if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "applied position") && !warehouse.SerializationConflict(err) {
				t.Fatalf("second owner: want a retryable applied position error or conflict, got %v", err)
			}
			res, err = b.Apply(ctx, more) // its retry
			if err != nil || !res.Applied || res.Replays != 2 || res.Changes != 1 {
				t.Fatalf("second owner's retry: %+v %v", res, err)
			}
			a.expect("fenced", `{"id":1,"n":1}
{"id":2,"n":2}`)
		})
	}
}
