package emu_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"
)

const role = "arn:aws:iam::123456789012:role/redms"

// put stores an object in the test bucket, gzipped when zip.
func (e *env) put(t testing.TB, key, body string, zip bool) string {
	t.Helper()
	data := []byte(body)
	if zip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close()
		data = b.Bytes()
	}
	_, err := e.s3.Client(t).PutObject(ctxT(t), &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return "s3://bucket/" + key
}

func (e *env) manifest(t *testing.T, key string, entries ...string) string {
	t.Helper()
	return e.put(t, key, `{"entries":[`+strings.Join(entries, ",")+`]}`, false)
}

func entry(url string, mandatory bool) string {
	return fmt.Sprintf(`{"url":%q,"mandatory":%t}`, url, mandatory)
}

// copyFails runs a COPY that must fail with Redshift's load error and
// returns the stl_load_errors rows it recorded (err_code, colname, raw value).
func copyFails(t *testing.T, c *pgx.Conn, table, sql string) string {
	t.Helper()
	before := queryStrings(t, c, "SELECT coalesce(max(query), 0) FROM stl_load_errors")[0][0]
	wantErr(t, c, "XX000", fmt.Sprintf("Load into table '%s' failed.  Check 'stl_load_errors' system table for details.", table), sql)
	wantRows(t, c, "0", "SELECT pg_last_copy_count()")
	return rowsText(queryStrings(t, c, "SELECT err_code, trim(colname), raw_field_value FROM stl_load_errors WHERE query > "+before+" ORDER BY line_number"))
}

// TestCopy: COPY from S3 — sources, CSV rules, load errors.
func TestCopy(t *testing.T) {
	e := startEnv(t)
	t.Run("manifest gzip csv with null and empty strings", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT, v VARCHAR(10), n INT, d DATE, ts TIMESTAMP, b BOOLEAN, x NUMERIC(5,2))")
		f1 := e.put(t, "m1/part-0.csv.gz", "1,\"\",,,,,\n2,\\N,\\N,\\N,\\N,\\N,\\N\n3,\"\\N\",3,2024-02-29,2024-02-29 01:02:03.5,t,1.5\n", true)
		f2 := e.put(t, "m1/part-1.csv.gz", "4,\"a,\"\"b\"\"\nc\",4,2024-01-01,2024-01-01T00:00:00,false,-999.99\n", true)
		m := e.manifest(t, "m1/manifest", entry(f1, true), entry(f2, true))
		mustExec(t, c, "BEGIN")
		tag := mustExec(t, c, "COPY t (id, v, n, d, ts, b, x) FROM '"+m+"' IAM_ROLE '"+role+"' MANIFEST REGION 'us-east-1' GZIP CSV NULL AS '\\\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF")
		if tag.String() != "COPY" {
			t.Fatalf("command tag %q", tag.String())
		}
		wantRows(t, c, "4", "SELECT pg_last_copy_count()")
		mustExec(t, c, "COMMIT")
		wantSimple(t, c, strings.Join([]string{
			"1||NULL|NULL|NULL|NULL|NULL",
			"2|NULL|NULL|NULL|NULL|NULL|NULL",
			`3|\N|3|2024-02-29|2024-02-29 01:02:03.5|t|1.50`,
			"4|a,\"b\"\nc|4|2024-01-01|2024-01-01 00:00:00|f|-999.99",
		}, "\n"), "SELECT id, v, n, d::text, ts::text, b, x::text FROM t ORDER BY id")
		// the count survives other statements and is per session
		wantSimple(t, c, "4", "SELECT pg_last_copy_count()")
		c2 := e.connect(t, c.Config().Database)
		wantRows(t, c2, "0", "SELECT pg_last_copy_count()")
	})
	t.Run("prefix without manifest", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT, v VARCHAR(5))")
		e.put(t, "p1/a.csv", "1,a\n2,b\n", false)
		e.put(t, "p1/b.csv", "3,c\n", false)
		e.put(t, "p2/other.csv", "9,z\n", false)
		mustExec(t, c, "COPY t FROM 's3://bucket/p1/' ACCESS_KEY_ID '"+e.s3.AccessKeyID()+"' SECRET_ACCESS_KEY '"+e.s3.SecretAccessKey()+"' CSV")
		wantRows(t, c, "3", "SELECT pg_last_copy_count()")
		wantRows(t, c, "1|a\n2|b\n3|c", "SELECT * FROM t ORDER BY id")
		wantErr(t, c, "XX000", "The specified S3 prefix 'nothing/' does not exist", "COPY t FROM 's3://bucket/nothing/' IAM_ROLE '"+role+"' CSV")
	})
	t.Run("manifest entries", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT)")
		f := e.put(t, "m2/a.csv", "1\n", false)
		missing := "s3://bucket/m2/missing.csv"
		m := e.manifest(t, "m2/optional.manifest", entry(f, true), entry(missing, false))
		mustExec(t, c, "COPY t FROM '"+m+"' IAM_ROLE '"+role+"' MANIFEST CSV")
		wantRows(t, c, "1", "SELECT pg_last_copy_count()")
		m = e.manifest(t, "m2/mandatory.manifest", entry(f, true), entry(missing, true))
		wantErr(t, c, "XX000", "s3://bucket/m2/missing.csv is mandatory but does not exist", "COPY t FROM '"+m+"' IAM_ROLE '"+role+"' MANIFEST CSV")
		m = e.manifest(t, "m2/empty.manifest", entry(missing, false))
		wantErr(t, c, "XX000", "nothing to load", "COPY t FROM '"+m+"' IAM_ROLE '"+role+"' MANIFEST CSV")
		wantErr(t, c, "XX000", "Problem reading manifest file", "COPY t FROM 's3://bucket/m2/nope.manifest' IAM_ROLE '"+role+"' MANIFEST CSV")
		wantErr(t, c, "XX000", "IAM_ROLE cannot be used with", "COPY t FROM '"+m+"' IAM_ROLE '"+role+"' ACCESS_KEY_ID 'a' SECRET_ACCESS_KEY 'b' MANIFEST CSV")
		wantErr(t, c, "XX000", "IAM_ROLE cannot be used with", "COPY t FROM '"+m+"' IAM_ROLE '"+role+"' CREDENTIALS 'aws_access_key_id=a;aws_secret_access_key=b' MANIFEST CSV")
		mustExec(t, c, "COPY t FROM '"+f+"' CREDENTIALS 'aws_access_key_id="+e.s3.AccessKeyID()+";aws_secret_access_key="+e.s3.SecretAccessKey()+"' CSV")
		wantRows(t, c, "2", "SELECT count(*) FROM t")
	})
	t.Run("load errors", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT NOT NULL, v VARCHAR(3), n NUMERIC(4,2), d DATE, ts TIMESTAMP, c CHAR(2))")
		cases := []struct{ name, row, want string }{
			{"extra column", "1,a,1,2024-01-01,2024-01-01 00:00:00,x,extra", "1202|c|extra"},
			{"missing column", "1,a,1,2024-01-01", "1203|ts|"},
			{"varchar bytes", "1,éé,1,,,", "1204|v|éé"},
			{"numeric range", "1,a,100,,,", "1204|n|100"},
			{"integer range", "99999999999,a,1,,,", "1204|id|99999999999"},
			{"bad date", "1,a,1,2024-02-30,,", "1205|d|2024-02-30"},
			{"infinite date", "1,a,1,infinity,,", "1205|d|infinity"},
			{"bad timestamp", "1,a,1,,2024-01-01 25:00:00,", "1206|ts|2024-01-01 25:00:00"},
			{"infinite timestamp", "1,a,1,,infinity,", "1206|ts|infinity"},
			{"invalid digit", "1x,a,1,,,", "1207|id|1x"},
			{"numeric invalid digit", "1,a,1.2.3,,,", "1207|n|1.2.3"},
			{"not null", "\\N,a,1,,,", "1213|id|\\N"},
			{"invalid utf-8", "1,\xff,1,,,", "1220|v|?"},
			{"multibyte char", "1,a,1,,,é", "1220|c|é"},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := e.put(t, fmt.Sprintf("err/%d.csv", i), "1,ok,1,2024-01-01,2024-01-01 00:00:00,ab\n"+tc.row+"\n", false)
				got := copyFails(t, c, "t", "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV")
				if got != tc.want {
					t.Fatalf("stl_load_errors: got %q, want %q", got, tc.want)
				}
			})
		}
		wantRows(t, c, "0", "SELECT count(*) FROM t")
		wantRows(t, c, "2", "SELECT line_number FROM stl_load_errors WHERE err_code = 1213")
		wantRows(t, c, "varchar|3", "SELECT trim(type), trim(col_length) FROM stl_load_errors WHERE err_code = 1204 AND trim(colname) = 'v'")
	})
	t.Run("value parsing: numeric scale, time, timetz, years and offsets", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT, n NUMERIC(8,2), tm TIME, tz TIMETZ, d DATE, ts TIMESTAMP, tstz TIMESTAMPTZ)")
		good := e.put(t, "parse/good.csv", strings.Join([]string{
			"1,20.259,04:05:06.789,04:05:06+14:59,0044-03-15 BC,0044-03-15 12:00:00 BC,0044-03-15 12:00:00+00 BC",
			"2,-20.259,24:00:00,23:59:59.999999-14:59,10000-01-01,10000-01-01 00:00:00,10000-01-01 00:00:00+00",
			"3,0.001,00:00,12:00:00+05:30,2024-02-29,2024-02-29T01:02:03.5,2024-02-29 01:02:03-08",
		}, "\n")+"\n", false)
		mustExec(t, c, "COPY t FROM '"+good+"' IAM_ROLE '"+role+"' CSV TIMEFORMAT 'auto' DATEFORMAT 'auto'")
		// excess scale is truncated, not rounded
		wantSimple(t, c, strings.Join([]string{
			"1|20.25|04:05:06.789|04:05:06+14:59|0044-03-15 BC|0044-03-15 12:00:00 BC|0044-03-15 12:00:00+00 BC",
			"2|-20.25|24:00:00|23:59:59.999999-14:59|10000-01-01|10000-01-01 00:00:00|10000-01-01 00:00:00+00",
			"3|0.00|00:00:00|12:00:00+05:30|2024-02-29|2024-02-29 01:02:03.5|2024-02-29 09:02:03+00",
		}, "\n"), "SELECT id, n, tm, tz, d, ts, tstz FROM t ORDER BY id")
		mustExec(t, c, "DELETE FROM t")
		mustExec(t, c, "COPY t FROM '"+good+"' IAM_ROLE '"+role+"' CSV ROUNDEC TIMEFORMAT 'auto' DATEFORMAT 'auto'")
		wantSimple(t, c, "20.26\n-20.26\n0.00", "SELECT n FROM t ORDER BY id")
		cases := []struct{ name, row, want string }{
			{"time hour 25", "9,1,25:00:00,,,,", "1206|tm|25:00:00"},
			{"time past 24:00", "9,1,24:00:01,,,,", "1206|tm|24:00:01"},
			{"time minute 60", "9,1,12:60:00,,,,", "1206|tm|12:60:00"},
			{"time text", "9,1,noon,,,,", "1206|tm|noon"},
			{"timetz offset past 14:59", "9,1,,04:05:06+15:00,,,", "1206|tz|04:05:06+15:00"},
			{"timetz offset with seconds", "9,1,,04:05:06+00:53:28,,,", "1206|tz|04:05:06+00:53:28"},
			{"timestamptz offset with seconds", "9,1,,,,,1850-01-01 00:00:00+00:53:28", "1206|tstz|1850-01-01 00:00:00+00:53:28"},
			{"timestamptz offset past 14:59", "9,1,,,,,2024-01-01 00:00:00+15", "1206|tstz|2024-01-01 00:00:00+15"},
			{"date BC beyond 4713", "9,1,,,4714-01-01 BC,,", "1205|d|4714-01-01 BC"},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := e.put(t, fmt.Sprintf("parse/bad%d.csv", i), tc.row+"\n", false)
				got := copyFails(t, c, "t", "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV TIMEFORMAT 'auto' DATEFORMAT 'auto'")
				if got != tc.want {
					t.Fatalf("stl_load_errors: got %q, want %q", got, tc.want)
				}
			})
		}
	})
	t.Run("row over 4 MB and statement over 16 MB", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		// 64 VARCHAR(65535) fields: a 4 MB line (without its newline) loads, one byte more is refused
		var ddl strings.Builder
		ddl.WriteString("CREATE TABLE w (c0 VARCHAR(65535)")
		for i := 1; i < 64; i++ {
			fmt.Fprintf(&ddl, ", c%d VARCHAR(65535)", i)
		}
		mustExec(t, c, ddl.String()+")")
		row := func(size int) string {
			rest := strings.Repeat(","+strings.Repeat("x", 65535), 63)
			return strings.Repeat("y", size-len(rest)) + rest + "\n"
		}
		f := e.put(t, "rowsize/ok.csv", row(4<<20), false)
		mustExec(t, c, "COPY w FROM '"+f+"' IAM_ROLE '"+role+"' CSV TRUNCATECOLUMNS")
		wantRows(t, c, "1", "SELECT pg_last_copy_count()")
		f = e.put(t, "rowsize/big.csv", row(4<<20+1), false)
		got := copyFails(t, c, "w", "COPY w FROM '"+f+"' IAM_ROLE '"+role+"' CSV TRUNCATECOLUMNS")
		if code, _, _ := strings.Cut(got, "|"); code != "1216" {
			t.Fatalf("stl_load_errors for a row over 4 MB: %.60q, want err_code 1216", got)
		}
		// a statement of 16 MB runs; one byte more is refused
		pad := func(n int) string {
			q := "SELECT '' AS x -- "
			return q + strings.Repeat("z", n-len(q))
		}
		if _, err := c.PgConn().Exec(ctxT(t), pad(16<<20)).ReadAll(); err != nil {
			t.Fatalf("16 MB statement: %v", err)
		}
		_, err := c.PgConn().Exec(ctxT(t), pad(16<<20+1)).ReadAll()
		checkErr(t, err, "54000", "Statement is too large. Statement Size: 16777217 bytes. Maximum Allowed: 16777216 bytes", "16 MB + 1 statement")
		err = c.PgConn().ExecParams(ctxT(t), pad(16<<20+1), nil, nil, nil, nil).Read().Err
		checkErr(t, err, "54000", "Statement is too large", "16 MB + 1 statement, extended protocol")
	})
	t.Run("SUPER and VARBYTE", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT, s SUPER, b VARBYTE(4), d VARBINARY)")
		f := e.put(t, "super/good.csv", "1,\"{\"\"a\"\": [1, 2], \"\"b\"\": \"\"x\"\"}\",6162,\n2,[],,00ff\n3,\\N,,\n4,\"\"\"s\"\"\",61626364,\n", false)
		mustExec(t, c, "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV")
		wantRows(t, c, "4", "SELECT pg_last_copy_count()")
		wantRows(t, c, "1", `SELECT id FROM t WHERE s = JSON_PARSE('{"b":"x","a":[1,2]}')`)
		wantRows(t, c, "1|2|NULL\n2|NULL|2\n3|NULL|NULL\n4|4|NULL", "SELECT id, octet_length(b), octet_length(d) FROM t ORDER BY id")
		wantRows(t, c, "1", "SELECT id FROM t WHERE b = from_hex('6162')")
		mustExec(t, c, `INSERT INTO t (id, s) VALUES (5, JSON_PARSE('{"k": null}'))`)
		wantRows(t, c, "b|varbyte(4)|lzo\nd|varbyte(64000)|lzo\ns|super|none", `SELECT "column", type, encoding FROM pg_table_def WHERE tablename = 't' AND "column" <> 'id' ORDER BY 1`)
		cases := []struct{ name, row, want string }{
			{"invalid JSON", "9,{bad,,", "1224|s|{bad"},
			{"varbyte too long", "9,,6162636465,", "1204|b|6162636465"},
			{"varbyte odd hex", "9,,616,", "1219|b|616"},
			{"varbyte not hex", "9,,6g,", "1219|b|6g"},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				f := e.put(t, fmt.Sprintf("super/bad%d.csv", i), tc.row+"\n", false)
				if got := copyFails(t, c, "t", "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV"); got != tc.want {
					t.Fatalf("stl_load_errors: got %q, want %q", got, tc.want)
				}
			})
		}
		// a SUPER value holds up to 16 MB
		big := `"` + strings.Repeat("x", 16<<20-2) + `"`
		mustExec(t, c, "INSERT INTO t (id, s) VALUES (6, JSON_PARSE($1))", big)
		wantErr(t, c, "22001", "value too long for type super", "INSERT INTO t (id, s) VALUES (7, JSON_PARSE($1))", big[:1]+"y"+big[1:])
		wantErr(t, c, "22P02", "invalid input syntax for type json", "SELECT JSON_PARSE('{bad')")
		wantErr(t, c, "22023", "length for type varbyte cannot exceed 16777216", "CREATE TABLE u (b VARBYTE(16777217))")
		mustExec(t, c, "CREATE TABLE u (b VARBYTE(16777216), c BINARY VARYING(3))")
		wantErr(t, c, "22001", "value too long for type varbyte(3)", "INSERT INTO u (c) VALUES (from_hex('61626364'))")
	})
	t.Run("maxerror", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT)")
		f := e.put(t, "maxerr/a.csv", "1\nx\n2\ny\n3\n", false)
		copyFails(t, c, "t", "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV MAXERROR 1")
		mustExec(t, c, "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV MAXERROR AS 2")
		wantRows(t, c, "3", "SELECT pg_last_copy_count()")
		wantRows(t, c, "1\n2\n3", "SELECT id FROM t ORDER BY id")
	})
	t.Run("csv options", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT, v VARCHAR(4), w CHAR(2))")
		f := e.put(t, "opts/a.csv", "id|v|w\n1|abcdef|abc\n2|'x|y'|\n3||  \n4|NUL|\n5|a\xffb|\n", false)
		mustExec(t, c, "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' DELIMITER AS '|' CSV QUOTE AS '\\'' IGNOREHEADER 1 TRUNCATECOLUMNS EMPTYASNULL BLANKSASNULL NULL AS 'NUL' ACCEPTINVCHARS")
		wantRows(t, c, "1|abcd|ab\n2|x|y|NULL\n3|NULL|NULL\n4|NULL|NULL\n5|a?b|NULL", "SELECT id, v, w FROM t ORDER BY id")
		mustExec(t, c, "TRUNCATE t")
		// without those options: empty CHAR/VARCHAR is '', blanks are kept, too long is an error
		f = e.put(t, "opts/b.csv", "1,,\n2, , \n", false)
		mustExec(t, c, "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV")
		wantRows(t, c, "1||  |0\n2| |  |1", "SELECT id, v, w, octet_length(v) FROM t ORDER BY id")
	})
	t.Run("rollback keeps stl_load_errors", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT)")
		good := e.put(t, "tx/good.csv", "1\n2\n", false)
		bad := e.put(t, "tx/bad.csv", "1\nbad\n", false)
		mustExec(t, c, "BEGIN")
		mustExec(t, c, "COPY t FROM '"+good+"' IAM_ROLE '"+role+"' CSV")
		wantErr(t, c, "XX000", "Load into table 't' failed", "COPY t FROM '"+bad+"' IAM_ROLE '"+role+"' CSV")
		if s := c.PgConn().TxStatus(); s != 'E' {
			t.Fatalf("tx status after failed COPY %c, want E", s)
		}
		mustExec(t, c, "ROLLBACK")
		wantRows(t, c, "0", "SELECT count(*) FROM t")
		wantRows(t, c, "1207|bad", "SELECT err_code, raw_field_value FROM stl_load_errors")
	})
	t.Run("types first used inside a transaction", func(t *testing.T) {
		t.Parallel()
		db := e.db(t)
		c, other := e.connect(t, db), e.connect(t, db)
		mustExec(t, c, "CREATE TABLE t (id INT)")
		f := e.put(t, "snap/a.csv", "1,\"x\",2024-01-01\n", false)
		mustExec(t, c, "BEGIN")
		wantRows(t, c, "0", "SELECT count(*) FROM t") // the snapshot is taken
		mustExec(t, other, "CREATE TABLE u (v VARCHAR(77))")
		mustExec(t, c, "CREATE TEMP TABLE tmp (k0 INT, c0 VARCHAR(77), c1 DATE)")
		mustExec(t, c, "ALTER TABLE t ADD COLUMN w VARCHAR(78)")
		wantRows(t, c, "k0|NULL\nc0|77\nc1|NULL", "SELECT column_name, character_maximum_length FROM information_schema.columns WHERE table_name = 'tmp' ORDER BY ordinal_position")
		wantRows(t, c, "id|NULL\nw|78", "SELECT column_name, character_maximum_length FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position")
		mustExec(t, c, "COPY tmp FROM '"+f+"' IAM_ROLE '"+role+"' CSV")
		wantRows(t, c, "1", "SELECT pg_last_copy_count()")
		mustExec(t, c, "COMMIT")
	})
	t.Run("extended protocol", func(t *testing.T) {
		t.Parallel()
		c := e.connect(t, e.db(t))
		mustExec(t, c, "CREATE TABLE t (id INT)")
		f := e.put(t, "ext/a.csv", "1\n2\n", false)
		res := c.PgConn().ExecParams(ctxT(t), "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		var n int64
		if err := c.QueryRow(ctxT(t), "SELECT pg_last_copy_count()").Scan(&n); err != nil || n != 2 {
			t.Fatalf("pg_last_copy_count = %d, %v", n, err)
		}
		res = c.PgConn().ExecParams(ctxT(t), "COPY t FROM '"+f+"' IAM_ROLE '"+role+"' CSV MAXERROR 0", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		// the cached statement sees the new count
		if err := c.QueryRow(ctxT(t), "SELECT pg_last_copy_count()").Scan(&n); err != nil || n != 2 {
			t.Fatalf("pg_last_copy_count = %d, %v", n, err)
		}
		wantRows(t, c, "4", "SELECT count(*) FROM t")
	})
}
