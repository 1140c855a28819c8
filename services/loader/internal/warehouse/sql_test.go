package warehouse

import (
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/typemap"
)

func TestStatements(t *testing.T) {
	tbl := Table{Schema: "Sales", Name: `o"rd`}
	vc := typemap.Make(typemap.KindVarchar, 0, 0, 40)
	num := typemap.Make(typemap.KindNumeric, 19, 8, 0)
	now := time.Date(2026, 11, 25, 3, 4, 5, 123456000, time.UTC)
	keys := []Match{{Target: "id", Temp: "k0"}, {Target: "Region", Temp: "k1"}}
	cases := []struct{ got, want string }{
		{Ident(`a"b`), `"a""b"`},
		{Literal(Postgres, `it's \N`), `'it''s \N'`},
		{Literal(Redshift, `it's \N`), `'it''s \\N'`},
		{SetCaseSensitive(), `SET enable_case_sensitive_identifier TO true`},
		{CreateSchema("Sales"), `CREATE SCHEMA IF NOT EXISTS "Sales"`},
		{SchemaExists(Redshift, `a\b`), `SELECT COUNT(*) FROM pg_namespace WHERE nspname = 'a\\b'`},
		{CreateTable(tbl, []Column{{"id", typemap.Make(typemap.KindInteger, 0, 0, 0)}, {"Name", vc}, {"amt", num}}),
			`CREATE TABLE IF NOT EXISTS "Sales"."o""rd" ("id" INTEGER, "Name" VARCHAR(40), "amt" NUMERIC(19,8))`},
		{AddColumn(tbl, Column{"note", vc}), `ALTER TABLE "Sales"."o""rd" ADD COLUMN "note" VARCHAR(40)`},
		{DropColumn(tbl, "note"), `ALTER TABLE "Sales"."o""rd" DROP COLUMN "note"`},
		{WidenVarchar(tbl, "Name", 80), `ALTER TABLE "Sales"."o""rd" ALTER COLUMN "Name" TYPE VARCHAR(80)`},
		{strings.Join(Retype(Postgres, tbl, Column{"amt", typemap.Make(typemap.KindBigInt, 0, 0, 0)}), ";\n"),
			`ALTER TABLE "Sales"."o""rd" ALTER COLUMN "amt" TYPE BIGINT USING "amt"::BIGINT`},
		{strings.Join(Retype(Redshift, tbl, Column{"amt", typemap.Make(typemap.KindBigInt, 0, 0, 0)}), ";\n"),
			`ALTER TABLE "Sales"."o""rd" ADD COLUMN "redms_retype_new" BIGINT;
UPDATE "Sales"."o""rd" SET "redms_retype_new" = "amt"::BIGINT;
ALTER TABLE "Sales"."o""rd" DROP COLUMN "amt";
ALTER TABLE "Sales"."o""rd" RENAME COLUMN "redms_retype_new" TO "amt"`},
		{CreateTemp("redms_s0_upsert", []Column{{"c0", vc}, {"c1", num}}),
			`CREATE TEMP TABLE "redms_s0_upsert" ("c0" VARCHAR(40), "c1" NUMERIC(19,8))`},
		{DropTemp("redms_s0_upsert"), `DROP TABLE "redms_s0_upsert"`},
		{CopyFromStdin("redms_s0_upsert", []string{"c0", "c1"}, `\N`),
			`COPY "redms_s0_upsert" ("c0", "c1") FROM STDIN WITH (FORMAT csv, NULL '\N')`},
		{CopyFromS3("redms_s0_upsert", []string{"c0", "c1"}, "s3://b/redms/db/s/t/1-9/0-upsert/manifest",
			Credentials{IAMRole: "arn:aws:iam::123:role/r"}, "eu-west-1", `~N`),
			`COPY "redms_s0_upsert" ("c0", "c1") FROM 's3://b/redms/db/s/t/1-9/0-upsert/manifest' IAM_ROLE 'arn:aws:iam::123:role/r' MANIFEST REGION 'eu-west-1' GZIP CSV NULL AS '~N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`},
		{CopyFromS3("t", []string{"c0"}, "s3://b/m", Credentials{AccessKeyID: "AK", SecretAccessKey: "S'K"}, "us-east-1", `\N`),
			`COPY "t" ("c0") FROM 's3://b/m' ACCESS_KEY_ID 'AK' SECRET_ACCESS_KEY 'S''K' MANIFEST REGION 'us-east-1' GZIP CSV NULL AS '\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`},
		{CopyFromS3("t", []string{"c0"}, "s3://b/m", Credentials{AccessKeyID: "AK", SecretAccessKey: "SK", SessionToken: "TOK"}, "", `~N`),
			`COPY "t" ("c0") FROM 's3://b/m' ACCESS_KEY_ID 'AK' SECRET_ACCESS_KEY 'SK' SESSION_TOKEN 'TOK' MANIFEST GZIP CSV NULL AS '~N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`},
		{LastCopyCount(), `SELECT pg_last_copy_count()`},
		{DeleteUsing(tbl, "redms_s0_delete", keys, false),
			`DELETE FROM "Sales"."o""rd" USING "redms_s0_delete" WHERE "Sales"."o""rd"."id" = "redms_s0_delete"."k0" AND "Sales"."o""rd"."Region" = "redms_s0_delete"."k1"`},
		{DeleteUsing(tbl, "tmp", keys[:1], true),
			`DELETE FROM "Sales"."o""rd" USING "tmp" WHERE ("Sales"."o""rd"."id" = "tmp"."k0" OR ("Sales"."o""rd"."id" IS NULL AND "tmp"."k0" IS NULL))`},
		{DeleteTempWhereExists("tmp", tbl, []Match{{Target: "id", Temp: "c0"}}),
			`DELETE FROM "tmp" USING "Sales"."o""rd" WHERE "Sales"."o""rd"."id" = "tmp"."c0"`},
		{InsertSelect(tbl, []Match{{"id", "c0"}, {"Name", "c1"}}, "tmp"),
			`INSERT INTO "Sales"."o""rd" ("id", "Name") SELECT "c0", "c1" FROM "tmp"`},
		{UpdateFrom(tbl, []Match{{"id", "c0"}, {"Name", "c1"}}, "tmp", keys[:1]),
			`UPDATE "Sales"."o""rd" SET "id" = "tmp"."c0", "Name" = "tmp"."c1" FROM "tmp" WHERE "Sales"."o""rd"."id" = "tmp"."k0"`},
		{DeleteAll(tbl), `DELETE FROM "Sales"."o""rd"`},
		{Columns(Redshift, Table{"s", `it's`}),
			`SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema = 's' AND table_name = 'it''s' ORDER BY ordinal_position`},
		{CreateState("public"),
			`CREATE TABLE IF NOT EXISTS "public"."redms_applied" (target VARCHAR(512) NOT NULL, last_seq BIGINT NOT NULL, last_lsn VARCHAR(32) NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (target))`},
		{EnsureWatermark(Postgres, "public", `"Sales"."o""rd"`, now),
			`INSERT INTO "public"."redms_applied" (target, last_seq, last_lsn, applied_at) SELECT '"Sales"."o""rd"', 0, '', '2026-11-25 03:04:05.123456' WHERE NOT EXISTS (SELECT 1 FROM "public"."redms_applied" WHERE target = '"Sales"."o""rd"')`},
		{ReadWatermark(Postgres, "public", "x"), `SELECT last_seq FROM "public"."redms_applied" WHERE target = 'x' FOR UPDATE`},
		{PeekWatermark(Postgres, "public", "x"), `SELECT last_seq FROM "public"."redms_applied" WHERE target = 'x'`},
		{ReadWatermark(Redshift, "public", "x"), `SELECT last_seq FROM "public"."redms_applied" WHERE target = 'x'`},
		{AdvanceWatermark(Redshift, "st", "x", 42, "0/16B3748", now),
			`UPDATE "st"."redms_applied" SET last_seq = 42, last_lsn = '0/16B3748', applied_at = '2026-11-25 03:04:05.123456' WHERE target = 'x'`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got\n%s\nwant\n%s", c.got, c.want)
		}
	}
}

func TestCheckIdent(t *testing.T) {
	if err := CheckIdent(strings.Repeat("é", 63)); err != nil {
		t.Errorf("126 bytes refused: %v", err)
	}
	if err := CheckIdent(strings.Repeat("a", 128)); err == nil {
		t.Error("128 bytes accepted")
	}
	if err := CheckIdent(""); err == nil {
		t.Error("empty accepted")
	}
}

func TestTargetFromInfoSchema(t *testing.T) {
	i := func(v int64) *int64 { return &v }
	cases := []struct {
		dt              string
		cl, prec, scale *int64
		want            string
		ok              bool
	}{
		{"character varying", i(65535), nil, nil, "VARCHAR(65535)", true},
		{"character", i(36), nil, nil, "CHAR(36)", true},
		{"numeric", nil, i(19), i(8), "NUMERIC(19,8)", true},
		{"integer", nil, i(32), i(0), "INTEGER", true},
		{"smallint", nil, nil, nil, "SMALLINT", true},
		{"bigint", nil, nil, nil, "BIGINT", true},
		{"real", nil, nil, nil, "REAL", true},
		{"double precision", nil, nil, nil, "DOUBLE PRECISION", true},
		{"boolean", nil, nil, nil, "BOOLEAN", true},
		{"date", nil, nil, nil, "DATE", true},
		{"timestamp without time zone", nil, nil, nil, "TIMESTAMP", true},
		{"timestamp with time zone", nil, nil, nil, "TIMESTAMPTZ", true},
		{"time without time zone", nil, nil, nil, "TIME", true},
		{"time with time zone", nil, nil, nil, "TIMETZ", true},
		{"text", nil, nil, nil, "TEXT", false},
	}
	for _, c := range cases {
		got, ok := TargetFromInfoSchema(c.dt, c.cl, c.prec, c.scale)
		if got.SQL != c.want || ok != c.ok {
			t.Errorf("%s: got %q %v, want %q %v", c.dt, got.SQL, ok, c.want, c.ok)
		}
	}
}
