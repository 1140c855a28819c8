package main

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
)

// Tests of issue 11, loader side: messages that are batches of changes
// (docs/DESIGN.md §3, docs/CONTRACTS.md "Redms-Lens"), and streams written by
// the capture before batches.

// rec is one change of a hand-built batch.
type rec struct {
	pos  walheader.Pos
	body string
}

// batchMsg is one hand-built batch: recs in position order, each run of
// one base a transaction.
type batchMsg struct {
	table subject.Table
	recs  []rec
	prev  walheader.Pos // zero: no Redms-Prev-Pos
}

// publishBatch publishes m with the headers capture gives a batch.
func (w *world) publishBatch(t testing.TB, m batchMsg) uint64 {
	t.Helper()
	meta := walheader.Meta{
		Keys: []string{"id"}, KeySource: walheader.KeySourcePrimaryKey,
		Pos: m.recs[0].pos, PosLast: m.recs[len(m.recs)-1].pos, Prev: m.prev, HasPrev: !m.prev.IsZero(),
	}
	var bodies [][]byte
	now := time.Now().UTC()
	for _, r := range m.recs {
		bodies = append(bodies, []byte(r.body))
		meta.Lens = append(meta.Lens, len(r.body))
		meta.LSNs = append(meta.LSNs, r.pos.Base+8*(r.pos.Index+1))
		if n := len(meta.Runs); n > 0 && meta.Runs[n-1].Base == r.pos.Base {
			meta.Runs[n-1].Count++
			continue
		}
		meta.Runs = append(meta.Runs, walheader.Run{Base: r.pos.Base, First: r.pos.Index, Count: 1,
			Xid: 900 + r.pos.Base%1000, CommitLSN: fmtLSN(r.pos.Base + 0xF0), CommitTime: now})
	}
	last := meta.Runs[len(meta.Runs)-1]
	meta.LSN = fmtLSN(meta.LSNs[0])
	meta.CommitLSN, meta.Xid, meta.CommitTime = last.CommitLSN, last.Xid, last.CommitTime
	if len(m.recs) == 1 { // a message of one change has no batch headers
		meta.Lens, meta.Runs, meta.LSNs = nil, nil, nil
	}
	ack, err := w.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject.Subject(m.table), Header: meta.Header(m.table.DB), Data: walheader.JoinBody(nil, bodies)})
	if err != nil {
		t.Fatalf("publish batch %s at %s: %v", m.table, m.recs[0].pos, err)
	}
	return ack.Sequence
}

func ins(table string, id int, v string) string {
	return "table public." + table + ": INSERT: id[integer]:" + strconv.Itoa(id) + " v[text]:'" + v + "'"
}

func upd(table string, id int, v string) string {
	return "table public." + table + ": UPDATE: id[integer]:" + strconv.Itoa(id) + " v[text]:'" + v + "'"
}

func del(table string, id int) string {
	return "table public." + table + ": DELETE: id[integer]:" + strconv.Itoa(id)
}

// Every change of a batch is applied, in position order across batches and
// transactions, and each rule applies per change: a batch whose prev has
// not arrived is held whole until it does, a batch re-cut after a restart
// (its first changes applied before) applies only its new ones, and a
// window of fewer changes than a batch holds still takes the batch whole.
func TestBatchesApplyEveryChange(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("batched")
	const n = "batched"
	// Batch A: two transactions (1: rows 1-3; 2: update 2, delete 3).
	w.publishBatch(t, batchMsg{table: tab, recs: []rec{
		{at(1, 0), ins(n, 1, "a")}, {at(1, 1), ins(n, 2, "a")}, {at(1, 2), ins(n, 3, "a")},
		{at(2, 0), upd(n, 2, "b")}, {at(2, 1), del(n, 3)},
	}})
	// Batch C arrives before B, whose last change is its prev: held.
	w.publishBatch(t, batchMsg{table: tab, prev: at(3, 1), recs: []rec{
		{at(4, 0), upd(n, 1, "c")}, {at(4, 1), ins(n, 5, "c")},
	}})
	p := w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms", "REDMS_WINDOW_RECORDS": "2"})
	want := kv(1, "a") + "\n" + kv(2, "b")
	testenv.Eventually(t, 30*time.Second, "batch A applied", func() bool { return w.rowsJSON(t, "public", n) == want })
	time.Sleep(time.Second) // windows close while C waits for B
	if got := w.rowsJSON(t, "public", n); got != want {
		t.Fatalf("target while C waits for B = %s, want %s", got, want)
	}
	if !strings.Contains(p.Log.String(), "changes held back") {
		t.Errorf("the loader did not log that it holds C back:\n%s", p.Log.String())
	}
	// B: one change of transaction 3 and the first of a transaction 3
	// continued — its prev is A's last change.
	w.publishBatch(t, batchMsg{table: tab, prev: at(2, 1), recs: []rec{
		{at(3, 0), ins(n, 4, "b")}, {at(3, 1), upd(n, 2, "bb")},
	}})
	want = kv(1, "c") + "\n" + kv(2, "bb") + "\n" + kv(4, "b") + "\n" + kv(5, "c")
	testenv.Eventually(t, 30*time.Second, "B and C applied", func() bool { return w.rowsJSON(t, "public", n) == want })
	// A restart of capture re-cut the tail: D repeats C's changes (applied)
	// and adds one. Only the new one changes the target.
	w.publishBatch(t, batchMsg{table: tab, recs: []rec{
		{at(4, 0), upd(n, 1, "replayed")}, {at(4, 1), ins(n, 5, "replayed")}, {at(5, 0), ins(n, 6, "d")},
	}})
	want += "\n" + kv(6, "d")
	testenv.Eventually(t, 30*time.Second, "D's new change applied", func() bool { return w.rowsJSON(t, "public", n) == want })
	testenv.Eventually(t, 30*time.Second, "the stream to empty", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if got := w.rowsJSON(t, "public", n); got != want {
		t.Fatalf("target = %s, want %s", got, want)
	}
	if v, ok := p.scrape(`redms_loader_changes_applied_total{table="public.batched"}`); !ok || v != 10 {
		t.Errorf("redms_loader_changes_applied_total = %v (found %v), want 10: every change counts, replays do not", v, ok)
	}
}

// A stream written by the capture before batches — messages without
// positions, then messages of one change with positions — followed by
// batches: an operator replaced the binaries with a backlog in the stream.
// The new loader applies all of it in order.
func TestUpgradeFromOneChangePerMessage(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	tab := tableRef("upgraded")
	const n = "upgraded"
	// The capture before positions: Redms-Lsn and Redms-Ordinal only.
	w.publishRaw(t, n, ins(n, 1, "legacy"), ins(n, 2, "legacy"), ins(n, 3, "legacy"))
	// The capture before batches: one change per message, with positions.
	w.publishPos(t, posMsg{table: tab, pos: at(1, 0), body: upd(n, 1, "one")})
	w.publishPos(t, posMsg{table: tab, pos: at(1, 1), prev: at(1, 0), body: del(n, 2)})
	w.publishPos(t, posMsg{table: tab, pos: at(2, 0), prev: at(1, 1), body: ins(n, 4, "one")})
	// The new capture, a new session: batches.
	w.publishBatch(t, batchMsg{table: tab, recs: []rec{
		{at(3, 0), upd(n, 3, "batch")}, {at(3, 1), upd(n, 4, "batch")}, {at(4, 0), ins(n, 5, "batch")},
	}})
	w.publishBatch(t, batchMsg{table: tab, prev: at(4, 0), recs: []rec{
		{at(5, 0), del(n, 1)}, {at(5, 1), ins(n, 6, "batch")},
	}})
	w.start(t, "solo", map[string]string{"REDMS_WINDOW_DURATION": "300ms"})
	want := strings.Join([]string{kv(3, "batch"), kv(4, "batch"), kv(5, "batch"), kv(6, "batch")}, "\n")
	testenv.Eventually(t, 30*time.Second, "the stream to empty", func() bool { return w.subjectBacklog(t, tab) == 0 })
	if got := w.rowsJSON(t, "public", n); got != want {
		t.Fatalf("target = %s, want %s", got, want)
	}
}
