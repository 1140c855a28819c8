package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/park"
)

// Tests of issue 9 (correctness under faults), loader side: messages with
// source positions (docs/DESIGN.md §2.3) published by hand in the orders a
// faulty capture or stream can produce.

// posMsg is one hand-built WAL message with a source position.
type posMsg struct {
	table     subject.Table
	body      string
	pos       walheader.Pos
	prev      walheader.Pos // zero: no Redms-Prev-Pos
	keys      []string      // nil: ["id"], primary-key
	keySource string
	part      int // with parts: Redms-Part part/parts
	parts     int
	missing   map[string]*string
	partition *walheader.Partition
	leaf      string
	noMsgID   bool // publish a copy JetStream must not deduplicate
}

// at is position (base 0x1000000 + 0x100·txn, index i).
func at(txn, i uint64) walheader.Pos { return walheader.Pos{Base: 0x1000000 + 0x100*txn, Index: i} }

func (w *world) publishPos(t testing.TB, m posMsg) uint64 {
	t.Helper()
	ack, err := w.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject.Subject(m.table), Header: w.header(m), Data: []byte(m.body)})
	if err != nil {
		t.Fatalf("publish %s at %s: %v", m.table, m.pos, err)
	}
	return ack.Sequence
}

// header is m's message headers.
func (w *world) header(m posMsg) nats.Header {
	keys, source := m.keys, m.keySource
	if keys == nil {
		keys, source = []string{"id"}, walheader.KeySourcePrimaryKey
	}
	lsn := fmtLSN(m.pos.Base + 8*(m.pos.Index+1))
	meta := walheader.Meta{
		LSN: lsn, CommitLSN: fmtLSN(m.pos.Base + 0xF0), Xid: 900 + m.pos.Base%1000, CommitTime: time.Now().UTC(),
		Keys: keys, KeySource: source, Leaf: m.leaf,
		Pos: m.pos, PosLast: m.pos, Prev: m.prev, HasPrev: !m.prev.IsZero(),
		Part: m.part, Parts: m.parts, Missing: m.missing, Partition: m.partition,
	}
	h := meta.Header(m.table.DB)
	if m.noMsgID {
		h.Del(walheader.MsgID)
	}
	return h
}

// rowsJSON returns the warehouse rows of schema.table as JSON objects in
// key order; "" for a missing table.
func (w *world) rowsJSON(t testing.TB, schema, table string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, w.whURL)
	if err != nil {
		t.Fatalf("connect to warehouse: %v", err)
	}
	defer conn.Close(ctx)
	name := pgx.Identifier{schema, table}.Sanitize()
	rows, err := conn.Query(ctx, "SELECT row_to_json(t)::text FROM "+name+" t ORDER BY 1")
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return ""
		}
		t.Fatalf("read %s: %v", name, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return strings.Join(out, "\n")
}

// subjectBacklog is the number of t's messages in the stream.
func (w *world) subjectBacklog(tb testing.TB, t subject.Table) uint64 {
	tb.Helper()
	s, err := w.js.Stream(context.Background(), testStream)
	if err != nil {
		tb.Fatalf("read stream: %v", err)
	}
	subj := subject.Subject(t)
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subj))
	if err != nil {
		tb.Fatalf("read stream: %v", err)
	}
	return info.State.Subjects[subj]
}

func (w *world) parked(t testing.TB, tab subject.Table) (park.Record, bool) {
	t.Helper()
	parks, err := park.Open(context.Background(), w.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := parks.Get(context.Background(), subject.KVKey(tab))
	if err != nil {
		t.Fatal(err)
	}
	return rec, ok
}

func kv(id int, v string) string { return fmt.Sprintf(`{"id":%d,"v":"%s"}`, id, v) }

// The stream holds B (row 1 = v2) before A (row 1 = v1), A's position
// lower (a publish rejected and re-sent after B was stored): the source
// decides, so the target ends with v2.
func TestOrderBySourcePosition(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("ordered")
	w.publishPos(t, posMsg{table: tab, pos: at(1, 0), body: "table public.ordered: INSERT: id[integer]:1 v[text]:'v0'"})
	w.publishPos(t, posMsg{table: tab, pos: at(3, 0), prev: at(2, 0), body: "table public.ordered: UPDATE: id[integer]:1 v[text]:'v2'"})
	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 0), body: "table public.ordered: UPDATE: id[integer]:1 v[text]:'v1'"})
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "1s"})
	testenv.Eventually(t, 30*time.Second, "the stream to empty", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if got := w.rowsJSON(t, "public", "ordered"); got != kv(1, "v2") {
		t.Fatalf("target = %s, want %s (the change with the highest position)", got, kv(1, "v2"))
	}
}

// A stream recreated after windows were applied restarts its sequences:
// the new changes still apply.
func TestRecreatedStreamStillApplies(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("recreated")
	body := func(id int, v string) string {
		return fmt.Sprintf("table public.recreated: INSERT: id[integer]:%d v[text]:'%s'", id, v)
	}
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms", "REDMS_LEASE_TTL": "3s"})
	for i := range 4 {
		var prev walheader.Pos
		if i > 0 {
			prev = at(uint64(i), 0)
		}
		w.publishPos(t, posMsg{table: tab, pos: at(uint64(i+1), 0), prev: prev, body: body(i+1, "a")})
	}
	want := strings.Join([]string{kv(1, "a"), kv(2, "a"), kv(3, "a"), kv(4, "a")}, "\n")
	testenv.Eventually(t, 30*time.Second, "the first changes applied", func() bool { return w.rowsJSON(t, "public", "recreated") == want })

	ctx := context.Background()
	if err := w.js.DeleteStream(ctx, testStream); err != nil {
		t.Fatal(err)
	}
	if _, err := w.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: testStream, Subjects: []string{subject.Wildcard}, Retention: jetstream.WorkQueuePolicy,
		Storage: jetstream.FileStorage, Discard: jetstream.DiscardNew, Duplicates: 2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	w.publishPos(t, posMsg{table: tab, pos: at(5, 0), prev: at(4, 0), body: body(5, "b")})
	w.publishPos(t, posMsg{table: tab, pos: at(6, 0), prev: at(5, 0), body: body(6, "b")})
	want += "\n" + kv(5, "b") + "\n" + kv(6, "b")
	testenv.Eventually(t, 30*time.Second, "the changes published after the stream was recreated", func() bool {
		return w.rowsJSON(t, "public", "recreated") == want
	})
}

// Two rows reordered in the stream: B (row 1) stored before A (row 2),
// A's position lower and B's prev A's position. B waits for A (never a
// target state the source did not have), then both land.
func TestReorderedRowsWaitForTheirPrev(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("chain")
	p := w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms"})
	w.publishPos(t, posMsg{table: tab, pos: at(1, 0), body: "table public.chain: INSERT: id[integer]:1 v[text]:'a'"})
	testenv.Eventually(t, 30*time.Second, "the first change applied", func() bool { return w.rowsJSON(t, "public", "chain") == kv(1, "a") })
	w.publishPos(t, posMsg{table: tab, pos: at(3, 0), prev: at(2, 0), body: "table public.chain: UPDATE: id[integer]:1 v[text]:'b'"})
	// Let B's window close before A arrives.
	bLSN := `"lsn":"` + fmtLSN(at(3, 0).Base+8)
	testenv.Eventually(t, 30*time.Second, "B's window to close", func() bool { return strings.Contains(p.Log.String(), bLSN) })
	time.Sleep(time.Second) // a window or two more
	if got := w.rowsJSON(t, "public", "chain"); got != kv(1, "a") {
		t.Fatalf("target before A arrived = %s, want B held back (%s)", got, kv(1, "a"))
	}
	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 0), body: "table public.chain: INSERT: id[integer]:2 v[text]:'a'"})
	want := kv(1, "b") + "\n" + kv(2, "a")
	testenv.Eventually(t, 30*time.Second, "both changes applied", func() bool { return w.rowsJSON(t, "public", "chain") == want })
	testenv.Eventually(t, 30*time.Second, "the stream to empty", func() bool { return w.subjectBacklog(t, tab) == 0 })
}

// REDMS_TARGET_SCHEMA folds public.orders and sales.orders into dw.orders:
// the second source parks, naming both, instead of sharing one applied
// position with the first.
func TestTwoSourcesOneTargetPark(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	pub := subject.Table{DB: "shop", Schema: "public", Name: "orders"}
	sales := subject.Table{DB: "shop", Schema: "sales", Name: "orders"}
	w.publishPos(t, posMsg{table: pub, pos: at(1, 0), body: "table public.orders: INSERT: id[integer]:1 v[text]:'public'"})
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms", "REDMS_TARGET_SCHEMA": "dw"})
	testenv.Eventually(t, 30*time.Second, "public.orders applied", func() bool { return w.rowsJSON(t, "dw", "orders") == kv(1, "public") })
	w.publishPos(t, posMsg{table: sales, pos: at(2, 0), body: "table sales.orders: INSERT: id[integer]:2 v[text]:'sales'"})
	var rec park.Record
	testenv.Eventually(t, 20*time.Second, "sales.orders parked", func() bool {
		var ok bool
		rec, ok = w.parked(t, sales)
		return ok
	})
	for _, name := range []string{"public.orders", "sales.orders", `"dw"."orders"`} {
		if !strings.Contains(rec.Reason, name) {
			t.Errorf("park reason %q does not name %s", rec.Reason, name)
		}
	}
	if got := w.rowsJSON(t, "dw", "orders"); got != kv(1, "public") {
		t.Errorf("target = %s, want only public.orders' row", got)
	}
	if n := w.subjectBacklog(t, sales); n != 1 {
		t.Errorf("sales.orders messages in the stream = %d, want 1", n)
	}
}

// A record split into parts (Redms-Part k/n, one position) arrives whole:
// a 2.4 MB row in 200 KiB parts, among other tables' traffic.
func TestSplitRecordArrivesWhole(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("wide")
	var b strings.Builder
	b.WriteString("table public.wide: INSERT: id[integer]:1")
	var want []string
	for i := range 40 {
		v := strings.Repeat(string(rune('a'+i%26)), 30000) + strings.Repeat("é", 15000) // 60000 bytes
		fmt.Fprintf(&b, " c%02d[text]:'%s'", i, v)
		want = append(want, v)
	}
	body := b.String()
	const partSize = 200 << 10
	n := (len(body) + partSize - 1) / partSize
	w.publish(t, "items", change{"INSERT", 1, "before"})
	for k := 1; k <= n; k++ {
		part := body[(k-1)*partSize : min(k*partSize, len(body))]
		w.publishPos(t, posMsg{table: tab, pos: at(1, 0), part: k, parts: n, body: part})
		if k == n/2 {
			w.publish(t, "items", change{"INSERT", 2, "during"})
		}
	}
	w.publish(t, "items", change{"INSERT", 3, "after"})
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "500ms"})
	testenv.Eventually(t, 30*time.Second, "items applied", func() bool { return w.complete(t, "items") })
	testenv.Eventually(t, 30*time.Second, "the split row applied", func() bool { return w.subjectBacklog(t, tab) == 0 && w.rowsJSON(t, "public", "wide") != "" })
	var got map[string]any
	if err := json.Unmarshal([]byte(w.rowsJSON(t, "public", "wide")), &got); err != nil {
		t.Fatal(err)
	}
	for i, v := range want {
		if c := fmt.Sprintf("c%02d", i); got[c] != v {
			s, _ := got[c].(string)
			t.Fatalf("column %s: %d bytes, want the %d bytes sent", c, len(s), len(v))
		}
	}
}

// An old integer change replayed after the column became text (a capture
// restart re-sent it with a new message id) is a replay: it never retypes
// the target back, and the table does not park.
func TestReplayNeverDrivesDDL(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("retyped")
	old := posMsg{table: tab, pos: at(1, 0), body: "table public.retyped: INSERT: id[integer]:1 c[integer]:5"}
	w.publishPos(t, old)
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms"})
	testenv.Eventually(t, 30*time.Second, "the integer change applied", func() bool { return w.rowsJSON(t, "public", "retyped") == `{"id":1,"c":5}` })
	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 0), body: "table public.retyped: UPDATE: id[integer]:1 c[text]:'abc'"})
	testenv.Eventually(t, 30*time.Second, "the text change applied", func() bool { return w.rowsJSON(t, "public", "retyped") == `{"id":1,"c":"abc"}` })
	old.noMsgID = true
	w.publishPos(t, old)
	testenv.Eventually(t, 30*time.Second, "the replay removed from the stream", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if rec, ok := w.parked(t, tab); ok {
		t.Fatalf("table parked by a replay: %s", rec.Reason)
	}
	if got := w.rowsJSON(t, "public", "retyped"); got != `{"id":1,"c":"abc"}` {
		t.Fatalf("target after the replay = %s", got)
	}
}

// A column added with a constant default (ALTER TABLE … ADD COLUMN flag
// text DEFAULT 'yes') fills the source's existing rows without WAL; the
// message that first carries the column says so in Redms-Missing, and the
// target's existing rows get the value too.
func TestAddColumnDefaultFillsExistingRows(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("flags")
	w.publishPos(t, posMsg{table: tab, pos: at(1, 0), body: "table public.flags: INSERT: id[integer]:1 v[text]:'a'"})
	w.publishPos(t, posMsg{table: tab, pos: at(1, 1), prev: at(1, 0), body: "table public.flags: INSERT: id[integer]:2 v[text]:'b'"})
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms"})
	testenv.Eventually(t, 30*time.Second, "the first rows applied", func() bool { return w.rowsJSON(t, "public", "flags") == kv(1, "a")+"\n"+kv(2, "b") })
	yes, n := "yes", "7"
	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 1), missing: map[string]*string{"flag": &yes, "n": &n},
		body: "table public.flags: INSERT: id[integer]:3 v[text]:'c' flag[text]:'no' n[integer]:8"})
	want := `{"id":1,"v":"a","flag":"yes","n":7}
{"id":2,"v":"b","flag":"yes","n":7}
{"id":3,"v":"c","flag":"no","n":8}`
	testenv.Eventually(t, 30*time.Second, "the new columns applied", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if got := w.rowsJSON(t, "public", "flags"); got != want {
		t.Fatalf("target =\n%s\nwant\n%s", got, want)
	}
}

// A table loaded before its primary key exists (pgbench -i, pg_restore)
// sends INSERTs without a key: they are applied as plain inserts. An
// UPDATE and a DELETE without key or old row cannot be applied: they are
// counted, and a snapshot of the table is requested in KV before their
// messages leave the stream. Once messages carry the key it is used.
func TestKeylessChanges(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("loaded")
	none := []string{}
	p := w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms"})
	w.publishPos(t, posMsg{table: tab, pos: at(1, 0), keys: none, keySource: walheader.KeySourceNone, body: "table public.loaded: INSERT: id[integer]:1 v[text]:'a'"})
	w.publishPos(t, posMsg{table: tab, pos: at(1, 1), prev: at(1, 0), keys: none, keySource: walheader.KeySourceNone, body: "table public.loaded: INSERT: id[integer]:2 v[text]:'b'"})
	w.publishPos(t, posMsg{table: tab, pos: at(1, 2), prev: at(1, 1), keys: none, keySource: walheader.KeySourceNone, body: "table public.loaded: INSERT: id[integer]:3 v[text]:'c'"})
	testenv.Eventually(t, 30*time.Second, "the keyless inserts removed from the stream", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if got, want := w.rowsJSON(t, "public", "loaded"), kv(1, "a")+"\n"+kv(2, "b")+"\n"+kv(3, "c"); got != want {
		t.Fatalf("target after keyless inserts =\n%s\nwant\n%s", got, want)
	}

	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 2), keys: none, keySource: walheader.KeySourceNone, body: "table public.loaded: UPDATE: id[integer]:2 v[text]:'b2'"})
	w.publishPos(t, posMsg{table: tab, pos: at(3, 0), prev: at(2, 0), keys: none, keySource: walheader.KeySourceNone, body: "table public.loaded: DELETE: (no-tuple-data)"})
	testenv.Eventually(t, 30*time.Second, "the unkeyed update and delete removed from the stream", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if v, _ := p.scrape(`redms_loader_unapplied_changes_total{reason="no-key",table="public.loaded"}`); v != 2 {
		t.Errorf("unapplied changes = %v, want 2", v)
	}
	kvs, err := w.js.KeyValue(context.Background(), "REDMS_SNAPSHOT_REQUESTS")
	if err != nil {
		t.Fatalf("snapshot request bucket: %v", err)
	}
	e, err := kvs.Get(context.Background(), subject.KVKey(tab))
	if err != nil {
		t.Fatalf("snapshot request of %s: %v", tab, err)
	}
	var req map[string]string
	if err := json.Unmarshal(e.Value(), &req); err != nil {
		t.Fatalf("snapshot request %s: %v", e.Value(), err)
	}
	if req["table"] != "public.loaded" || req["reason"] == "" || req["first_lsn"] == "" || req["last_lsn"] == "" || req["requested_by"] != "solo" || req["requested_at"] == "" {
		t.Errorf("snapshot request = %s", e.Value())
	}

	// ALTER TABLE loaded ADD PRIMARY KEY (id): from here on messages carry it.
	w.publishPos(t, posMsg{table: tab, pos: at(4, 0), prev: at(3, 0), body: "table public.loaded: UPDATE: id[integer]:1 v[text]:'a2'"})
	w.publishPos(t, posMsg{table: tab, pos: at(4, 1), prev: at(4, 0), body: "table public.loaded: DELETE: id[integer]:3"})
	w.publishPos(t, posMsg{table: tab, pos: at(4, 2), prev: at(4, 1), body: "table public.loaded: INSERT: id[integer]:4 v[text]:'d'"})
	want := kv(1, "a2") + "\n" + kv(2, "b") + "\n" + kv(4, "d")
	testenv.Eventually(t, 30*time.Second, "the keyed changes applied", func() bool { return w.rowsJSON(t, "public", "loaded") == want })
}

// A TRUNCATE of one leaf partition (a monthly retention job) travels on
// the root's subject with the leaf's bounds: only the root target's rows
// inside every level's bound go. A leaf no bound describes parks the table.
func TestTruncateOfOnePartition(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("events")
	rows := []string{
		"id[integer]:1 region[text]:'eu' at[date]:'2023-01-15'",
		"id[integer]:2 region[text]:'eu' at[date]:'2023-02-15'",
		"id[integer]:3 region[text]:'us' at[date]:'2023-01-20'",
		"id[integer]:4 region[text]:null at[date]:'2022-12-31'",
		"id[integer]:5 region[text]:'eu' at[date]:'2023-02-01'",
		"id[integer]:6 region[text]:'ap' at[date]:'2023-01-02'",
	}
	for i, r := range rows {
		var prev walheader.Pos
		if i > 0 {
			prev = at(1, uint64(i-1))
		}
		w.publishPos(t, posMsg{table: tab, pos: at(1, uint64(i)), prev: prev, leaf: "public.events_x", body: "table public.events_x: INSERT: " + r})
	}
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms"})
	ids := func() string {
		var out []string
		for _, line := range strings.Split(w.rowsJSON(t, "public", "events"), "\n") {
			var r struct{ ID int }
			if json.Unmarshal([]byte(line), &r) == nil {
				out = append(out, fmt.Sprint(r.ID))
			}
		}
		return strings.Join(out, ",")
	}
	testenv.Eventually(t, 30*time.Second, "the rows applied", func() bool { return ids() == "1,2,3,4,5,6" })

	// TRUNCATE events_eu_2023_01: region IN ('eu', NULL), at FROM (MINVALUE) TO ('2023-02-01').
	leaf := "public.events_eu_2023_01"
	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 5), leaf: leaf, body: "table " + leaf + ": TRUNCATE: (no-flags)",
		partition: &walheader.Partition{Leaf: leaf, Levels: []walheader.PartitionLevel{
			{Strategy: walheader.StrategyList, Columns: []string{"region"}, In: []walheader.Bound{{Kind: walheader.BoundValue, Value: "eu"}, {Kind: walheader.BoundNull}}},
			{Strategy: walheader.StrategyRange, Columns: []string{"at"}, From: []walheader.Bound{{Kind: walheader.BoundMinValue}}, To: []walheader.Bound{{Kind: walheader.BoundValue, Value: "2023-02-01"}}},
		}}})
	testenv.Eventually(t, 30*time.Second, "the truncate removed from the stream", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if got := ids(); got != "2,3,5,6" {
		t.Fatalf("rows after TRUNCATE of %s = %s, want 2,3,5,6 (only eu or NULL rows before February go)", leaf, got)
	}

	hash := "public.events_h0"
	w.publishPos(t, posMsg{table: tab, pos: at(3, 0), prev: at(2, 0), leaf: hash, body: "table " + hash + ": TRUNCATE: (no-flags)",
		partition: &walheader.Partition{Leaf: hash, Unbounded: "hash partition"}})
	var rec park.Record
	testenv.Eventually(t, 30*time.Second, "the table parked", func() bool {
		var ok bool
		rec, ok = w.parked(t, tab)
		return ok
	})
	for _, want := range []string{hash, "hash partition", "snapshot"} {
		if !strings.Contains(rec.Reason, want) {
			t.Errorf("park reason %q lacks %q", rec.Reason, want)
		}
	}
	if got := ids(); got != "2,3,5,6" {
		t.Fatalf("rows after the unbounded TRUNCATE = %s, want nothing deleted", got)
	}
}

// An owner paused (SIGSTOP) longer than the lease TTL: another replica
// takes its table over while the paused owner's pull request is still
// registered on the consumer, so the server hands the next messages to the
// paused process. Resumed (SIGCONT), the old owner keeps pulling for a
// moment. Nothing may be lost: every target equals what was published, row
// by row.
func TestPausedOwnerLosesNothing(t *testing.T) {
	for _, mode := range []string{"purge", "ack"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			pausedOwner(t, mode)
		})
	}
}

func pausedOwner(t *testing.T, ackMode string) {
	w := newWorld(t)
	tables := []string{"p1", "p2", "p3"}
	env := map[string]string{"REDMS_WINDOW_DURATION": "300ms", "REDMS_LEASE_TTL": "2s", "REDMS_PULL_BATCH": "20", "REDMS_ACK_WAIT": "30s", "REDMS_ACK_MODE": ackMode}
	procs := map[string]*loaderProc{"a": w.start(t, "a", env), "b": w.start(t, "b", env)}

	want := make([]map[int]string, len(tables))
	prev := make([]walheader.Pos, len(tables))
	n := 0
	publish := func(ctx context.Context, rounds int) {
		for r := 0; r < rounds && ctx.Err() == nil; r++ {
			n++
			for i, name := range tables {
				if want[i] == nil {
					want[i] = map[int]string{}
				}
				id, kind := n, "INSERT"
				if n%3 == 0 {
					id, kind = n/3, "UPDATE"
				}
				v := fmt.Sprintf("v%d", n)
				pos := at(uint64(n), uint64(i))
				m := posMsg{table: tableRef(name), pos: pos, prev: prev[i],
					body: fmt.Sprintf("table public.%s: %s: id[integer]:%d v[text]:'%s'", name, kind, id, v)}
				if _, err := w.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject.Subject(m.table), Header: w.header(m), Data: []byte(m.body)}); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
				prev[i] = pos
				want[i][id] = v
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	complete := func(what string) {
		for i, name := range tables {
			testenv.Eventually(t, 60*time.Second, name+" complete "+what, func() bool {
				return fmt.Sprint(w.target(t, name)) == fmt.Sprint(want[i]) && w.backlog(t, name) == 0
			})
		}
	}
	publish(context.Background(), 30)
	complete("before the pause")

	leases, err := w.js.KeyValue(context.Background(), "REDMS_LOADER_LEASES")
	if err != nil {
		t.Fatal(err)
	}
	owner := func(name string) string {
		e, err := leases.Get(context.Background(), subject.KVKey(tableRef(name)))
		if err != nil {
			return ""
		}
		return string(e.Value())
	}
	// p1 may be between owners still (handed to its top-ranked replica
	// once both run): wait until one holds it.
	var paused string
	testenv.Eventually(t, 30*time.Second, "a replica holding p1", func() bool {
		paused = owner("p1")
		return procs[paused] != nil
	})
	other := map[string]string{"a": "b", "b": "a"}[paused]
	p := procs[paused]
	// Paused while idle: its pull request for p1 stays on the server.
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the other replica to take p1 over", func() bool { return owner("p1") == other })
	ctx, stop := context.WithCancel(context.Background())
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		publish(ctx, 100000)
	}()
	time.Sleep(3 * time.Second)
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	stop()
	<-loaded
	complete("after the pause")
	gaps, _ := procs[other].scrape(`redms_loader_consumer_gaps_total{table="public.p1"}`)
	t.Logf("%s paused; %s saw its consumer deliver elsewhere %v times", paused, other, gaps)
}
