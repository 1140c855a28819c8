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
	integer := typemap.Make(typemap.KindInteger, 0, 0, 0)
	now := time.Date(2026, 11, 25, 3, 4, 5, 123456000, time.UTC)
	keys := []Match{{Target: "id", Temp: "k0"}, {Target: "Region", Temp: "k1", Exact: true}}
	cases := []struct{ got, want string }{
		{Ident(`a"b`), `"a""b"`},
		{Literal(Postgres, `it's \N`), `'it''s \N'`},
		{Literal(Redshift, `it's \N`), `'it''s \\N'`},
		{SetCaseSensitive(), `SET enable_case_sensitive_identifier TO true`},
		{CreateSchema("Sales"), `CREATE SCHEMA IF NOT EXISTS "Sales"`},
		{SchemaExists(Redshift, `a\b`), `SELECT COUNT(*) FROM pg_namespace WHERE nspname = 'a\\b'`},
		{CreateTable(Postgres, tbl, []Column{{"id", integer}, {"Name", vc}, {"amt", num}}, TableKeys{Columns: []string{"id"}, Primary: true, Dist: DistKey}),
			`CREATE TABLE IF NOT EXISTS "Sales"."o""rd" ("id" INTEGER, "Name" VARCHAR(40), "amt" NUMERIC(19,8))`},
		{CreateTable(Redshift, tbl, []Column{{"id", integer}, {"Name", vc}, {"amt", num}}, TableKeys{Columns: []string{"Name", "id"}, Primary: true, Dist: DistKey}),
			`CREATE TABLE IF NOT EXISTS "Sales"."o""rd" ("id" INTEGER, "Name" VARCHAR(40), "amt" NUMERIC(19,8), PRIMARY KEY ("Name", "id")) DISTSTYLE KEY DISTKEY ("Name") COMPOUND SORTKEY ("Name", "id")`},
		{CreateTable(Redshift, tbl, []Column{{"id", integer}}, TableKeys{Columns: []string{"id"}, Dist: DistEven}),
			`CREATE TABLE IF NOT EXISTS "Sales"."o""rd" ("id" INTEGER) DISTSTYLE EVEN COMPOUND SORTKEY ("id")`},
		{CreateTable(Redshift, tbl, []Column{{"id", integer}}, TableKeys{Columns: []string{"id"}, Primary: true, Dist: DistAuto}),
			`CREATE TABLE IF NOT EXISTS "Sales"."o""rd" ("id" INTEGER, PRIMARY KEY ("id")) DISTSTYLE AUTO COMPOUND SORTKEY ("id")`},
		{CreateTable(Redshift, tbl, []Column{{"v", vc}}, TableKeys{Dist: DistKey}),
			`CREATE TABLE IF NOT EXISTS "Sales"."o""rd" ("v" VARCHAR(40)) DISTSTYLE AUTO`},
		{strings.Join(Rebuild(tbl, []Column{{"id", vc}, {"amt", num}, {"gone", integer}}, []Column{{"id", typemap.Make(typemap.KindVarchar, 0, 0, 80)}, {"amt", num}, {"new", integer}},
			TableKeys{Columns: []string{"id"}, Primary: true, Dist: DistKey}), ";\n"),
			`CREATE TABLE "Sales"."redms_rebuild_2413cedc" ("id" VARCHAR(80), "amt" NUMERIC(19,8), "new" INTEGER, PRIMARY KEY ("id")) DISTSTYLE KEY DISTKEY ("id") COMPOUND SORTKEY ("id");
INSERT INTO "Sales"."redms_rebuild_2413cedc" ("id", "amt") SELECT "id"::VARCHAR(80), "amt" FROM "Sales"."o""rd";
DROP TABLE "Sales"."o""rd";
ALTER TABLE "Sales"."redms_rebuild_2413cedc" RENAME TO "o""rd"`},
		{Lock(Redshift, Table{"st", "s"}, tbl), `LOCK "st"."s", "Sales"."o""rd"`},
		{Lock(Postgres, Table{"st", "s"}), `LOCK TABLE "st"."s" IN SHARE ROW EXCLUSIVE MODE`},
		{SetSearchPath("Sales"), `SET search_path TO "Sales"`},
		{TableAttrs(Table{"Sales", `it's`}), `SELECT "column", encoding, distkey, sortkey FROM pg_table_def WHERE schemaname = 'Sales' AND tablename = 'it''s'`},
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
		{CreateStage(Redshift, []Column{{"k0", vc}, {"c0", num}}, "k0"),
			`CREATE TEMP TABLE "redms_stage" ("redms_step" INTEGER, "k0" VARCHAR(40), "c0" NUMERIC(19,8)) DISTSTYLE KEY DISTKEY ("k0")`},
		{CreateStage(Redshift, []Column{{"c0", num}}, ""), `CREATE TEMP TABLE "redms_stage" ("redms_step" INTEGER, "c0" NUMERIC(19,8))`},
		{CreateStage(Postgres, []Column{{"k0", vc}}, "k0"), `CREATE TEMP TABLE "redms_stage" ("redms_step" INTEGER, "k0" VARCHAR(40))`},
		{AnalyzeStage(), `ANALYZE "redms_stage"`},
		{DropStage(), `DROP TABLE "redms_stage"`},
		{CopyFromStdin("redms_stage", []string{"redms_step", "c0", "c1"}, `\N`),
			`COPY "redms_stage" ("redms_step", "c0", "c1") FROM STDIN WITH (FORMAT csv, NULL '\N')`},
		{CopyFromS3("redms_s0_upsert", []string{"c0", "c1"}, "s3://b/redms/db/s/t/1-9/0-upsert/manifest",
			Credentials{IAMRole: "arn:aws:iam::123:role/r"}, "eu-west-1", `~N`),
			`COPY "redms_s0_upsert" ("c0", "c1") FROM 's3://b/redms/db/s/t/1-9/0-upsert/manifest' IAM_ROLE 'arn:aws:iam::123:role/r' MANIFEST REGION 'eu-west-1' GZIP CSV NULL AS '~N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`},
		{CopyFromS3("t", []string{"c0"}, "s3://b/m", Credentials{AccessKeyID: "AK", SecretAccessKey: "S'K"}, "us-east-1", `\N`),
			`COPY "t" ("c0") FROM 's3://b/m' ACCESS_KEY_ID 'AK' SECRET_ACCESS_KEY 'S''K' MANIFEST REGION 'us-east-1' GZIP CSV NULL AS '\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`},
		{CopyFromS3("t", []string{"c0"}, "s3://b/m", Credentials{AccessKeyID: "AK", SecretAccessKey: "SK", SessionToken: "TOK"}, "", `~N`),
			`COPY "t" ("c0") FROM 's3://b/m' ACCESS_KEY_ID 'AK' SECRET_ACCESS_KEY 'SK' SESSION_TOKEN 'TOK' MANIFEST GZIP CSV NULL AS '~N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF`},
		{LastCopyCount(), `SELECT pg_last_copy_count()`},
		{DeleteUsing(tbl, 3, keys, false),
			`DELETE FROM "Sales"."o""rd" USING "redms_stage" WHERE "redms_stage"."redms_step" = 3 AND "Sales"."o""rd"."id" = "redms_stage"."k0" AND "Sales"."o""rd"."Region" = "redms_stage"."k1" AND OCTET_LENGTH("Sales"."o""rd"."Region") = OCTET_LENGTH("redms_stage"."k1")`},
		{DeleteUsing(tbl, 0, keys, true),
			`DELETE FROM "Sales"."o""rd" USING "redms_stage" WHERE "redms_stage"."redms_step" = 0 AND ("Sales"."o""rd"."id" = "redms_stage"."k0" OR ("Sales"."o""rd"."id" IS NULL AND "redms_stage"."k0" IS NULL)) AND (("Sales"."o""rd"."Region" = "redms_stage"."k1" AND OCTET_LENGTH("Sales"."o""rd"."Region") = OCTET_LENGTH("redms_stage"."k1")) OR ("Sales"."o""rd"."Region" IS NULL AND "redms_stage"."k1" IS NULL))`},
		{DeleteStageWhereExists(2, tbl, []Match{{Target: "id", Temp: "c0"}}),
			`DELETE FROM "redms_stage" USING "Sales"."o""rd" WHERE "redms_stage"."redms_step" = 2 AND "Sales"."o""rd"."id" = "redms_stage"."c0"`},
		{InsertSelect(tbl, []Match{{Target: "id", Temp: "k0"}, {Target: "Name", Temp: "c1"}}, 1),
			`INSERT INTO "Sales"."o""rd" ("id", "Name") SELECT "k0", "c1" FROM "redms_stage" WHERE "redms_step" = 1`},
		{UpdateFrom(tbl, []Match{{Target: "id", Temp: "c0"}, {Target: "Name", Temp: "c1"}}, 4, keys[:1]),
			`UPDATE "Sales"."o""rd" SET "id" = "redms_stage"."c0", "Name" = "redms_stage"."c1" FROM "redms_stage" WHERE "redms_stage"."redms_step" = 4 AND "Sales"."o""rd"."id" = "redms_stage"."k0"`},
		{DeleteAll(tbl), `DELETE FROM "Sales"."o""rd"`},
		{Columns(Redshift, Table{"s", `it's`}),
			`SELECT column_name, data_type, character_maximum_length, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_schema = 's' AND table_name = 'it''s' ORDER BY ordinal_position`},
		{CreateStateTable(StateTable("st", tbl)),
			`CREATE TABLE IF NOT EXISTS "st"."redms_state_2413cedc_o""rd" (target VARCHAR(512) NOT NULL, source_db VARCHAR(512) NOT NULL, source_schema VARCHAR(512) NOT NULL, source_table VARCHAR(512) NOT NULL, pos_base BIGINT NOT NULL, pos_index BIGINT NOT NULL, pos VARCHAR(64) NOT NULL, legacy_seq BIGINT NOT NULL, last_lsn VARCHAR(32) NOT NULL, applied_at TIMESTAMP NOT NULL, PRIMARY KEY (target))`},
		{ClaimState(Redshift, Table{"st", "s"}, `"Sales"."o""rd"`, Source{"shop", "Sales", `o\rd`}, now),
			`INSERT INTO "st"."s" (target, source_db, source_schema, source_table, pos_base, pos_index, pos, legacy_seq, last_lsn, applied_at) SELECT '"Sales"."o""rd"', 'shop', 'Sales', 'o\\rd', 0, 0, '', 0, '', '2026-11-25 03:04:05.123456' WHERE NOT EXISTS (SELECT 1 FROM "st"."s")`},
		{ReadState(Table{"st", "s"}), `SELECT source_db, source_schema, source_table, pos_base, pos_index, legacy_seq FROM "st"."s" ORDER BY source_db, source_schema, source_table`},
		{AdvanceState(Postgres, Table{"st", "s"}, Source{"shop", "public", "it's"}, 0x16B3700, 3, "0/16B3700:3", 17, "0/16B3748", now),
			`UPDATE "st"."s" SET pos_base = 23803648, pos_index = 3, pos = '0/16B3700:3', legacy_seq = 17, last_lsn = '0/16B3748', applied_at = '2026-11-25 03:04:05.123456' WHERE source_db = 'shop' AND source_schema = 'public' AND source_table = 'it''s'`},
		{LegacyWatermark(Postgres, "public", `"public"."orders"`), `SELECT last_seq FROM "public"."redms_applied" WHERE target = '"public"."orders"'`},
		{FillColumn(Redshift, tbl, "flag", `y\es`), `UPDATE "Sales"."o""rd" SET "flag" = 'y\\es'`},
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
		{"jsonb", nil, nil, nil, "SUPER", true},
		{"super", nil, nil, nil, "SUPER", true},
		{"bytea", nil, nil, nil, "VARBYTE(1048576)", true},
		{"binary varying", i(100), nil, nil, "VARBYTE(100)", true},
		{"text", nil, nil, nil, "TEXT", false},
	}
	for _, c := range cases {
		got, ok := TargetFromInfoSchema(c.dt, c.cl, c.prec, c.scale)
		if got.SQL != c.want || ok != c.ok {
			t.Errorf("%s: got %q %v, want %q %v", c.dt, got.SQL, ok, c.want, c.ok)
		}
	}
}

func TestParseDistStyle(t *testing.T) {
	for in, want := range map[string]DistStyle{"key": DistKey, "AUTO": DistAuto, " even ": DistEven} {
		if got, err := ParseDistStyle(in); err != nil || got != want {
			t.Errorf("ParseDistStyle(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseDistStyle("all"); err == nil {
		t.Error("ALL accepted")
	}
}
