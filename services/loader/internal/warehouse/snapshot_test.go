package warehouse

import "testing"

func TestDeleteRange(t *testing.T) {
	tb := Table{Schema: "public", Name: "t"}
	keys := []Match{{Target: "a", Temp: "k0"}, {Target: "b", Temp: "k1", Exact: true}}
	from := Bound{Typed(Postgres, "1", "BIGINT"), Typed(Postgres, "x'y", "VARCHAR(10)")}
	got := DeleteRange(Redshift, tb, keys, from, nil, 3)
	want := `DELETE FROM "public"."t" WHERE (("public"."t"."a" > CAST('1' AS BIGINT)) OR ("public"."t"."a" = CAST('1' AS BIGINT) AND "public"."t"."b" > CAST('x''y' AS VARCHAR(10)))) AND ` +
		`NOT EXISTS (SELECT 1 FROM "redms_stage" WHERE "redms_stage"."redms_step" = 3 AND "public"."t"."a" = "redms_stage"."k0" AND "public"."t"."b" = "redms_stage"."k1" AND OCTET_LENGTH("public"."t"."b") = OCTET_LENGTH("redms_stage"."k1"))`
	if got != want {
		t.Errorf("DeleteRange from\n got %s\nwant %s", got, want)
	}
	// On Postgres a text key compares by its bytes, as on Redshift.
	got = DeleteRange(Postgres, tb, keys, from, nil, -1)
	want = `DELETE FROM "public"."t" WHERE (("public"."t"."a" > CAST('1' AS BIGINT)) OR ("public"."t"."a" = CAST('1' AS BIGINT) AND "public"."t"."b" COLLATE "C" > CAST('x''y' AS VARCHAR(10))))`
	if got != want {
		t.Errorf("DeleteRange from, on Postgres\n got %s\nwant %s", got, want)
	}
	got = DeleteRange(Postgres, tb, keys[:1], nil, Bound{"CAST('9' AS BIGINT)"}, 0)
	want = `DELETE FROM "public"."t" WHERE NOT ("public"."t"."a" > CAST('9' AS BIGINT)) AND NOT EXISTS (SELECT 1 FROM "redms_stage" WHERE "redms_stage"."redms_step" = 0 AND "public"."t"."a" = "redms_stage"."k0")`
	if got != want {
		t.Errorf("DeleteRange to\n got %s\nwant %s", got, want)
	}
	got = DeleteRange(Postgres, tb, keys[:1], nil, Bound{"CAST('9' AS BIGINT)"}, -1)
	want = `DELETE FROM "public"."t" WHERE NOT ("public"."t"."a" > CAST('9' AS BIGINT))`
	if got != want {
		t.Errorf("DeleteRange sparing no key\n got %s\nwant %s", got, want)
	}
	if got, want := DeleteRange(Postgres, tb, keys, nil, nil, -1), `DELETE FROM "public"."t"`; got != want {
		t.Errorf("DeleteRange of the whole key space\n got %s\nwant %s", got, want)
	}
}
