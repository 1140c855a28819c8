package emu_test

import (
	"strings"
	"testing"
	"time"
)

// TestTypes: every Redshift type rule, rejected and accepted.
func TestTypes(t *testing.T) {
	e := startEnv(t)
	t.Run("varchar length is bytes", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (v VARCHAR(3))")
		mustExec(t, c, "INSERT INTO t VALUES ('abc')")
		mustExec(t, c, "INSERT INTO t VALUES ('é')") // 2 bytes
		wantErr(t, c, "22001", "value too long for type character varying(3)", "INSERT INTO t VALUES ('éé')")
		wantErr(t, c, "22001", "value too long for type character varying(3)", "INSERT INTO t VALUES ($1)", "abcd")
		wantErr(t, c, "22001", "value too long for type character varying(3)", "UPDATE t SET v = v || 'xx'")
		wantErr(t, c, "22001", "value too long for type character varying(3)", "INSERT INTO t SELECT 'ééé'")
		wantRows(t, c, "abc\né", "SELECT v FROM t ORDER BY v")
	})
	t.Run("varchar and text default to 256", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (v VARCHAR, x TEXT)")
		mustExec(t, c, "INSERT INTO t VALUES ($1, $1)", strings.Repeat("x", 256))
		wantErr(t, c, "22001", "character varying(256)", "INSERT INTO t (v) VALUES ($1)", strings.Repeat("x", 257))
		wantErr(t, c, "22001", "character varying(256)", "INSERT INTO t (x) VALUES ($1)", strings.Repeat("x", 257))
		wantRows(t, c, "v|character varying|256\nx|character varying|256",
			"SELECT column_name, data_type, character_maximum_length FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position")
	})
	t.Run("varchar and char limits", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		wantErr(t, c, "22023", "length for type varchar cannot exceed 65535", "CREATE TABLE t (v VARCHAR(65536))")
		mustExec(t, c, "CREATE TABLE t (v VARCHAR(65535))")
		wantErr(t, c, "22023", "length for type char cannot exceed 4096", "CREATE TABLE u (v CHAR(4097))")
		mustExec(t, c, "CREATE TABLE u (v CHAR(4096))")
	})
	t.Run("char is single-byte", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (c CHAR(3))")
		mustExec(t, c, "INSERT INTO t VALUES ('ab')")
		wantErr(t, c, "22001", "value too long for type character(3)", "INSERT INTO t VALUES ('é')")
		wantErr(t, c, "22001", "value too long for type character(3)", "INSERT INTO t VALUES ('abcd')")
		wantRows(t, c, "ab ", "SELECT c FROM t")
	})
	t.Run("trailing blanks are insignificant in comparisons", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (k VARCHAR(10), v INT)")
		mustExec(t, c, "INSERT INTO t VALUES ('x', 1), ('y', 2), ('z ', 3)")
		mustExec(t, c, "CREATE TEMP TABLE s (k VARCHAR(10))")
		mustExec(t, c, "INSERT INTO s VALUES ('x ')")
		// upserting key 'x ' deletes row 'x', as on Redshift
		mustExec(t, c, "DELETE FROM t USING s WHERE t.k = s.k")
		wantRows(t, c, "y|2\nz |3", "SELECT k, v FROM t ORDER BY v")
		wantRows(t, c, "2", "SELECT v FROM t WHERE k = 'y   '")
		wantRows(t, c, "2", "SELECT v FROM t WHERE k = $1", "y ")
		wantRows(t, c, "3", "SELECT v FROM t WHERE k <> 'y '")
		wantRows(t, c, "3", "SELECT t.v FROM t JOIN (SELECT 'z'::varchar(5) AS k) u ON t.k = u.k")
		wantRows(t, c, "3", "SELECT t.v FROM t JOIN (SELECT 'z'::varchar(5) AS k) u USING (k)")
		mustExec(t, c, "UPDATE t SET v = 4 WHERE k = 'z'")
		// values keep their blanks; only comparison ignores them
		wantRows(t, c, "z |2|4", "SELECT k, octet_length(k), v FROM t WHERE v = 4")
		wantRows(t, c, "0", "SELECT count(*) FROM t WHERE k = ' y'") // leading blanks count
	})
	t.Run("numeric precision and scale", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		wantErr(t, c, "22023", "NUMERIC precision 39 must be between 1 and 38", "CREATE TABLE t (n NUMERIC(39,0))")
		wantErr(t, c, "22023", "NUMERIC scale 38 must be between 0", "CREATE TABLE t (n NUMERIC(38,38))")
		mustExec(t, c, "CREATE TABLE t (n NUMERIC(38,37), d NUMERIC, p NUMERIC(5,2))")
		wantRows(t, c, "n|38|37\nd|18|0\np|5|2",
			"SELECT column_name, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position")
		mustExec(t, c, "INSERT INTO t (p) VALUES (999.99)")
		wantErr(t, c, "22003", "Numeric data overflow", "INSERT INTO t (p) VALUES (1000)")
		wantErr(t, c, "22003", "Numeric data overflow", "INSERT INTO t (d) VALUES (1e18)")
		// precision 19 is a 64-bit integer of scaled units in Redshift
		mustExec(t, c, "CREATE TABLE n19 (a NUMERIC(19,8))")
		mustExec(t, c, "INSERT INTO n19 VALUES (92233720368.54775807), (-92233720368.54775808)")
		wantErr(t, c, "22003", "Numeric data overflow", "INSERT INTO n19 VALUES (92233720368.54775808)")
		wantErr(t, c, "22003", "Numeric data overflow", "INSERT INTO n19 VALUES (99999999999.99999999)")
	})
	t.Run("date and timestamp range", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (d DATE, ts TIMESTAMP, tz TIMESTAMPTZ)")
		mustExec(t, c, "INSERT INTO t VALUES ('2024-02-29', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56+00')")
		mustExec(t, c, "INSERT INTO t (d) VALUES ('4713-01-01 BC'), ('294276-12-31')")
		wantErr(t, c, "22008", "date out of range", "INSERT INTO t (d) VALUES ('infinity')")
		wantErr(t, c, "22008", "date out of range", "INSERT INTO t (d) VALUES ('294277-01-01')")
		wantErr(t, c, "22008", "timestamp out of range", "INSERT INTO t (ts) VALUES ('infinity')")
		mustExec(t, c, "INSERT INTO t (ts, tz) VALUES ('4713-01-01 00:00:00 BC', '294276-12-31 23:59:59+00')")
		wantErr(t, c, "22008", "timestamp out of range", "INSERT INTO t (ts) VALUES ('4714-12-01 00:00:00 BC')")
		wantErr(t, c, "22008", "timestamp out of range", "INSERT INTO t (tz) VALUES ('-infinity')")
		// pgx encodes typed parameters for domain columns (the emulator reports base types)
		ts := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		mustExec(t, c, "INSERT INTO t VALUES ($1, $2, $3)", ts, ts, ts)
		wantRows(t, c, "1", "SELECT count(*) FROM t WHERE ts = $1", ts)
		var d, tsv, tz time.Time
		if err := c.QueryRow(ctxT(t), "SELECT d, ts, tz FROM t WHERE ts = $1", ts).Scan(&d, &tsv, &tz); err != nil {
			t.Fatalf("scan domain columns: %v", err)
		}
		if !d.Equal(time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)) || !tsv.Equal(ts) || !tz.Equal(ts) {
			t.Fatalf("scanned %v %v %v", d, tsv, tz)
		}
	})
	t.Run("unsupported types", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		for _, typ := range []string{"uuid", "json", "jsonb", "bytea", "integer[]", "text[]", "serial", "bigserial", "money", "xml",
			"inet", "cidr", "hstore", "int4range", "tsrange", "mood", "interval", "point"} {
			wantErr(t, c, "0A000", `Column "x" has unsupported type "`+typ+`"`, "CREATE TABLE t (id int, x "+typ+")")
			wantErr(t, c, "0A000", `Column "x" has unsupported type "`+typ+`"`, "CREATE TEMP TABLE t (x "+typ+")")
		}
		mustExec(t, c, "CREATE TABLE t (a SMALLINT, b INTEGER, c BIGINT, d NUMERIC(10,2), e REAL, f DOUBLE PRECISION, g BOOLEAN, "+
			"h CHAR(2), i VARCHAR(5), j DATE, k TIMESTAMP, l TIMESTAMPTZ, m TIME, n TIMETZ, o INT2, p INT4, q INT8, r FLOAT4, s FLOAT8, u BOOL, v DECIMAL(5,1))")
		wantErr(t, c, "0A000", `Column "x" has unsupported type "uuid"`, "ALTER TABLE t ADD COLUMN x uuid")
		mustExec(t, c, "ALTER TABLE t ADD COLUMN x VARCHAR(4)")
		wantErr(t, c, "22001", "character varying(4)", "INSERT INTO t (x) VALUES ('12345')")
	})
}
