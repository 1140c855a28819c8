package main

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// TestLive runs capture against a real slot and stream and checks every
// message: subjects, bodies, headers, keys, partitions, selection, TRUNCATE,
// and the position it confirms.
func TestLive(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ns := testenv.StartNATS(t)
	_, js := ns.Connect(t)
	url := pg.CreateDatabase(t, "shop")
	db := connect(t, url)
	exec1(t, db, `
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TABLE lines (order_id int, line int, qty int, PRIMARY KEY (line, order_id));
CREATE TABLE audit (at int, what text);
ALTER TABLE audit REPLICA IDENTITY FULL;
CREATE TABLE nokey (a int, b text);
CREATE TABLE secret (id int PRIMARY KEY);
CREATE TABLE "Odd.Name" ("x y" int PRIMARY KEY);
CREATE TABLE events (id int, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE logs_2024_01 (id int PRIMARY KEY, msg text);
`)
	env := liveEnv(url, ns.URL(), "capture_live")
	env["REDMS_EXCLUDE_TABLES"] = "public.secret"
	env["REDMS_PARTITION_SUFFIX_REGEXP"] = `_\d{4}_\d{2}$`
	env["REDMS_METRICS_ADDR"] = testenv.FreeAddr(t)
	p := startCapture(t, env)
	testenv.Eventually(t, 30*time.Second, "slot created", func() bool { return slotConfirmed(t, db, "capture_live") != 0 })

	exec1(t, db, `
INSERT INTO orders VALUES (1, 'a'), (2, 'b');
INSERT INTO lines VALUES (1, 1, 5);
INSERT INTO audit VALUES (1, 'x');
INSERT INTO nokey VALUES (1, 'y');
INSERT INTO secret VALUES (1);
INSERT INTO "Odd.Name" VALUES (7);
INSERT INTO events VALUES (1, '2024-05-01');
INSERT INTO logs_2024_01 VALUES (1, 'm');
UPDATE orders SET id = 3 WHERE id = 2;
DELETE FROM orders WHERE id = 1;
`)
	exec1(t, db, `BEGIN; ALTER TABLE orders ADD COLUMN extra int; INSERT INTO orders VALUES (4, 'd', 9); COMMIT`)
	exec1(t, db, `TRUNCATE lines, audit`)
	exec1(t, db, `INSERT INTO secret VALUES (2)`) // excluded only: nothing published, still confirmed
	const want = 13
	waitStreamHolds(t, js, want, 30*time.Second)
	raw := readStream(t, js, "REDMS_WAL")
	checkIDs(t, raw)
	// Batches hold a table's changes: back in source order by LSN (these
	// transactions ran one after another; the TRUNCATE's two subjects
	// share its LSN and keep stream order).
	msgs := changes(t, raw)
	sort.SliceStable(msgs, func(i, j int) bool { return lsnOf(t, msgs[i]) < lsnOf(t, msgs[j]) })
	if len(msgs) != want {
		t.Fatalf("stream holds %d changes, want %d", len(msgs), want)
	}
	type exp struct {
		subject, bodyPrefix, keys, source, leaf string
	}
	exps := []exp{
		{"redms.wal.shop.public.orders", "table public.orders: INSERT: id[integer]:1 note[text]:'a'", `["id"]`, "primary-key", ""},
		{"redms.wal.shop.public.orders", "table public.orders: INSERT: id[integer]:2", `["id"]`, "primary-key", ""},
		{"redms.wal.shop.public.lines", "table public.lines: INSERT:", `["line","order_id"]`, "primary-key", ""},
		{"redms.wal.shop.public.audit", "table public.audit: INSERT:", `["at","what"]`, "replica-identity-full", ""},
		{"redms.wal.shop.public.nokey", "table public.nokey: INSERT:", `[]`, "none", ""},
		{"redms.wal.shop.public.Odd~2EName", `table public."Odd.Name": INSERT: "x y"[integer]:7`, `["x y"]`, "primary-key", ""},
		{"redms.wal.shop.public.events", "table public.events_2024: INSERT:", `["id","at"]`, "primary-key", "public.events_2024"},
		{"redms.wal.shop.public.logs", "table public.logs_2024_01: INSERT:", `["id"]`, "primary-key", "public.logs_2024_01"},
		{"redms.wal.shop.public.orders", "table public.orders: UPDATE: old-key: id[integer]:2 new-tuple: id[integer]:3", `["id"]`, "primary-key", ""},
		{"redms.wal.shop.public.orders", "table public.orders: DELETE: id[integer]:1", `["id"]`, "primary-key", ""},
		{"redms.wal.shop.public.orders", "table public.orders: INSERT: id[integer]:4 note[text]:'d' extra[integer]:9", `["id"]`, "primary-key", ""},
		{"redms.wal.shop.public.lines", "table public.lines: TRUNCATE: (no-flags)", `["line","order_id"]`, "primary-key", ""},
		{"redms.wal.shop.public.audit", "table public.audit: TRUNCATE: (no-flags)", `["at","what"]`, "replica-identity-full", ""},
	}
	// The TRUNCATE body names both tables: test_decoding prints "table public.lines, public.audit: TRUNCATE".
	exps[11].bodyPrefix = "table public.lines, public.audit: TRUNCATE: (no-flags)"
	exps[12].bodyPrefix = exps[11].bodyPrefix
	var lastLSN pglogrepl.LSN
	for i, e := range exps {
		m := msgs[i]
		if m.Subject != e.subject || !strings.HasPrefix(m.Data, e.bodyPrefix) {
			t.Errorf("message %d: %s %q, want %s %q…", i, m.Subject, m.Data, e.subject, e.bodyPrefix)
		}
		if got := m.Header.Get(walheader.Keys); got != e.keys {
			t.Errorf("message %d (%s): keys %s, want %s", i, m.Subject, got, e.keys)
		}
		if got := m.Header.Get(walheader.KeySource); got != e.source {
			t.Errorf("message %d (%s): key source %s, want %s", i, m.Subject, got, e.source)
		}
		if got := m.Header.Get(walheader.Leaf); got != e.leaf {
			t.Errorf("message %d (%s): leaf %q, want %q", i, m.Subject, got, e.leaf)
		}
		lsn, err := pglogrepl.ParseLSN(m.Header.Get(walheader.LSN))
		if err != nil || lsn < lastLSN {
			t.Errorf("message %d: lsn %q after %s (%v)", i, m.Header.Get(walheader.LSN), lastLSN, err)
		}
		lastLSN = lsn
		if m.Header.Get(walheader.Xid) == "" || m.Header.Get(walheader.CommitLSN) == "" {
			t.Errorf("message %d: no xid or commit lsn: %v", i, m.Header)
		}
		if _, err := time.Parse(time.RFC3339Nano, m.Header.Get(walheader.CommitTime)); err != nil {
			t.Errorf("message %d: commit time %q: %v", i, m.Header.Get(walheader.CommitTime), err)
		}
	}
	// The TRUNCATE's two messages share its LSN and position.
	if a, b := msgs[11].Header, msgs[12].Header; a.Get(walheader.LSN) != b.Get(walheader.LSN) ||
		a.Get(walheader.FirstPos) != b.Get(walheader.FirstPos) || a.Get(walheader.FirstPos) == "" {
		t.Errorf("truncate headers %v / %v", a, b)
	}
	// Confirmed position: the slot reaches the last transaction (the excluded
	// one after the TRUNCATE) and never passes the current WAL end.
	truncCommit, _ := pglogrepl.ParseLSN(msgs[12].Header.Get(walheader.CommitLSN))
	testenv.Eventually(t, 10*time.Second, "slot confirmed past the truncate", func() bool { return slotConfirmed(t, db, "capture_live") > truncCommit })
	metrics := httpGet(t, "http://"+env["REDMS_METRICS_ADDR"]+"/metrics")
	for _, w := range []string{
		`redms_capture_excluded_changes_total{table="public.secret"} 2`,
		`redms_capture_changes_published_total{table="public.orders"} 5`,
		`redms_capture_confirmed_lsn `, `redms_capture_slot_lag_bytes `, `redms_capture_inflight_messages 0`,
	} {
		if !strings.Contains(metrics, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	if got := httpGet(t, "http://"+env["REDMS_METRICS_ADDR"]+"/readyz"); got != "ready\n" {
		t.Errorf("readyz = %q", got)
	}

	// Stop; what was confirmed is exactly the end of the last transaction:
	// a restart re-sends nothing and skips nothing.
	if err := p.Stop(15 * time.Second); err != nil {
		t.Fatalf("capture exit: %v", err)
	}
	confirmed := slotConfirmed(t, db, "capture_live")
	exec1(t, db, `INSERT INTO orders VALUES (5, 'after restart', NULL)`)
	p2 := startCapture(t, env)
	waitStreamHolds(t, js, want+1, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	msgs = readChanges(t, js, "REDMS_WAL")
	if len(msgs) != want+1 || !strings.Contains(msgs[want].Data, "'after restart'") {
		t.Fatalf("after restart the stream holds %d messages (last %q), want %d", len(msgs), msgs[len(msgs)-1].Data, want+1)
	}
	// Only the new change was published again: nothing before the confirmed
	// position was re-read.
	metrics = httpGet(t, "http://"+env["REDMS_METRICS_ADDR"]+"/metrics")
	if !strings.Contains(metrics, `redms_capture_changes_published_total{table="public.orders"} 1`) ||
		strings.Count(metrics, "redms_capture_changes_published_total{") != 1 {
		t.Errorf("after restart capture published more than the one new change:\n%s", grepLines(metrics, "changes_published"))
	}
	lsn, _ := pglogrepl.ParseLSN(msgs[want].Header.Get(walheader.LSN))
	if lsn < confirmed {
		t.Errorf("new change at %s is before the confirmed %s", lsn, confirmed)
	}
	if err := p2.Stop(15 * time.Second); err != nil {
		t.Fatalf("capture exit: %v", err)
	}
}

// lsnOf is a change's Redms-Lsn.
func lsnOf(t *testing.T, m streamMsg) pglogrepl.LSN {
	t.Helper()
	l, err := pglogrepl.ParseLSN(m.Header.Get(walheader.LSN))
	if err != nil {
		t.Fatalf("%s %.40q: %s: %v", m.Subject, m.Data, walheader.LSN, err)
	}
	return l
}
