package workload

import (
	"testing"
)

func TestSQL(t *testing.T) {
	big := bigItems(100)
	lines := orderLines()
	two := []column{big.cols[0], big.cols[2]}
	cases := []struct{ got, want string }{
		{QuoteIdent(`a"b`), `"a""b"`},
		{QualifiedName("public", "Order.Items Big"), `"public"."Order.Items Big"`},
		{createEnumSQL("s"), `CREATE TYPE "s"."mood" AS ENUM ('sad', 'ok', 'happy', 'so-so')`},
		{createTableSQL("public", lines)[0],
			`CREATE TABLE "public"."order_lines" ("order_id" bigint NOT NULL, "line_no" integer NOT NULL, "sku" text, "qty" integer, "price" numeric(10,2), "note" varchar(20), PRIMARY KEY ("order_id", "line_no"))`},
		{insertSQL("public", big, two),
			`INSERT INTO "public"."Order.Items Big" ("id", "Sku", "status") VALUES ($1::text::bigint, $2::text::text, $3::text::varchar(16))`},
		{updateSQL("public", lines, lines.cols[1:2]),
			`UPDATE "public"."order_lines" SET "qty" = $1::text::integer WHERE "order_id" = $2::text::bigint AND "line_no" = $3::text::integer`},
		{rekeySQL("public", lines),
			`UPDATE "public"."order_lines" SET "order_id" = $1::text::bigint, "line_no" = $2::text::integer WHERE "order_id" = $3::text::bigint AND "line_no" = $4::text::integer`},
		{deleteSQL("public", big), `DELETE FROM "public"."Order.Items Big" WHERE "id" = $1::text::bigint`},
		{insertSQL("s", allTypes(), allTypes().cols[len(allTypes().cols)-1:]),
			`INSERT INTO "s"."all_types" ("id", "c_enum") VALUES ($1::text::bigint, $2::text::"s"."mood")`},
		{addColumnSQL("public", "customers", column{name: "loyalty", sqlType: "text"}), `ALTER TABLE "public"."customers" ADD COLUMN "loyalty" text`},
		{dropColumnSQL("public", "customers", "nickname"), `ALTER TABLE "public"."customers" DROP COLUMN "nickname"`},
		{retypeColumnSQL("public", "customers", "score", "bigint"), `ALTER TABLE "public"."customers" ALTER COLUMN "score" TYPE bigint`},
		{truncateSQL("public", "sessions", "order_lines"), `TRUNCATE "public"."sessions", "public"."order_lines"`},
		{copySQL("public", sessions()), `COPY "public"."sessions" ("id", "user_name", "started_at") FROM STDIN`},
		{copyText(nil), `\N`},
		{copyText(str("a\\b\tc\nd\re")), `a\\b\tc\nd\re`},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got  %s\nwant %s", c.got, c.want)
		}
	}
	parts := createTableSQL("public", measurements())
	want := []string{
		`CREATE TABLE "public"."measurements" ("id" bigint NOT NULL, "bucket" integer NOT NULL, "value" double precision, "tag" text, PRIMARY KEY ("id", "bucket")) PARTITION BY RANGE ("bucket")`,
		`CREATE TABLE "public"."measurements_p0" PARTITION OF "public"."measurements" FOR VALUES FROM (MINVALUE) TO (3)`,
		`CREATE TABLE "public"."measurements_p1" PARTITION OF "public"."measurements" FOR VALUES FROM (3) TO (MAXVALUE)`,
	}
	if len(parts) != len(want) {
		t.Fatalf("partitioned table: got %d statements, want %d", len(parts), len(want))
	}
	for i := range want {
		if parts[i] != want[i] {
			t.Errorf("got  %s\nwant %s", parts[i], want[i])
		}
	}
}

func TestKeys(t *testing.T) {
	lines := orderLines()
	var got []string
	for range 5 {
		got = append(got, lines.nextKey().String())
	}
	want := "1,1 1,2 1,3 1,4 2,1"
	if s := join(got); s != want {
		t.Errorf("composite keys: got %s, want %s", s, want)
	}
	if m := lines.movedKey(key{1, 2}).String(); m != "1,1006" {
		t.Errorf("moved key: got %s, want 1,1006", m)
	}
	var s keySet
	s.add(key{1})
	s.add(key{2})
	s.add(key{3})
	s.remove(key{1})
	if s.has(key{1}) || !s.has(key{3}) || s.len() != 2 || s.keys[0].String() != "3" {
		t.Errorf("keySet after remove: %v", s.keys)
	}
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
