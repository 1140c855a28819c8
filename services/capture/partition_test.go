package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// TestTruncatePartitionBounds: a TRUNCATE of a partition travels on its
// root's subject with Redms-Partition, the bounds of every level from the
// root's child down to it (range, multi-column, multi-level, list with
// NULL, MINVALUE/MAXVALUE), or Unbounded with the reason where no bound
// tells its rows apart (hash, default, expression keys, suffix folding,
// several partitions in one statement). Tables of one TRUNCATE that share
// a subject share one message; a TRUNCATE of the root itself has no
// bounds.
func TestTruncatePartitionBounds(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `
CREATE TABLE ev (id int, at date, region text, PRIMARY KEY (id, at, region)) PARTITION BY RANGE (at, id);
CREATE TABLE ev_a PARTITION OF ev FOR VALUES FROM (MINVALUE, MINVALUE) TO ('2024-01-01', -5) PARTITION BY LIST (region);
CREATE TABLE ev_a_eu PARTITION OF ev_a FOR VALUES IN ('eu', 'it''s', NULL);
CREATE TABLE ev_a_def PARTITION OF ev_a DEFAULT;
CREATE TABLE ev_b PARTITION OF ev FOR VALUES FROM ('2024-01-01', -5) TO (MAXVALUE, MAXVALUE) PARTITION BY HASH (id);
CREATE TABLE ev_b_0 PARTITION OF ev_b FOR VALUES WITH (modulus 2, remainder 0);
CREATE TABLE ev_b_1 PARTITION OF ev_b FOR VALUES WITH (modulus 2, remainder 1);
CREATE TABLE li (code text, n int) PARTITION BY LIST (code);
CREATE TABLE li_x PARTITION OF li FOR VALUES IN ('x, y');
CREATE TABLE ex (a int, b text) PARTITION BY RANGE ((a + 1), b);
CREATE TABLE ex_1 PARTITION OF ex FOR VALUES FROM (1, 'a') TO (5, 'b');
CREATE TABLE logs_2024_01 (id int PRIMARY KEY);
CREATE TABLE plain (id int PRIMARY KEY);
`)
	env := liveEnv(url, ns.URL(), "bounds")
	env["REDMS_PARTITION_SUFFIX_REGEXP"] = `_\d{4}_\d{2}$`
	startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot", func() bool { return slotConfirmed(t, db, "bounds") != 0 })
	for _, s := range []string{
		"TRUNCATE ev_a_eu", "TRUNCATE ev_a_def", "TRUNCATE ev_b_0", "TRUNCATE ev_b", "TRUNCATE ev_a", "TRUNCATE li_x",
		"TRUNCATE ex_1", "TRUNCATE logs_2024_01", "TRUNCATE ev", "TRUNCATE ev_a_eu, ev_b_1, li_x", "TRUNCATE plain",
		"INSERT INTO plain VALUES (1)",
	} {
		exec1(t, db, s)
	}
	val := func(v string) walheader.Bound { return walheader.Bound{Kind: walheader.BoundValue, Value: v} }
	minv, maxv := walheader.Bound{Kind: walheader.BoundMinValue}, walheader.Bound{Kind: walheader.BoundMaxValue}
	evA := walheader.PartitionLevel{Strategy: walheader.StrategyRange, Columns: []string{"at", "id"},
		From: []walheader.Bound{minv, minv}, To: []walheader.Bound{val("2024-01-01"), val("-5")}}
	liX := &walheader.Partition{Leaf: "public.li_x", Levels: []walheader.PartitionLevel{
		{Strategy: walheader.StrategyList, Columns: []string{"code"}, In: []walheader.Bound{val("x, y")}}}}
	type exp struct {
		subject   string
		partition *walheader.Partition
		unbounded string // a word the reason must hold, instead of partition
	}
	exps := []exp{
		{"ev", &walheader.Partition{Leaf: "public.ev_a_eu", Levels: []walheader.PartitionLevel{evA,
			{Strategy: walheader.StrategyList, Columns: []string{"region"}, In: []walheader.Bound{val("eu"), val("it's"), {Kind: walheader.BoundNull}}}}}, ""},
		{"ev", nil, "default"},
		{"ev", nil, "hash"},
		{"ev", &walheader.Partition{Leaf: "public.ev_b", Levels: []walheader.PartitionLevel{{Strategy: walheader.StrategyRange,
			Columns: []string{"at", "id"}, From: []walheader.Bound{val("2024-01-01"), val("-5")}, To: []walheader.Bound{maxv, maxv}}}}, ""},
		{"ev", &walheader.Partition{Leaf: "public.ev_a", Levels: []walheader.PartitionLevel{evA}}, ""},
		{"li", liX, ""},
		{"ex", nil, "expression"},
		{"logs", nil, "REDMS_PARTITION_SUFFIX_REGEXP"},
		{"ev", nil, ""},
		{"ev", nil, "several"},
		{"li", liX, ""},
		{"plain", nil, ""},
		{"plain", nil, ""}, // the INSERT
	}
	waitStreamHolds(t, js, len(exps), 30*time.Second)
	time.Sleep(200 * time.Millisecond) // anything beyond would be a wrong split
	raw := readStream(t, js, "REDMS_WAL")
	checkIDs(t, raw) // the TRUNCATE on two subjects: two ids
	msgs := changes(t, raw)
	var got []string
	for _, m := range msgs {
		got = append(got, m.Subject+" "+m.Header.Get(walheader.PartitionBounds))
	}
	if len(msgs) != len(exps) {
		t.Fatalf("%d changes, want %d:\n%s", len(msgs), len(exps), strings.Join(got, "\n"))
	}
	for i, e := range exps {
		m := msgs[i]
		if m.Subject != "redms.wal.shop.public."+e.subject {
			t.Errorf("message %d: subject %s, want %s", i, m.Subject, e.subject)
		}
		raw := m.Header.Get(walheader.PartitionBounds)
		var p *walheader.Partition
		if raw != "" {
			p = new(walheader.Partition)
			if err := json.Unmarshal([]byte(raw), p); err != nil {
				t.Errorf("message %d: %s %q: %v", i, walheader.PartitionBounds, raw, err)
				continue
			}
		}
		switch {
		case e.unbounded != "":
			if p == nil || !strings.Contains(p.Unbounded, e.unbounded) || len(p.Levels) != 0 {
				t.Errorf("message %d (%.60q): %s %s, want unbounded with %q", i, m.Data, walheader.PartitionBounds, raw, e.unbounded)
			}
		case !reflect.DeepEqual(p, e.partition):
			want, _ := json.Marshal(e.partition)
			t.Errorf("message %d (%.60q): %s %s, want %s", i, m.Data, walheader.PartitionBounds, raw, want)
		}
	}
	// A TRUNCATE with Redms-Partition is a message of its own.
	for _, m := range raw {
		if m.Header.Get(walheader.PartitionBounds) != "" && m.Header.Get(walheader.Lens) != "" {
			t.Errorf("a batch of %s has %s", m.Header.Get(walheader.Lens), walheader.PartitionBounds)
		}
	}
}
