package translate

import (
	"errors"
	"reflect"
	"testing"

	"github.com/redms/redms/services/rsemu/internal/rserr"
)

func translateOne(t *testing.T, sql string, opt Options) (Stmt, error) {
	t.Helper()
	parts, err := Split(sql)
	if err != nil {
		return Stmt{}, err
	}
	if len(parts) != 1 {
		t.Fatalf("%q: %d statements", sql, len(parts))
	}
	return Translate(parts[0], opt)
}

func TestTranslatePassthrough(t *testing.T) {
	long := "a123456789b123456789c123456789d123456789e123456789f123456789g1234" // 65 bytes
	cases := []struct {
		name, in, want string
		opt            Options
	}{
		{"plain select", "SELECT 1", "SELECT 1", Options{}},
		{"substring for", "SELECT substring(v FROM 1 FOR 2) FROM t", "SELECT substring(v FROM 1 FOR 2) FROM t", Options{}},
		{"quoted ident folds", `SELECT "MyCol" FROM "Public"."T"`, `SELECT "mycol" FROM "public"."t"`, Options{}},
		{"quoted ident kept when case sensitive", `SELECT "MyCol" FROM "T"`, `SELECT "MyCol" FROM "T"`, Options{CaseSensitive: true}},
		{"unquoted ident untouched", `SELECT MyCol FROM T`, `SELECT MyCol FROM T`, Options{CaseSensitive: true}},
		{"string content untouched", `SELECT 'SELECT "X"' AS "Y"`, `SELECT E'SELECT "X"' AS "y"`, Options{}},
		{"backslash escapes", `SELECT 'a\'b', E'c\\d'`, `SELECT E'a\'b', E'c\\d'`, Options{}},
		{"dollar quote untouched", `SELECT $x$ "A" 'b' $x$`, `SELECT $x$ "A" 'b' $x$`, Options{}},
		{"comments untouched", "SELECT /* \"A\" */ 1 -- \"B\"\n", "SELECT /* \"A\" */ 1", Options{}},
		{"long ident shortened", "SELECT " + long, "SELECT " + QuoteIdent(PgName(long)), Options{}},
		{"pg_last_copy_count", "SELECT pg_last_copy_count()", "SELECT rsemu.pg_last_copy_count()", Options{}},
		{"stl_load_errors", "SELECT err_code FROM stl_load_errors ORDER BY query", "SELECT err_code FROM rsemu.stl_load_errors ORDER BY query", Options{}},
		{"delete using", `DELETE FROM "S"."T" USING "tmp" WHERE "S"."T"."Id" = "tmp"."k0"`, `DELETE FROM "S"."T" USING "tmp" WHERE "S"."T"."Id" = "tmp"."k0"`, Options{CaseSensitive: true}},
		{"update from", `UPDATE t SET a = tmp.c0 FROM tmp WHERE t.id = tmp.k0`, `UPDATE t SET a = tmp.c0 FROM tmp WHERE t.id = tmp.k0`, Options{}},
		{"insert select", `INSERT INTO t (a, b) SELECT c0, c1 FROM tmp`, `INSERT INTO t (a, b) SELECT c0, c1 FROM tmp`, Options{}},
		{"create schema", `CREATE SCHEMA IF NOT EXISTS "S"`, `CREATE SCHEMA IF NOT EXISTS "s"`, Options{}},
		{"begin", "BEGIN", "BEGIN", Options{}},
		{"merge", `MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)`,
			`MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)`, Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, err := translateOne(t, c.in, c.opt)
			if err != nil {
				t.Fatalf("%q: %v", c.in, err)
			}
			if st.Kind != Passthrough || st.SQL != c.want {
				t.Fatalf("%q:\n got %v %q\nwant %q", c.in, st.Kind, st.SQL, c.want)
			}
		})
	}
}

func TestTranslateCreateTable(t *testing.T) {
	cases := []struct{ in, want string }{
		{`CREATE TABLE IF NOT EXISTS "S"."T" ("Id" BIGINT NOT NULL, "V" VARCHAR(10), n NUMERIC(19,8), d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, c CHAR(36), b BOOLEAN, f DOUBLE PRECISION, r REAL, s SMALLINT, i INTEGER, tm TIME, ttz TIMETZ)`,
			`CREATE TABLE IF NOT EXISTS "s"."t" ("id" bigint NOT NULL, "v" varchar(10) CONSTRAINT "rsemu_vc10_x1" CHECK (octet_length("v") <= 10), n numeric(19,8) CONSTRAINT "rsemu_n19s8_x2" CHECK (n BETWEEN -92233720368.54775808 AND 92233720368.54775807), ` +
				`d date CONSTRAINT "rsemu_date_x3" CHECK (d BETWEEN '4713-01-01 BC' AND '294276-12-31'), ` +
				`ts timestamp CONSTRAINT "rsemu_ts_x4" CHECK (isfinite(ts) AND ts >= '4713-01-01 00:00:00 BC'), ` +
				`tz timestamptz CONSTRAINT "rsemu_tstz_x5" CHECK (isfinite(tz) AND tz >= '4713-01-01 00:00:00+00 BC'), ` +
				`c char(36) CONSTRAINT "rsemu_ch36_x6" CHECK (octet_length(c::text) = char_length(c::text)), b boolean, f double precision, r real, s smallint, i integer, tm time, ttz timetz)`},
		{`CREATE TABLE t (a VARCHAR, b TEXT, c NUMERIC, d CHARACTER VARYING(65535), e VARCHAR(MAX), g DECIMAL(38,37), h NVARCHAR(5), i TIMESTAMP WITHOUT TIME ZONE)`,
			`CREATE TABLE t (a varchar(256) CONSTRAINT "rsemu_vc256_x0" CHECK (octet_length(a) <= 256), b varchar(256) CONSTRAINT "rsemu_vc256_x1" CHECK (octet_length(b) <= 256), c numeric(18,0), ` +
				`d varchar(65535) CONSTRAINT "rsemu_vc65535_x3" CHECK (octet_length(d) <= 65535), e varchar(65535) CONSTRAINT "rsemu_vc65535_x4" CHECK (octet_length(e) <= 65535), ` +
				`g numeric(38,37), h varchar(5) CONSTRAINT "rsemu_vc5_x6" CHECK (octet_length(h) <= 5), i timestamp CONSTRAINT "rsemu_ts_x7" CHECK (isfinite(i) AND i >= '4713-01-01 00:00:00 BC'))`},
		{`CREATE TABLE t (id INT PRIMARY KEY ENCODE az64 DISTKEY, v VARCHAR(3) DEFAULT 'x' NOT NULL, PRIMARY KEY (id), UNIQUE (v)) DISTSTYLE KEY SORTKEY (id) BACKUP NO`,
			`CREATE TABLE t (id integer, v varchar(3) DEFAULT E'x' NOT NULL CONSTRAINT "rsemu_vc3_x1" CHECK (octet_length(v) <= 3))`},
		{`CREATE TEMP TABLE tmp (k0 INTEGER, c0 CHAR)`, `CREATE TEMP TABLE tmp (k0 integer, c0 char(1) CONSTRAINT "rsemu_ch1_x1" CHECK (octet_length(c0::text) = char_length(c0::text)))`},
		{`CREATE TEMPORARY TABLE x (LIKE "S"."T")`, `CREATE TEMPORARY TABLE x (LIKE "s"."t" INCLUDING CONSTRAINTS)`},
		{`CREATE TEMPORARY TABLE x (LIKE t INCLUDING DEFAULTS)`, `CREATE TEMPORARY TABLE x (LIKE t INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`},
		{`CREATE TABLE t2 AS SELECT * FROM t`, `CREATE TABLE t2 AS SELECT * FROM t`},
		{`CREATE TABLE t (id BIGINT IDENTITY(1,1), v INT)`, `CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 1 INCREMENT BY 1), v integer)`},
		{`CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY(0, 2) NOT NULL)`, `CREATE TABLE t (id bigint GENERATED BY DEFAULT AS IDENTITY (START WITH 0 INCREMENT BY 2 MINVALUE 0) NOT NULL)`},
	}
	for _, c := range cases {
		st, err := translateOne(t, c.in, Options{Suffix: "x"})
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if st.SQL != c.want {
			t.Fatalf("%q:\n got %q\nwant %q", c.in, st.SQL, c.want)
		}
	}
}

func TestConstraintType(t *testing.T) {
	for _, typ := range []Type{{Class: Varchar, Length: 10}, {Class: Char, Length: 3}, {Class: Date}, {Class: Timestamp}, {Class: TimestampTZ}, {Class: Numeric, Precision: 19, Scale: 4}} {
		prefix, _ := typ.Check("c")
		back, ok := ConstraintType(prefix + "_ab12cd340")
		if !ok || back != typ {
			t.Fatalf("ConstraintType(%s) = %v %v, want %v", prefix, back, ok, typ)
		}
	}
	for _, name := range []string{"t_v_check", "rsemu_vcx_1", "rsemu_other_1"} {
		if _, ok := ConstraintType(name); ok {
			t.Fatalf("ConstraintType(%q) ok", name)
		}
	}
	if p, _ := (Type{Class: Integer}).Check("c"); p != "" {
		t.Fatalf("integer has a check %q", p)
	}
	if p, _ := (Type{Class: Numeric, Precision: 18, Scale: 2}).Check("c"); p != "" {
		t.Fatalf("numeric(18,2) has a check %q", p)
	}
	for scale, want := range map[int][2]string{0: {"-9223372036854775808", "9223372036854775807"}, 8: {"-92233720368.54775808", "92233720368.54775807"}, 19: {"-0.9223372036854775808", "0.9223372036854775807"}} {
		if lo, hi := Int64Bounds(scale); lo != want[0] || hi != want[1] {
			t.Fatalf("Int64Bounds(%d) = %s %s", scale, lo, hi)
		}
	}
}

func TestTranslateRejects(t *testing.T) {
	long := string(make([]byte, 0))
	for i := 0; i < 128; i++ {
		long += "x"
	}
	cases := []struct {
		in, code, msg string
		opt           Options
	}{
		{`CREATE TABLE t (id uuid)`, rserr.FeatureNotSupported, `Column "id" has unsupported type "uuid"`, Options{}},
		{`CREATE TABLE t (a int, j jsonb)`, rserr.FeatureNotSupported, `Column "j" has unsupported type "jsonb"`, Options{}},
		{`CREATE TABLE t (a json)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "json"`, Options{}},
		{`CREATE TABLE t (a bytea)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "bytea"`, Options{}},
		{`CREATE TABLE t (a integer[])`, rserr.FeatureNotSupported, `Column "a" has unsupported type "integer[]"`, Options{}},
		{`CREATE TABLE t (a serial)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "serial"`, Options{}},
		{`CREATE TABLE t (a bigserial)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "bigserial"`, Options{}},
		{`CREATE TABLE t (a money)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "money"`, Options{}},
		{`CREATE TABLE t (a inet)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "inet"`, Options{}},
		{`CREATE TABLE t (a hstore)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "hstore"`, Options{}},
		{`CREATE TABLE t (a xml)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "xml"`, Options{}},
		{`CREATE TABLE t (a int4range)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "int4range"`, Options{}},
		{`CREATE TABLE t (a public.mood)`, rserr.FeatureNotSupported, `Column "a" has unsupported type "public.mood"`, Options{}},
		{`CREATE TABLE t (a text(10))`, rserr.FeatureNotSupported, `Column "a" has unsupported type "text(10)"`, Options{}},
		{`ALTER TABLE t ADD COLUMN u uuid`, rserr.FeatureNotSupported, `Column "u" has unsupported type "uuid"`, Options{}},
		{`CREATE TABLE t (a VARCHAR(65536))`, rserr.InvalidParameter, "length for type varchar cannot exceed 65535", Options{}},
		{`CREATE TABLE t (a CHAR(4097))`, rserr.InvalidParameter, "length for type char cannot exceed 4096", Options{}},
		{`CREATE TABLE t (a NUMERIC(39,2))`, rserr.InvalidParameter, "NUMERIC precision 39 must be between 1 and 38", Options{}},
		{`CREATE TABLE t (a NUMERIC(38,38))`, rserr.InvalidParameter, "NUMERIC scale 38 must be between 0 and precision 38", Options{}},
		{`CREATE TEMP TABLE public.x (a int)`, rserr.InvalidTableDef, "temporary tables cannot specify a schema name", Options{}},
		{`CREATE TEMP TABLE "S"."x" (LIKE t)`, rserr.InvalidTableDef, "temporary tables cannot specify a schema name", Options{}},
		{`CREATE UNLOGGED TABLE t (a int)`, rserr.SyntaxError, `syntax error at or near "UNLOGGED"`, Options{}},
		{`CREATE INDEX i ON t (a)`, rserr.SyntaxError, `syntax error at or near "INDEX"`, Options{}},
		{`CREATE UNIQUE INDEX i ON t (a)`, rserr.SyntaxError, `syntax error at or near "UNIQUE"`, Options{}},
		{`CREATE SEQUENCE s`, rserr.SyntaxError, `syntax error at or near "SEQUENCE"`, Options{}},
		{`SELECT nextval('s')`, rserr.UndefinedFunction, "function nextval does not exist", Options{}},
		{`INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING`, rserr.SyntaxError, `syntax error at or near "ON"`, Options{}},
		{`INSERT INTO t VALUES (1) RETURNING id`, rserr.SyntaxError, `syntax error at or near "RETURNING"`, Options{}},
		{`UPDATE t SET a = 1 RETURNING *`, rserr.SyntaxError, `syntax error at or near "RETURNING"`, Options{}},
		{`DELETE FROM t RETURNING *`, rserr.SyntaxError, `syntax error at or near "RETURNING"`, Options{}},
		{`SELECT last_seq FROM redms_applied WHERE target = 'x' FOR UPDATE`, rserr.SyntaxError, `syntax error at or near "UPDATE"`, Options{}},
		{`SELECT 1 FROM t FOR SHARE`, rserr.SyntaxError, `syntax error at or near "SHARE"`, Options{}},
		{`ALTER TABLE t ADD COLUMN a int, ADD COLUMN b int`, rserr.SyntaxError, `syntax error at or near ","`, Options{}},
		{`ALTER TABLE t DROP COLUMN a, DROP COLUMN b`, rserr.SyntaxError, `syntax error at or near ","`, Options{}},
		{`ALTER TABLE t ALTER COLUMN a TYPE integer`, rserr.FeatureNotSupported, `target data type "integer" is not supported`, Options{}},
		{`ALTER TABLE t ALTER COLUMN a TYPE uuid`, rserr.FeatureNotSupported, `target data type "uuid" is not supported`, Options{}},
		{`SELECT 1 AS ` + long, rserr.NameTooLong, "is too long", Options{}},
		{`SELECT 1 AS "` + long + `"`, rserr.NameTooLong, "is too long", Options{}},
		{`MERGE INTO t USING s ON t.id = s.id WHEN MATCHED AND s.x THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)`, rserr.SyntaxError, `syntax error at or near "AND"`, Options{}},
		{`MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)`, rserr.SyntaxError, "exactly one WHEN MATCHED", Options{}},
		{`MERGE INTO t x USING s ON x.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)`, rserr.SyntaxError, `syntax error at or near "x"`, Options{}},
		{`COPY t FROM STDIN`, rserr.SyntaxError, `syntax error at or near "STDIN"`, Options{}},
		{`COPY t TO 's3://b/k'`, rserr.SyntaxError, `syntax error at or near "TO"`, Options{}},
		{`SET enable_case_sensitive_identifier TO maybe`, rserr.InvalidParameter, "requires a Boolean value", Options{}},
		{`SELECT 'unterminated`, rserr.SyntaxError, "unterminated quoted string", Options{}},
	}
	for _, c := range cases {
		_, err := translateOne(t, c.in, c.opt)
		var re *rserr.Error
		if !errors.As(err, &re) {
			t.Fatalf("%q: want error %s, got %v", c.in, c.code, err)
		}
		if re.Code != c.code || !contains(re.Message, c.msg) {
			t.Fatalf("%q: got %s %q, want %s containing %q", c.in, re.Code, re.Message, c.code, c.msg)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0))
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestTranslateSpecialKinds(t *testing.T) {
	cases := []struct {
		in   string
		want Stmt
	}{
		{"TRUNCATE t", Stmt{Kind: Truncate, SQL: "TRUNCATE t"}},
		{"SET enable_case_sensitive_identifier TO true", Stmt{Kind: SetCaseSensitive, Value: true}},
		{"set enable_case_sensitive_identifier = 'off'", Stmt{Kind: SetCaseSensitive, Value: false}},
		{"RESET enable_case_sensitive_identifier", Stmt{Kind: SetCaseSensitive, Value: false}},
		{"SHOW enable_case_sensitive_identifier", Stmt{Kind: Show, Setting: "enable_case_sensitive_identifier"}},
		{"SET query_group TO 'etl'", Stmt{Kind: NoOp, Tag: "SET"}},
		{"SET search_path TO public", Stmt{Kind: Passthrough, SQL: "SET search_path TO public"}},
		{"VACUUM t", Stmt{Kind: NoOp, Tag: "VACUUM"}},
		{"ALTER TABLE t ADD PRIMARY KEY (id)", Stmt{Kind: AddConstraint, Constraint: &Constraint{Table: "t", Columns: []string{"id"}}}},
		{`ALTER TABLE t ADD CONSTRAINT u UNIQUE ("A", b)`, Stmt{Kind: AddConstraint, Constraint: &Constraint{Table: "t", Columns: []string{"a", "b"}}}},
		{"ALTER TABLE t ADD FOREIGN KEY (x) REFERENCES o (id)", Stmt{Kind: AddConstraint, Constraint: &Constraint{Table: "t", Columns: []string{"x"}}}},
		{"ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", Stmt{Kind: NoOp, Tag: "ALTER TABLE"}},
		{"CREATE TABLE t (a INT PRIMARY KEY, b INT REFERENCES o, c INT UNIQUE, d INT, CONSTRAINT pk PRIMARY KEY (d), FOREIGN KEY (c) REFERENCES o (x))",
			Stmt{Kind: Create, SQL: "CREATE TABLE t (a integer, b integer, c integer, d integer)",
				Create: &CreateTable{Table: "t", DistStyle: DistAuto, Constrained: []string{"d", "c"},
					Columns: []ColumnAttrs{{Name: "a", Type: Type{Class: Integer}, Constrained: true}, {Name: "b", Type: Type{Class: Integer}, Constrained: true},
						{Name: "c", Type: Type{Class: Integer}, Constrained: true}, {Name: "d", Type: Type{Class: Integer}}}}}},
		{"ALTER TABLE t DROP COLUMN a", Stmt{Kind: DropColumn, SQL: "ALTER TABLE t DROP COLUMN a", Alter: &AlterColumn{Table: "t", Column: "a", ColumnSQL: "a"}}},
		{"CREATE TEMP TABLE x (LIKE t)", Stmt{Kind: Create, SQL: "CREATE TEMP TABLE x (LIKE t INCLUDING CONSTRAINTS)",
			Create: &CreateTable{Table: "x", Like: "t"}}},
		{"CREATE TABLE t (a INT ENCODE zstd, b DATE DISTKEY) COMPOUND SORTKEY (b, a)", Stmt{Kind: Create, SQL: "CREATE TABLE t (a integer, b date CONSTRAINT \"rsemu_date_1\" CHECK (b BETWEEN '4713-01-01 BC' AND '294276-12-31'))",
			Create: &CreateTable{Table: "t", DistStyle: DistKey, DistKey: "b", SortKind: SortCompound, SortKeys: []string{"b", "a"},
				Columns: []ColumnAttrs{{Name: "a", Type: Type{Class: Integer}, Encode: "zstd"}, {Name: "b", Type: Type{Class: Date}, DistKey: true}}}}},
		{"LOCK a, s.b", Stmt{Kind: Lock, SQL: "LOCK TABLE a, s.b IN ACCESS EXCLUSIVE MODE"}},
		{"LOCK TABLE a", Stmt{Kind: Lock, SQL: "LOCK TABLE a IN ACCESS EXCLUSIVE MODE"}},
		{"ALTER DATABASE dev ISOLATION LEVEL SNAPSHOT", Stmt{Kind: SetIsolation, Setting: "dev", Isolation: Snapshot}},
		{`UPDATE ONLY "S"."T" x SET a = 1`, Stmt{Kind: Passthrough, SQL: `UPDATE ONLY "s"."t" x SET a = 1`, WriteTable: `"s"."t"`}},
		{"INSERT INTO t SELECT 1", Stmt{Kind: Passthrough, SQL: "INSERT INTO t SELECT 1", WriteTable: "t"}},
		{"DELETE FROM s.t USING u WHERE s.t.a = u.a", Stmt{Kind: Passthrough, SQL: "DELETE FROM s.t USING u WHERE s.t.a = u.a", WriteTable: "s.t"}},
		{"ALTER TABLE t RENAME COLUMN a TO b", Stmt{Kind: Passthrough, SQL: "ALTER TABLE t RENAME COLUMN a TO b"}},
	}
	for _, c := range cases {
		st, err := translateOne(t, c.in, Options{})
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		if !reflect.DeepEqual(st, c.want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", c.in, st, c.want)
		}
	}
	st, err := translateOne(t, `ALTER TABLE "S"."T" ADD COLUMN "N" VARCHAR(5) NOT NULL DEFAULT ''`, Options{CaseSensitive: true, Suffix: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `ALTER TABLE "S"."T" ADD COLUMN "N" varchar(5) NOT NULL DEFAULT E'' CONSTRAINT "rsemu_vc5_s0" CHECK (octet_length("N") <= 5)`; st.SQL != want {
		t.Fatalf("add column: got %q, want %q", st.SQL, want)
	}
	st, err = translateOne(t, `ALTER TABLE "S"."T" ALTER COLUMN "V" TYPE VARCHAR(300)`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Stmt{Kind: AlterColumnType, Alter: &AlterColumn{Table: `"s"."t"`, Column: "v", ColumnSQL: `"v"`, NewType: Type{Class: Varchar, Length: 300}}}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("alter column:\n got %+v %+v\nwant %+v %+v", st, st.Alter, want, want.Alter)
	}
	if got, want := AlterVarchar(st.Alter, []string{"rsemu_vc10_a0", "rsemu_vc20_b0"}, "c"),
		`ALTER TABLE "s"."t" DROP CONSTRAINT "rsemu_vc10_a0", DROP CONSTRAINT "rsemu_vc20_b0", ALTER COLUMN "v" TYPE varchar(300), ADD CONSTRAINT "rsemu_vc300_c0" CHECK (octet_length("v") <= 300)`; got != want {
		t.Fatalf("AlterVarchar:\n got %q\nwant %q", got, want)
	}
}

func TestTranslateCopy(t *testing.T) {
	st, err := translateOne(t, `COPY "tmp_1" ("k0", "c0") FROM 's3://b/redms/m.manifest' ACCESS_KEY_ID 'AK' SECRET_ACCESS_KEY 'SK' SESSION_TOKEN 'T' MANIFEST REGION 'us-east-1' GZIP CSV NULL AS '\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`, Options{CaseSensitive: true})
	if err != nil {
		t.Fatal(err)
	}
	want := &CopyStmt{Table: `"tmp_1"`, TableName: "tmp_1", Columns: []string{"k0", "c0"}, From: "s3://b/redms/m.manifest",
		Auth:     CopyAuth{AccessKeyID: "AK", SecretAccessKey: "SK", SessionToken: "T"},
		Manifest: true, Region: "us-east-1", Gzip: true, Delimiter: ",", Quote: `"`, Null: `\N`, TimeFormat: "auto", DateFormat: "auto"}
	if st.Kind != Copy || !reflect.DeepEqual(st.Copy, want) {
		t.Fatalf("got %+v\nwant %+v", st.Copy, want)
	}
	st, err = translateOne(t, `copy t from 's3://b/p/' iam_role 'arn:aws:iam::123456789012:role/r' csv quote as '''' delimiter as '|' emptyasnull blanksasnull truncatecolumns acceptinvchars maxerror as 5 ignoreheader 1`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want = &CopyStmt{Table: "t", TableName: "t", From: "s3://b/p/", Auth: CopyAuth{IAMRole: "arn:aws:iam::123456789012:role/r"},
		Delimiter: "|", Quote: "'", Null: `\N`, EmptyAsNull: true, BlanksAsNull: true, TruncateColumns: true, AcceptInvChars: "?", MaxError: 5, IgnoreHeader: 1}
	if !reflect.DeepEqual(st.Copy, want) {
		t.Fatalf("got %+v\nwant %+v", st.Copy, want)
	}
	st, err = translateOne(t, `COPY t FROM 's3://b/k' CREDENTIALS 'aws_access_key_id=A;aws_secret_access_key=S' CSV`, Options{})
	if err != nil || st.Copy.Auth != (CopyAuth{AccessKeyID: "A", SecretAccessKey: "S"}) {
		t.Fatalf("credentials: %+v %v", st.Copy, err)
	}

	rejects := []struct{ in, msg string }{
		{`COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r' ACCESS_KEY_ID 'a' SECRET_ACCESS_KEY 's' CSV`, "IAM_ROLE cannot be used with"},
		{`COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r' CREDENTIALS 'aws_access_key_id=A;aws_secret_access_key=S' CSV`, "IAM_ROLE cannot be used with"},
		{`COPY t FROM 's3://b/k' CSV`, "Missing credentials"},
		{`COPY t FROM 's3://b/k' ACCESS_KEY_ID 'a' CSV`, "must be specified together"},
		{`COPY t FROM 's3://b/k' IAM_ROLE 'role' CSV`, "Invalid IAM role ARN"},
		{`COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r'`, "without CSV"},
		{`COPY t FROM '/tmp/x' IAM_ROLE 'arn:aws:iam::123456789012:role/r' CSV`, "only s3://"},
		{`COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r' CSV DELIMITER ',,'`, "single character"},
		{`COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r' CSV FROBNICATE`, `syntax error at or near "FROBNICATE"`},
		{`COPY t FROM 's3://b/k' IAM_ROLE 'arn:aws:iam::123456789012:role/r' CSV DATEFORMAT 'DD/MM/YYYY'`, "not supported"},
	}
	for _, c := range rejects {
		_, err := translateOne(t, c.in, Options{})
		var re *rserr.Error
		if !errors.As(err, &re) || !contains(re.Message, c.msg) {
			t.Fatalf("%q: want error containing %q, got %v", c.in, c.msg, err)
		}
	}
}

func TestPgName(t *testing.T) {
	short := "abc"
	if PgName(short) != short {
		t.Fatal("short name changed")
	}
	long := ""
	for i := 0; i < 100; i++ {
		long += "é"
	}
	n := PgName(long)
	if len(n) > 63 || PgName(long) != n || PgName(long+"x") == n {
		t.Fatalf("PgName(%q) = %q", long, n)
	}
}

func TestCatalogSQL(t *testing.T) {
	rel := `SELECT c.oid FROM pg_class c WHERE c.oid = 't'::regclass AND c.xmin = pg_current_xact_id()::xid`
	c := &CreateTable{Table: "t", DistStyle: DistKey, DistKey: "k", SortKind: SortCompound, SortKeys: []string{"d"},
		Columns:     []ColumnAttrs{{Name: "k", Type: Type{Class: Varchar, Length: 5}, Constrained: true}, {Name: "d", Type: Type{Class: Date}}, {Name: "n", Type: Type{Class: Integer}, Encode: "zstd"}},
		Constrained: []string{"d"}}
	want := []string{
		"DELETE FROM rsemu.table_attrs WHERE relid IN (" + rel + ")",
		"DELETE FROM rsemu.column_attrs WHERE relid IN (" + rel + ")",
		"DELETE FROM rsemu.column_constraints WHERE relid IN (" + rel + ")",
		"INSERT INTO rsemu.table_attrs SELECT n.oid, 'key', 'compound' FROM (" + rel + ") n",
		"INSERT INTO rsemu.column_attrs SELECT n.oid, a.attnum, v.encoding, v.distkey, v.sortkey FROM (" + rel + ") n\n" +
			"JOIN pg_attribute a ON a.attrelid = n.oid JOIN (VALUES ('k', 'lzo', true, 0), ('d', 'none', false, 1), ('n', 'zstd', false, 0)) v (name, encoding, distkey, sortkey) ON a.attname = v.name",
		"INSERT INTO rsemu.column_constraints SELECT a.attrelid, a.attnum FROM pg_attribute a WHERE a.attrelid IN (" + rel + ") AND a.attname IN ('k', 'd') AND NOT a.attisdropped",
	}
	if got := c.CatalogSQL(); !reflect.DeepEqual(got, want) {
		t.Fatalf("CatalogSQL:\n got %q\nwant %q", got, want)
	}
	like := (&CreateTable{Table: "t", Like: `"s"."p"`}).CatalogSQL()
	wantLike := []string{
		want[0], want[1], want[2],
		"INSERT INTO rsemu.table_attrs SELECT n.oid, p.diststyle, p.sortkind FROM (" + rel + `) n, rsemu.table_attrs p WHERE p.relid = '"s"."p"'::regclass`,
		"INSERT INTO rsemu.column_attrs SELECT n.oid, a.attnum, p.encoding, p.distkey, p.sortkey FROM (" + rel + ") n\n" +
			"JOIN pg_attribute a ON a.attrelid = n.oid AND a.attnum > 0 AND NOT a.attisdropped\n" +
			`JOIN pg_attribute pa ON pa.attrelid = '"s"."p"'::regclass AND pa.attname = a.attname AND NOT pa.attisdropped` + "\n" +
			"JOIN rsemu.column_attrs p ON p.relid = pa.attrelid AND p.attnum = pa.attnum",
	}
	if !reflect.DeepEqual(like, wantLike) {
		t.Fatalf("CatalogSQL of LIKE:\n got %q\nwant %q", like, wantLike)
	}
	if got, want := (&Constraint{Table: `"s"."t"`, Columns: []string{"a", "it's"}}).CatalogSQL(),
		`INSERT INTO rsemu.column_constraints SELECT a.attrelid, a.attnum FROM pg_attribute a WHERE a.attrelid IN (SELECT '"s"."t"'::regclass::oid) AND a.attname IN ('a', 'it''s') AND NOT a.attisdropped`; got != want {
		t.Fatalf("Constraint.CatalogSQL = %q, want %q", got, want)
	}
	if got, want := WriteLockSQL(`"s"."t"`), `LOCK TABLE "s"."t" IN SHARE ROW EXCLUSIVE MODE`; got != want {
		t.Fatalf("WriteLockSQL = %q, want %q", got, want)
	}
}
