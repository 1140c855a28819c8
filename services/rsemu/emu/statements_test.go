package emu_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestStatements: the statement rules, each rejected and accepted.
func TestStatements(t *testing.T) {
	e := startEnv(t)
	t.Run("temp tables", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT NOT NULL, v VARCHAR(3))")
		wantErr(t, c, "42P16", "temporary tables cannot specify a schema name", "CREATE TEMP TABLE public.x (LIKE t)")
		wantErr(t, c, "42P16", "temporary tables cannot specify a schema name", "CREATE TEMPORARY TABLE public.y (id int)")
		mustExec(t, c, "CREATE TEMP TABLE x (LIKE t)")
		mustExec(t, c, "CREATE TEMPORARY TABLE y (k0 INT, c0 VARCHAR(2))")
		// LIKE keeps the byte-length rule and NOT NULL
		wantErr(t, c, "22001", "character varying(3)", "INSERT INTO x VALUES (1, 'abcd')")
		wantErr(t, c, "23502", "null value", "INSERT INTO x (v) VALUES ('a')")
		wantErr(t, c, "22001", "character varying(2)", "INSERT INTO y VALUES (1, 'abc')")
		mustExec(t, c, "INSERT INTO x VALUES (1, 'a')")
		wantRows(t, c, "1|a", "SELECT * FROM x")
	})
	t.Run("merge statements", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, `SET enable_case_sensitive_identifier TO true`)
		mustExec(t, c, `CREATE TABLE "T" ("Id" INT, v VARCHAR(10), w INT)`)
		mustExec(t, c, `INSERT INTO "T" VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)`)
		mustExec(t, c, `BEGIN`)
		mustExec(t, c, `CREATE TEMP TABLE "tmp" ("k0" INT, "c0" VARCHAR(10))`)
		mustExec(t, c, `INSERT INTO "tmp" VALUES (2, 'B'), (4, 'D')`)
		mustExec(t, c, `DELETE FROM "public"."T" USING "tmp" WHERE "public"."T"."Id" = "tmp"."k0"`)
		mustExec(t, c, `INSERT INTO "public"."T" ("Id", "v") SELECT "k0", "c0" FROM "tmp"`)
		mustExec(t, c, `UPDATE "public"."T" SET "w" = "tmp"."k0" * 10 FROM "tmp" WHERE "public"."T"."Id" = "tmp"."k0"`)
		mustExec(t, c, `DROP TABLE "tmp"`)
		mustExec(t, c, `COMMIT`)
		wantRows(t, c, "1|a|1\n2|B|20\n3|c|3\n4|D|40", `SELECT * FROM "T" ORDER BY 1`)
		mustExec(t, c, `MERGE INTO "T" USING (SELECT 1 AS k, 'm' AS v) s ON "T"."Id" = s.k WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.k, s.v, 0)`)
		wantRows(t, c, "m", `SELECT v FROM "T" WHERE "Id" = 1`)
		wantErr(t, c, "42601", `syntax error at or near "AND"`, `MERGE INTO "T" USING (SELECT 1 AS k) s ON "T"."Id" = s.k WHEN MATCHED AND s.k > 0 THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.k, 'x', 0)`)
		wantErr(t, c, "42601", "WHEN MATCHED", `MERGE INTO "T" USING (SELECT 1 AS k) s ON "T"."Id" = s.k WHEN MATCHED THEN DELETE`)
	})
	t.Run("clauses Redshift lacks", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT PRIMARY KEY, v INT)")
		// primary keys are not enforced, as in Redshift
		mustExec(t, c, "INSERT INTO t VALUES (1, 1), (1, 2)")
		wantErr(t, c, "42601", `syntax error at or near "ON"`, "INSERT INTO t VALUES (2, 2) ON CONFLICT DO NOTHING")
		wantErr(t, c, "42601", `syntax error at or near "RETURNING"`, "INSERT INTO t VALUES (2, 2) RETURNING id")
		wantErr(t, c, "42601", `syntax error at or near "RETURNING"`, "UPDATE t SET v = 3 RETURNING id")
		wantErr(t, c, "42601", `syntax error at or near "RETURNING"`, "DELETE FROM t RETURNING id")
		wantErr(t, c, "42601", `syntax error at or near "INDEX"`, "CREATE INDEX i ON t (v)")
		wantErr(t, c, "42601", `syntax error at or near "SEQUENCE"`, "CREATE SEQUENCE s")
		wantErr(t, c, "42883", "function nextval does not exist", "SELECT nextval('rsemu.query_id')")
		wantErr(t, c, "42601", `syntax error at or near "UNLOGGED"`, "CREATE UNLOGGED TABLE u (id INT)")
		wantErr(t, c, "42601", `syntax error at or near "UPDATE"`, "SELECT v FROM t WHERE id = 1 FOR UPDATE")
		wantRows(t, c, "2", "SELECT count(*) FROM t")
		mustExec(t, c, "CREATE TABLE ids (id BIGINT IDENTITY(0,1), v INT)")
		mustExec(t, c, "INSERT INTO ids (v) VALUES (7), (8)")
		wantRows(t, c, "0|7\n1|8", "SELECT id, v FROM ids ORDER BY id")
	})
	t.Run("alter column type", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (v VARCHAR(3), n INT)")
		mustExec(t, c, "INSERT INTO t VALUES ('abc', 1)")
		mustExec(t, c, "BEGIN")
		wantErr(t, c, "25001", "ALTER TABLE ALTER COLUMN cannot run inside a transaction block", "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(10)")
		mustExec(t, c, "ROLLBACK")
		wantErr(t, c, "0A000", `target data type "integer" is not supported`, "ALTER TABLE t ALTER COLUMN v TYPE INTEGER")
		wantErr(t, c, "0A000", `target data type "character varying(10)" is not supported`, "ALTER TABLE t ALTER COLUMN n TYPE VARCHAR(10)")
		mustExec(t, c, "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(10)")
		mustExec(t, c, "INSERT INTO t VALUES ('abcdefghij', 2)")
		if res := c.PgConn().ExecParams(ctxT(t), "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(12)", nil, nil, nil, nil).Read(); res.Err != nil {
			t.Fatalf("extended ALTER COLUMN: %v", res.Err)
		}
		mustExec(t, c, "BEGIN")
		res := c.PgConn().ExecParams(ctxT(t), "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(14)", nil, nil, nil, nil).Read()
		checkErr(t, res.Err, "25001", "cannot run inside a transaction block", "extended ALTER COLUMN in a transaction")
		mustExec(t, c, "ROLLBACK")
		wantErr(t, c, "22001", "character varying(12)", "INSERT INTO t VALUES ('abcdefghijklm', 3)")
		wantErr(t, c, "0A000", "target column size 5 should be greater or equal to current maximum column size 10", "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(5)")
		mustExec(t, c, "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(10)") // shrinking to the longest value is allowed
		wantRows(t, c, "10", "SELECT character_maximum_length FROM information_schema.columns WHERE table_name = 't' AND column_name = 'v'")
	})
	t.Run("alter column type of a constrained or defaulted column", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id VARCHAR(5) PRIMARY KEY, u VARCHAR(5) UNIQUE, d VARCHAR(5) DEFAULT 'x', "+
			"f VARCHAR(5) REFERENCES other (id), a VARCHAR(5), b VARCHAR(5), p VARCHAR(5), q VARCHAR(5), v VARCHAR(5), "+
			"PRIMARY KEY (a, b), CONSTRAINT uq UNIQUE (p), FOREIGN KEY (q) REFERENCES other (id))")
		for _, col := range []string{"id", "u", "f", "a", "b", "p", "q"} {
			wantErr(t, c, "0A000", `cannot alter type of column "`+col+`" with a PRIMARY KEY, UNIQUE or FOREIGN KEY constraint`,
				"ALTER TABLE t ALTER COLUMN "+col+" TYPE VARCHAR(10)")
		}
		wantErr(t, c, "0A000", `cannot alter type of column "d" with a DEFAULT`, "ALTER TABLE t ALTER COLUMN d TYPE VARCHAR(10)")
		mustExec(t, c, "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(10)")
		// a constraint added later counts too
		mustExec(t, c, "ALTER TABLE t ADD CONSTRAINT vk UNIQUE (v)")
		wantErr(t, c, "0A000", `cannot alter type of column "v" with a PRIMARY KEY`, "ALTER TABLE t ALTER COLUMN v TYPE VARCHAR(12)")
		mustExec(t, c, "CREATE TABLE w (k VARCHAR(5), v VARCHAR(5))")
		mustExec(t, c, "ALTER TABLE w ADD PRIMARY KEY (k)")
		wantErr(t, c, "0A000", `cannot alter type of column "k" with a PRIMARY KEY`, "ALTER TABLE w ALTER COLUMN k TYPE VARCHAR(12)")
		mustExec(t, c, "ALTER TABLE w ALTER COLUMN v TYPE VARCHAR(12)")
		// dropped with its table: a new table of the same name is free
		mustExec(t, c, "DROP TABLE w")
		mustExec(t, c, "CREATE TABLE w (k VARCHAR(5))")
		mustExec(t, c, "ALTER TABLE w ALTER COLUMN k TYPE VARCHAR(12)")
	})
	t.Run("distribution and sort keys are kept", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT NOT NULL PRIMARY KEY ENCODE az64, k VARCHAR(10) DISTKEY, s DATE, b VARCHAR(5) ENCODE bytedict, "+
			"r VARCHAR(5) ENCODE RUNLENGTH, x VARCHAR(5), f BOOLEAN) SORTKEY (id, s)")
		def := `SELECT "column", type, encoding, distkey, sortkey, notnull FROM pg_table_def WHERE tablename = $1 ORDER BY "column"`
		wantRows(t, c, strings.Join([]string{
			"b|character varying(5)|bytedict|false|0|false",
			"f|boolean|none|false|0|false",
			"id|integer|az64|false|1|true",
			"k|character varying(10)|lzo|true|0|false",
			"r|character varying(5)|runlength|false|0|false",
			"s|date|none|false|2|false",
			"x|character varying(5)|lzo|false|0|false",
		}, "\n"), def, "t")
		info := `SELECT diststyle, sortkey1, sortkey_num FROM svv_table_info WHERE "table" = $1`
		wantRows(t, c, "KEY(k)|id|2", info, "t")
		// a staging table LIKE the target shares its distribution and sort key
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "CREATE TEMP TABLE tmp (LIKE t)")
		wantRows(t, c, "KEY(k)|id|2", info, "tmp")
		wantRows(t, c, "id|az64|false|1\nk|lzo|true|0", `SELECT "column", encoding, distkey, sortkey FROM pg_table_def WHERE tablename = 'tmp' AND "column" IN ('id', 'k') ORDER BY 1`)
		mustExec(t, c, "ROLLBACK")
		mustExec(t, c, "CREATE TEMP TABLE ev (a INT, b VARCHAR(3)) DISTSTYLE EVEN INTERLEAVED SORTKEY (b, a)")
		wantRows(t, c, "EVEN|b|2", info, "ev")
		mustExec(t, c, "CREATE TABLE auto (a INT, b VARCHAR(3) SORTKEY)")
		wantRows(t, c, "AUTO(EVEN)|b|1", info, "auto")
		mustExec(t, c, "CREATE TABLE IF NOT EXISTS auto (a INT DISTKEY)") // exists: keeps its attributes
		wantRows(t, c, "AUTO(EVEN)|b|1", info, "auto")
		// CREATE rules
		wantErr(t, c, "42601", `invalid encoding type specified for column "a"`, "CREATE TABLE bad (a INT ENCODE squash)")
		wantErr(t, c, "42601", "multiple DISTKEY", "CREATE TABLE bad (a INT DISTKEY, b INT DISTKEY)")
		wantErr(t, c, "42601", "multiple DISTKEY", "CREATE TABLE bad (a INT DISTKEY, b INT) DISTKEY (b)")
		wantErr(t, c, "42703", `column "nope" named in DISTKEY does not exist`, "CREATE TABLE bad (a INT) DISTKEY (nope)")
		wantErr(t, c, "42703", `column "nope" named in SORTKEY does not exist`, "CREATE TABLE bad (a INT) SORTKEY (a, nope)")
		wantErr(t, c, "0A000", "DISTSTYLE EVEN", "CREATE TABLE bad (a INT DISTKEY) DISTSTYLE EVEN")
		// ALTER rules
		wantErr(t, c, "0A000", `cannot drop distkey column "k"`, "ALTER TABLE t DROP COLUMN k")
		wantErr(t, c, "0A000", `cannot drop sortkey column "s"`, "ALTER TABLE t DROP COLUMN s")
		wantErr(t, c, "0A000", `cannot alter type of distkey column "k"`, "ALTER TABLE t ALTER COLUMN k TYPE VARCHAR(20)")
		wantErr(t, c, "0A000", `cannot alter type of sortkey column "s"`, "ALTER TABLE t ALTER COLUMN s TYPE VARCHAR(20)")
		wantErr(t, c, "0A000", `encoding bytedict`, "ALTER TABLE t ALTER COLUMN b TYPE VARCHAR(10)")
		wantErr(t, c, "0A000", `encoding runlength`, "ALTER TABLE t ALTER COLUMN r TYPE VARCHAR(10)")
		mustExec(t, c, "ALTER TABLE t ALTER COLUMN x TYPE VARCHAR(10)")
		mustExec(t, c, "ALTER TABLE t RENAME COLUMN k TO k2")
		wantErr(t, c, "0A000", `cannot drop distkey column "k2"`, "ALTER TABLE t DROP COLUMN k2")
		mustExec(t, c, "ALTER TABLE t DROP COLUMN x")
		mustExec(t, c, "CREATE TABLE one (a INT)")
		wantErr(t, c, "0A000", `cannot drop the last column of table "one"`, "ALTER TABLE one DROP COLUMN a")
		mustExec(t, c, "ALTER TABLE one ADD COLUMN b INT")
		mustExec(t, c, "ALTER TABLE one DROP COLUMN a")
		wantRows(t, c, "b|az64", `SELECT "column", encoding FROM pg_table_def WHERE tablename = 'one'`)
	})
	t.Run("add and drop column", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT)")
		wantErr(t, c, "42601", `syntax error at or near ","`, "ALTER TABLE t ADD COLUMN a INT, ADD COLUMN b INT")
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "ALTER TABLE t ADD COLUMN a INT")
		mustExec(t, c, "ALTER TABLE t ADD COLUMN b VARCHAR(5)")
		mustExec(t, c, "ALTER TABLE t DROP COLUMN a")
		mustExec(t, c, "COMMIT")
		wantErr(t, c, "42601", `syntax error at or near ","`, "ALTER TABLE t DROP COLUMN id, DROP COLUMN b")
		wantRows(t, c, "id\nb", "SELECT column_name FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position")
	})
	t.Run("retype by add, copy, drop, rename", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (c INT)")
		mustExec(t, c, "INSERT INTO t VALUES (12345)")
		for i, typ := range []string{"VARCHAR(20)", "BIGINT", "VARCHAR(20)"} {
			mustExec(t, c, "BEGIN")
			mustExec(t, c, "ALTER TABLE t ADD COLUMN redms_retype_new "+typ)
			mustExec(t, c, "UPDATE t SET redms_retype_new = c::"+typ)
			mustExec(t, c, "ALTER TABLE t DROP COLUMN c")
			mustExec(t, c, "ALTER TABLE t RENAME COLUMN redms_retype_new TO c")
			mustExec(t, c, "COMMIT")
			if i == 0 {
				wantErr(t, c, "22001", "character varying(20)", "INSERT INTO t VALUES ($1)", "123456789012345678901")
			}
		}
		wantRows(t, c, "12345", "SELECT c FROM t")
		wantErr(t, c, "22001", "character varying(20)", "INSERT INTO t VALUES ($1)", "123456789012345678901")
	})
	t.Run("truncate commits the transaction", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE a (id INT)")
		mustExec(t, c, "CREATE TABLE b (id INT)")
		mustExec(t, c, "INSERT INTO b VALUES (1)")
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "INSERT INTO a VALUES (1)")
		mustExec(t, c, "TRUNCATE b")
		if s := c.PgConn().TxStatus(); s != 'I' {
			t.Fatalf("after TRUNCATE tx status %c, want I", s)
		}
		mustExec(t, c, "INSERT INTO a VALUES (2)")
		mustExec(t, c, "ROLLBACK")
		wantRows(t, c, "1\n2", "SELECT id FROM a ORDER BY id") // committed by TRUNCATE, then autocommit
		wantRows(t, c, "0", "SELECT count(*) FROM b")
		// the same over the extended protocol
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "INSERT INTO a VALUES (3)")
		if res := c.PgConn().ExecParams(ctxT(t), "TRUNCATE b", nil, nil, nil, nil).Read(); res.Err != nil || res.CommandTag.String() != "TRUNCATE TABLE" {
			t.Fatalf("extended TRUNCATE: %v %q", res.Err, res.CommandTag)
		}
		mustExec(t, c, "ROLLBACK")
		wantRows(t, c, "3", "SELECT count(*) FROM a")
		// DELETE is the transactional way
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "DELETE FROM a")
		mustExec(t, c, "ROLLBACK")
		wantRows(t, c, "3", "SELECT count(*) FROM a")
	})
	t.Run("identifiers", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		long := strings.Repeat("n", 127)
		wantErr(t, c, "42622", "is too long", "CREATE TABLE "+long+"x (id INT)")
		wantErr(t, c, "42622", "is too long", `CREATE TABLE t ("`+long+`é" INT)`)
		mustExec(t, c, "CREATE TABLE "+long+" ("+long+" INT, "+strings.Repeat("m", 127)+" INT)")
		mustExec(t, c, "INSERT INTO "+long+" VALUES (1, 2)")
		wantRows(t, c, "1|2", "SELECT "+long+", "+strings.Repeat("m", 127)+" FROM "+long)
		// quoted identifiers fold to lower case by default
		mustExec(t, c, `CREATE TABLE "MixedCase" ("Id" INT)`)
		mustExec(t, c, `INSERT INTO mixedcase (id) VALUES (1)`)
		wantRows(t, c, "mixedcase", "SELECT table_name FROM information_schema.tables WHERE table_name ILIKE 'mixedcase'")
		wantRows(t, c, "off", "SHOW enable_case_sensitive_identifier")
		mustExec(t, c, "SET enable_case_sensitive_identifier TO true")
		wantRows(t, c, "on", "SHOW enable_case_sensitive_identifier")
		mustExec(t, c, `CREATE TABLE "MixedCase" ("Id" INT)`)
		mustExec(t, c, `INSERT INTO "MixedCase" ("Id") VALUES (2)`)
		wantSimple(t, c, "2", `SELECT "Id" FROM "MixedCase"`)
		wantRows(t, c, "2", `SELECT "Id" FROM "MixedCase"`)
		wantRows(t, c, "1", `SELECT id FROM MixedCase`) // unquoted always folds
		// per session
		c2 := e.connect(t, c.Config().Database)
		wantSimple(t, c2, "1", `SELECT "Id" FROM "MixedCase"`)
	})
	t.Run("set show select", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "SET search_path TO public")
		wantRows(t, c, "public", "SHOW search_path")
		mustExec(t, c, "SET query_group TO 'etl'")
		mustExec(t, c, "CREATE TABLE t (id INT, v VARCHAR(7) NOT NULL)")
		wantRows(t, c, "id|integer|NULL|YES\nv|character varying|7|NO",
			"SELECT column_name, data_type, character_maximum_length, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 't' ORDER BY ordinal_position")
	})
	t.Run("backslash escapes in literals", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		wantSimple(t, c, `a\b|it's|x
y`, `SELECT 'a\\b', 'it\'s', 'x\ny'`)
	})
	t.Run("multi-statement query is one transaction", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT)")
		_, err := c.PgConn().Exec(ctxT(t), "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2); CREATE INDEX i ON t (id)").ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42601" {
			t.Fatalf("want syntax error, got %v", err)
		}
		wantRows(t, c, "0", "SELECT count(*) FROM t")
		if _, err := c.PgConn().Exec(ctxT(t), "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)").ReadAll(); err != nil {
			t.Fatal(err)
		}
		wantRows(t, c, "2", "SELECT count(*) FROM t")
		// explicit transaction control inside one query string
		if _, err := c.PgConn().Exec(ctxT(t), "BEGIN; INSERT INTO t VALUES (3); COMMIT").ReadAll(); err != nil {
			t.Fatal(err)
		}
		// a statement the emulator runs itself, mixed with ordinary ones
		if _, err := c.PgConn().Exec(ctxT(t), "SET enable_case_sensitive_identifier TO true; CREATE TABLE \"Up\" (id INT); INSERT INTO \"Up\" VALUES (1)").ReadAll(); err != nil {
			t.Fatal(err)
		}
		wantRows(t, c, "3|1", `SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM "Up")`)
		if s := c.PgConn().TxStatus(); s != 'I' {
			t.Fatalf("tx status %c", s)
		}
	})
	t.Run("concurrent sessions", func(t *testing.T) {
		t.Parallel()
		db := e.db(t)
		c := e.connect(t, db)
		mustExec(t, c, "CREATE TABLE t (id INT, v VARCHAR(20))")
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for i := 0; i < 4; i++ {
			cc := e.connect(t, db)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < 20; j++ {
					if _, err := cc.Exec(context.Background(), "INSERT INTO t VALUES ($1, $2)", j, "row"); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		wantRows(t, c, "80", "SELECT count(*) FROM t")
	})
}
