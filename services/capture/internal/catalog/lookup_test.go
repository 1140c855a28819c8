package catalog

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/tablekeys"
	"github.com/redms/redms/pkg/testinfra/testenv"
)

// TestLookup runs InfoSQL on a real catalog.
func TestLookup(t *testing.T) {
	pg := testenv.StartPostgres(t)
	url := pg.CreateDatabase(t, "shop")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `
CREATE TABLE lines (order_id int, line int, qty int, PRIMARY KEY (line, order_id));
CREATE TABLE audit (at int, what text, gone int);
ALTER TABLE audit DROP COLUMN gone;
ALTER TABLE audit REPLICA IDENTITY FULL;
CREATE TABLE nokey (a int);
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."T" ("x y" int PRIMARY KEY);
CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01') PARTITION BY LIST (id);
CREATE TABLE events_2024_a PARTITION OF events_2024 FOR VALUES IN (1);
CREATE TABLE typed (id int PRIMARY KEY, a numeric(10,2), b varchar(3)[]);
INSERT INTO typed VALUES (1);
ALTER TABLE typed ADD COLUMN c text DEFAULT 'x y', ADD COLUMN d int DEFAULT NULL;
`); err != nil {
		t.Fatal(err)
	}
	xy := "x y"
	cases := []struct {
		table Name
		want  Info
	}{
		{Name{"public", "lines"}, Info{Found: true, Keys: []string{"line", "order_id"}, KeySource: SourcePrimaryKey,
			Root: Name{"public", "lines"}, Columns: []string{"order_id", "line", "qty"}}},
		{Name{"public", "audit"}, Info{Found: true, Keys: []string{"at", "what"}, KeySource: SourceReplicaIdentityFull,
			Root: Name{"public", "audit"}, Columns: []string{"at", "what"}}},
		{Name{"public", "nokey"}, Info{Found: true, Keys: []string{}, KeySource: SourceNone,
			Root: Name{"public", "nokey"}, Columns: []string{"a"}}},
		{Name{"My Schema", "T"}, Info{Found: true, Keys: []string{"x y"}, KeySource: SourcePrimaryKey,
			Root: Name{"My Schema", "T"}, Columns: []string{"x y"}}},
		{Name{"public", "events_2024_a"}, Info{Found: true, Keys: []string{"id", "at"}, KeySource: SourcePrimaryKey,
			Root: Name{"public", "events"}, Columns: []string{"id", "at"}}},
		{Name{"public", "missing"}, Info{Keys: []string{}, KeySource: SourceNone, Root: Name{"public", "missing"}}},
		{Name{"public", "typed"}, Info{Found: true, Keys: []string{"id"}, KeySource: SourcePrimaryKey,
			Root: Name{"public", "typed"}, Columns: []string{"id", "a", "b", "c", "d"},
			Types:   map[string]string{"a": "numeric(10,2)", "b": "character varying(3)[]"},
			Missing: map[string]*string{"c": &xy}}},
	}
	for _, c := range cases {
		got, err := Lookup(ctx, conn, c.table)
		if err != nil {
			t.Errorf("Lookup(%s): %v", c.table, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Lookup(%s) = %+v, want %+v", c.table, got, c.want)
		}
	}
	// Live falls back to configured keys only where the catalog has none.
	live := Live{Q: conn, Keys: tablekeys.Keys{{Schema: "public", Name: "nokey"}: {"a"}, {Schema: "public", Name: "lines"}: {"qty"}}}
	if got, _ := live.Resolve(ctx, Name{"public", "nokey"}); got.KeySource != SourceConfig || !reflect.DeepEqual(got.Keys, []string{"a"}) {
		t.Errorf("Live nokey = %+v", got)
	}
	if got, _ := live.Resolve(ctx, Name{"public", "lines"}); got.KeySource != SourcePrimaryKey {
		t.Errorf("Live lines = %+v: configuration must not override a primary key", got)
	}
	// --stdin: configuration, else id.
	st := Static{Keys: tablekeys.Keys{{Schema: "public", Name: "lines"}: {"order_id", "line"}}}
	if got, _ := st.Resolve(ctx, Name{"public", "lines"}); got.KeySource != SourceConfig || !reflect.DeepEqual(got.Keys, []string{"order_id", "line"}) {
		t.Errorf("Static lines = %+v", got)
	}
	if got, _ := st.Resolve(ctx, Name{"public", "x"}); got.KeySource != SourceDefault || !reflect.DeepEqual(got.Keys, []string{"id"}) {
		t.Errorf("Static x = %+v", got)
	}
}
