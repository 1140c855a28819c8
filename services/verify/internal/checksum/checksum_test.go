package checksum

import (
	"testing"

	"github.com/redms/redms/pkg/typemap"
)

func table() Table {
	m := func(t string) typemap.Target { return typemap.Map(typemap.Postgres, t, typemap.Options{}) }
	return Table{Schema: "public", Name: "Orders", TargetSchema: "wh", TargetName: "Orders", Columns: []Column{
		{Name: "id", Declared: "integer", Target: m("integer"), Key: true},
		{Name: "amount", Declared: "numeric(12,2)", Target: m("numeric(12,2)")},
		{Name: "note", Declared: "text", Target: m("text")},
		{Name: "ok", Declared: "boolean", Target: m("boolean")},
	}}
}

func TestSourceValue(t *testing.T) {
	m := func(t string) typemap.Target { return typemap.Map(typemap.Postgres, t, typemap.Options{}) }
	cases := []struct {
		col  Column
		want string
	}{
		{Column{Name: "n", Declared: "numeric", Target: m("numeric")},
			`CASE WHEN "n" IS NULL OR "n" = 'NaN' THEN NULL ELSE LEAST(GREATEST(round("n", 8), -92233720368.54775807), 92233720368.54775807)::numeric(19,8)::text END`},
		{Column{Name: "n", Declared: "numeric(5,2)", Target: m("numeric(5,2)")},
			`CASE WHEN "n" IS NULL OR "n" = 'NaN' THEN NULL ELSE LEAST(GREATEST(round("n", 2), -999.99), 999.99)::numeric(5,2)::text END`},
		{Column{Name: "c", Declared: "character(4)", Target: m("character(4)")}, `CASE WHEN "c" IS NULL THEN NULL ELSE format('%s', "c") END`},
		{Column{Name: "t", Declared: "text", Target: m("text")},
			`CASE WHEN octet_length("t"::text) <= 65535 THEN "t"::text ELSE convert_from(substring(convert_to("t"::text, 'UTF8') FROM 1 FOR CASE WHEN get_byte(convert_to("t"::text, 'UTF8'), 65535) & 192 <> 128 THEN 65535 WHEN get_byte(convert_to("t"::text, 'UTF8'), 65534) & 192 <> 128 THEN 65534 WHEN get_byte(convert_to("t"::text, 'UTF8'), 65533) & 192 <> 128 THEN 65533 ELSE 65532 END), 'UTF8') END`},
		{Column{Name: "i", Declared: "inet", Target: m("inet")},
			`CASE WHEN octet_length(CASE WHEN "i" IS NULL THEN NULL ELSE format('%s', "i") END) <= 65535 THEN CASE WHEN "i" IS NULL THEN NULL ELSE format('%s', "i") END ELSE convert_from(substring(convert_to(CASE WHEN "i" IS NULL THEN NULL ELSE format('%s', "i") END, 'UTF8') FROM 1 FOR CASE WHEN get_byte(convert_to(CASE WHEN "i" IS NULL THEN NULL ELSE format('%s', "i") END, 'UTF8'), 65535) & 192 <> 128 THEN 65535 WHEN get_byte(convert_to(CASE WHEN "i" IS NULL THEN NULL ELSE format('%s', "i") END, 'UTF8'), 65534) & 192 <> 128 THEN 65534 WHEN get_byte(convert_to(CASE WHEN "i" IS NULL THEN NULL ELSE format('%s', "i") END, 'UTF8'), 65533) & 192 <> 128 THEN 65533 ELSE 65532 END), 'UTF8') END`},
		{Column{Name: "f", Declared: "double precision", Target: m("double precision")},
			`CASE WHEN "f" IN ('Infinity', '-Infinity', 'NaN') THEN NULL ELSE "f"::text END`},
		{Column{Name: "d", Declared: "date", Target: m("date")},
			`CASE WHEN NOT isfinite("d") OR "d" > '294276-12-31' THEN NULL ELSE "d"::text END`},
		{Column{Name: "z", Declared: "time with time zone", Target: m("time with time zone")}, `("z" AT TIME ZONE 'UTC')::text`},
		{Column{Name: "b", Declared: "bytea", Target: typemap.Map(typemap.Redshift, "bytea", typemap.Options{ByteaVarbyte: true})},
			`CASE WHEN octet_length("b") = 0 THEN NULL ELSE encode(substring("b" FROM 1 FOR 1048576), 'hex') END`},
	}
	for _, c := range cases {
		if got := SourceValue(c.col); got != c.want {
			t.Errorf("%s %s:\n got %s\nwant %s", c.col.Name, c.col.Declared, got, c.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	tb := table()
	cases := []struct {
		name string
		got  string
		want string
	}{
		{"source level 0", Buckets(Source, typemap.Redshift, tb, 3, nil),
			`SELECT SUBSTRING(kh, 1, 3) AS b, COUNT(*), CAST(SUM(('x' || SUBSTRING(h, 1, 8))::bit(32)::bigint) AS VARCHAR), CAST(SUM(('x' || SUBSTRING(h, 9, 8))::bit(32)::bigint) AS VARCHAR) FROM (` +
				`SELECT MD5(COALESCE("id"::text, 'N')) AS kh, ` +
				`MD5(COALESCE("id"::text, 'N') || '|' || ` +
				`COALESCE(CASE WHEN "amount" IS NULL OR "amount" = 'NaN' THEN NULL ELSE LEAST(GREATEST(round("amount", 2), -9999999999.99), 9999999999.99)::numeric(12,2)::text END, 'N') || '|' || ` +
				`COALESCE(MD5(` + SourceValue(tb.Columns[2]) + `), 'N') || '|' || ` +
				`COALESCE(CASE WHEN "ok" THEN 't' WHEN NOT "ok" THEN 'f' END, 'N')) AS h ` +
				`FROM "public"."Orders" OFFSET 0) r GROUP BY SUBSTRING(kh, 1, 3) ORDER BY 1`},
		{"redshift warehouse level 2", Buckets(Warehouse, typemap.Redshift, tb, 5, []string{"abc", "0f1"}),
			`SELECT SUBSTRING(kh, 1, 5) AS b, COUNT(*), CAST(SUM(STRTOL(SUBSTRING(h, 1, 8), 16)) AS VARCHAR), CAST(SUM(STRTOL(SUBSTRING(h, 9, 8), 16)) AS VARCHAR) FROM (` +
				`SELECT MD5(COALESCE(CAST("id" AS VARCHAR), 'N')) AS kh, ` +
				`MD5(COALESCE(CAST("id" AS VARCHAR), 'N') || '|' || COALESCE(CAST("amount" AS VARCHAR), 'N') || '|' || COALESCE(MD5("note"), 'N') || '|' || ` +
				`COALESCE(CASE WHEN "ok" THEN 't' WHEN NOT "ok" THEN 'f' END, 'N')) AS h ` +
				`FROM "wh"."Orders") r WHERE SUBSTRING(kh, 1, 3) IN ('abc', '0f1') GROUP BY SUBSTRING(kh, 1, 5) ORDER BY 1`},
		{"postgres warehouse level 1", Buckets(Warehouse, typemap.Postgres, Table{Schema: "s", Name: "k", TargetSchema: "s", TargetName: "k", Columns: []Column{
			{Name: "k", Declared: "character varying(10)", Target: typemap.Map(typemap.Postgres, "character varying(10)", typemap.Options{}), Key: true}}}, 5, []string{"0a1", "fff"}),
			`SELECT lpad(to_hex(((kh >> 44) & 1048575)), 5, '0') AS b, COUNT(*), CAST(SUM(h) AS VARCHAR), '' FROM (` +
				`SELECT hashtextextended((COALESCE(CAST(OCTET_LENGTH("k") AS VARCHAR) || ':' || "k", 'N')) COLLATE "C", 0) AS kh, ` +
				`hashtextextended((COALESCE(CAST(OCTET_LENGTH("k") AS VARCHAR) || ':' || "k", 'N')) COLLATE "C", 0) AS h FROM "s"."k" OFFSET 0) r ` +
				`WHERE ((kh >> 52) & 4095) IN (161, 4095) GROUP BY ((kh >> 44) & 1048575) ORDER BY 1`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.got, c.want)
		}
	}
}

func TestRowsKeyless(t *testing.T) {
	tb := Table{Schema: "s", Name: "bag", TargetSchema: "s", TargetName: "bag", Columns: []Column{
		{Name: "a", Declared: "integer", Target: typemap.Map(typemap.Postgres, "integer", typemap.Options{})},
	}}
	got := Rows(Warehouse, typemap.Postgres, tb, []string{"ab"})
	want := `SELECT lpad(to_hex(kh), 16, '0'), CAST(h AS VARCHAR), v0 FROM (SELECT h AS kh, r0.* FROM (SELECT hashtextextended((COALESCE(CAST("a" AS VARCHAR), 'N')) COLLATE "C", 0) AS h, CAST("a" AS VARCHAR) AS v0 FROM "s"."bag") r0 OFFSET 0) r WHERE ((kh >> 56) & 255) IN (171)`
	if got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestLiteral(t *testing.T) {
	for _, c := range []struct {
		d       typemap.Dialect
		in, out string
	}{
		{typemap.Postgres, `it's`, `'it''s'`},
		{typemap.Postgres, `a\b`, `E'a\\b'`},
		{typemap.Redshift, `a\b`, `'a\\b'`},
	} {
		if got := Literal(c.d, c.in); got != c.out {
			t.Errorf("Literal(%s, %q) = %s, want %s", c.d, c.in, got, c.out)
		}
	}
}
