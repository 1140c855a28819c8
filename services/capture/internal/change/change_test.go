package change

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/batch"
	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/selection"
)

type countingResolver struct {
	calls      map[catalog.Name]int
	info       map[catalog.Name]catalog.Info
	partitions [][]catalog.Name
}

func (r *countingResolver) Resolve(_ context.Context, t catalog.Name) (catalog.Info, error) {
	r.calls[t]++
	if i, ok := r.info[t]; ok {
		return i, nil
	}
	return catalog.Info{Root: t, Keys: []string{"id"}, KeySource: catalog.SourcePrimaryKey}, nil
}

func (r *countingResolver) Partition(_ context.Context, tables []catalog.Name) (*walheader.Partition, error) {
	r.partitions = append(r.partitions, tables)
	return &walheader.Partition{Leaf: tables[0].String(), Unbounded: "test"}, nil
}

func newResolver() *countingResolver {
	return &countingResolver{calls: map[catalog.Name]int{}, info: map[catalog.Name]catalog.Info{}}
}

// rig is an assembler whose chunks go through a batcher of one change per
// message, so tests see the messages capture would publish.
type rig struct {
	*Assembler
	b *batch.Batcher
}

// out is what one chunk became.
type out struct {
	Messages []*nats.Msg
	Commit   uint64
	Chunk    batch.Chunk
}

func (r rig) messages(c batch.Chunk) out {
	r.b.Session(c.Session)
	if c.End {
		c.Txn.Commit(c.Commit, c.CommitTime)
	}
	o := out{Commit: c.Commit, Chunk: c}
	for i := range c.Changes {
		r.b.Add(&c.Changes[i], time.Time{})
	}
	for _, m := range r.b.Take() {
		o.Messages = append(o.Messages, m.Msg)
	}
	return o
}

// feed gives each line an LSN of 100 + its index (BEGIN and COMMIT too)
// and collects the yielded chunks as messages.
func feed(t *testing.T, a rig, lines ...string) []out {
	t.Helper()
	var res []out
	for i, l := range lines {
		rec, err := testdecoding.Parse([]byte(l))
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		c, ok, err := a.Record(context.Background(), &rec, []byte(l), pglogrepl.LSN(100+i))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			res = append(res, a.messages(c))
		}
	}
	return res
}

func newAssembler(r Resolver, cfg AssemblerConfig, tcfg TablesConfig) rig {
	tcfg.DB, tcfg.Resolver = "shop", r
	return rig{NewAssembler(NewTables(tcfg), cfg), batch.New(batch.Config{Records: 1, Bytes: 1})}
}

func hdr(b out, i int, name string) string { return b.Messages[i].Header.Get(name) }

func TestPositionsIDsAndPrev(t *testing.T) {
	a := newAssembler(newResolver(), AssemblerConfig{}, TablesConfig{})
	a.Start(0x50)
	out := feed(t, a, "BEGIN 7",
		"table public.t: INSERT: id[integer]:1",
		"table public.t: INSERT: id[integer]:2",
		"table public.t, public.u: TRUNCATE: (no-flags)",
		"COMMIT 7 (at 2024-01-02 03:04:05.123456+00)",
		"BEGIN 8",
		"table public.u: INSERT: id[integer]:3",
		"COMMIT 8")
	if len(out) != 2 || len(out[0].Messages) != 4 || out[0].Commit != 104 || out[1].Commit != 107 {
		t.Fatalf("batches %+v", out)
	}
	// Indexes count per subject: the TRUNCATE is t's third record and
	// u's first. Ids carry the subject.
	type exp struct{ subject, pos, prev string }
	exps := []exp{ // base: the end of the transaction's COMMIT
		{"t", "0/68:0", ""},
		{"t", "0/68:1", "0/68:0"},
		{"t", "0/68:2", "0/68:1"},
		{"u", "0/68:0", ""},
	}
	for i, e := range exps {
		m := out[0].Messages[i]
		subj := "redms.wal.shop.public." + e.subject
		if m.Subject != subj || hdr(out[0], i, walheader.MsgID) != subj+":"+e.pos ||
			hdr(out[0], i, walheader.FirstPos) != e.pos || hdr(out[0], i, walheader.PrevPos) != e.prev {
			t.Errorf("message %d: %s %v, want %+v", i, m.Subject, m.Header, e)
		}
		if hdr(out[0], i, walheader.Xid) != "7" || hdr(out[0], i, walheader.CommitLSN) != "0/68" ||
			hdr(out[0], i, walheader.CommitTime) != "2024-01-02T03:04:05.123456000Z" || hdr(out[0], i, walheader.LSN) != "0/"+[]string{"65", "66", "67", "67"}[i] {
			t.Errorf("message %d: headers %v", i, m.Header)
		}
	}
	if got := hdr(out[1], 0, walheader.FirstPos); got != "0/6B:0" || hdr(out[1], 0, walheader.PrevPos) != "0/68:0" {
		t.Errorf("second transaction: pos %s prev %s, want 0/6B:0 after u's 0/68:0", got, hdr(out[1], 0, walheader.PrevPos))
	}
	// A new session forgets the prev chain.
	a.Start(0x50)
	out = feed(t, a, "BEGIN 9", "table public.u: INSERT: id[integer]:4", "COMMIT 9")
	if hdr(out[0], 0, walheader.FirstPos) != "0/66:0" || hdr(out[0], 0, walheader.PrevPos) != "" {
		t.Errorf("after Start: %v", out[0].Messages[0].Header)
	}
	if _, ok := out[0].Messages[0].Header[walheader.Ordinal]; ok {
		t.Error("messages with positions still carry Redms-Ordinal")
	}
}

func TestColumnChangeLooksUpAgain(t *testing.T) {
	r := newResolver()
	a := newAssembler(r, AssemblerConfig{}, TablesConfig{})
	feed(t, a, "BEGIN 1",
		"table public.x: INSERT: id[integer]:1 a[text]:'x'",
		"table public.x: UPDATE: id[integer]:1 a[text]:'y'",
		"table public.x: DELETE: id[integer]:1",
		"table public.x: INSERT: id[integer]:2 a[text]:'x' b[integer]:1",
		"table public.x: INSERT: id[integer]:3 a[text]:'x' b[integer]:1",
		"COMMIT 1")
	if n := r.calls[catalog.Name{Schema: "public", Table: "x"}]; n != 2 {
		t.Errorf("%d catalog lookups, want 2 (first sight, new column b)", n)
	}
}

// A keyless table is looked up again at its first change of a transaction
// once RecheckKeyless passed, never within a transaction.
func TestKeylessLookedUpAgain(t *testing.T) {
	r := newResolver()
	x := catalog.Name{Schema: "public", Table: "x"}
	r.info[x] = catalog.Info{Root: x, Keys: []string{}, KeySource: catalog.SourceNone}
	now := time.Unix(1000, 0)
	a := newAssembler(r, AssemblerConfig{}, TablesConfig{RecheckKeyless: time.Second, Now: func() time.Time { return now }})
	txn := func(ids ...string) out {
		lines := []string{"BEGIN 1"}
		for _, id := range ids {
			lines = append(lines, "table public.x: INSERT: id[integer]:"+id)
		}
		return feed(t, a, append(lines, "COMMIT 1")...)[0]
	}
	txn("1")
	now = now.Add(500 * time.Millisecond)
	txn("2")
	if r.calls[x] != 1 {
		t.Fatalf("%d lookups within the recheck interval, want 1", r.calls[x])
	}
	r.info[x] = catalog.Info{Root: x, Keys: []string{"id"}, KeySource: catalog.SourcePrimaryKey}
	now = now.Add(600 * time.Millisecond)
	b := txn("3", "4")
	if r.calls[x] != 2 || hdr(b, 0, walheader.Keys) != `["id"]` || hdr(b, 1, walheader.Keys) != `["id"]` {
		t.Errorf("%d lookups, keys %s %s: want the key from the transaction's first change on", r.calls[x], hdr(b, 0, walheader.Keys), hdr(b, 1, walheader.Keys))
	}
	now = now.Add(time.Hour)
	txn("5")
	if r.calls[x] != 2 {
		t.Errorf("%d lookups of a table with a key, want no more", r.calls[x])
	}
}

func TestExcludedAndSpill(t *testing.T) {
	filter, _ := selection.NewFilter("", "public.secret")
	excluded := 0
	a := newAssembler(newResolver(), AssemblerConfig{MaxTxnChanges: 2, Metrics: Metrics{Excluded: func(table string) {
		if table != "public.secret" {
			t.Errorf("excluded label %q", table)
		}
		excluded++
	}}}, TablesConfig{Filter: filter})
	a.Start(1)
	out := feed(t, a, "BEGIN 1",
		"table public.secret: INSERT: id[integer]:1",
		"table public.t: INSERT: id[integer]:5",
		"table public.t: INSERT: id[integer]:6",
		"table public.t: INSERT: id[integer]:7",
		"COMMIT 1",
		"BEGIN 2",
		"table public.secret: INSERT: id[integer]:2",
		"COMMIT 2")
	if excluded != 2 {
		t.Errorf("%d excluded, want 2", excluded)
	}
	if len(out) != 3 {
		t.Fatalf("%d batches, want spill(2), commit(1), commit(0)", len(out))
	}
	if len(out[0].Messages) != 2 || out[0].Commit != 0 || hdr(out[0], 0, walheader.CommitLSN) != "" {
		t.Errorf("spilled batch %+v", out[0])
	}
	// Positions are known before the COMMIT: the base is one past the
	// session's start; an excluded table's changes count on its own
	// subject only.
	if hdr(out[0], 0, walheader.FirstPos) != "0/2:0" || hdr(out[0], 1, walheader.FirstPos) != "0/2:1" {
		t.Errorf("spilled positions %s %s, want 0/2:0 0/2:1", hdr(out[0], 0, walheader.FirstPos), hdr(out[0], 1, walheader.FirstPos))
	}
	if hdr(out[1], 0, walheader.FirstPos) != "0/2:2" {
		t.Errorf("the spilled transaction's last change at %s, want its base 0/2:2", hdr(out[1], 0, walheader.FirstPos))
	}
	if len(out[1].Messages) != 1 || out[1].Commit == 0 || hdr(out[1], 0, walheader.CommitLSN) == "" {
		t.Errorf("commit batch %+v", out[1])
	}
	if len(out[2].Messages) != 0 || out[2].Commit == 0 {
		t.Errorf("excluded-only transaction must still carry its commit: %+v", out[2])
	}
}

// Changes before any BEGIN (input cut mid-transaction) are not lost when
// the next BEGIN comes.
func TestChangesBeforeBegin(t *testing.T) {
	a := newAssembler(newResolver(), AssemblerConfig{Numbering: PerInput}, TablesConfig{})
	a.Start(0x1000)
	out := feed(t, a,
		"table public.t: INSERT: id[integer]:1",
		"table public.t: INSERT: id[integer]:2",
		"BEGIN 3",
		"table public.t: INSERT: id[integer]:3",
		"COMMIT 3",
		"BEGIN 4",
		"table public.t: INSERT: id[integer]:4")
	if b, ok := a.Flush(); ok {
		out = append(out, a.messages(b))
	}
	var pos []string
	for _, b := range out {
		for i := range b.Messages {
			pos = append(pos, hdr(b, i, walheader.FirstPos))
		}
	}
	if strings.Join(pos, " ") != "0/1000:1 0/1000:2 0/1000:3 0/1000:4" {
		t.Errorf("positions %v, want every change numbered from 1 on the epoch", pos)
	}
	if len(out) != 3 || out[0].Commit != 0 || out[1].Commit == 0 || out[2].Commit != 0 {
		t.Errorf("batches %+v: want the cut start, the transaction, the unfinished end", out)
	}
}

// The tables of one TRUNCATE that share a subject travel as one message
// with the Partition the resolver gives for all of them.
func TestTruncateOfPartitions(t *testing.T) {
	r := newResolver()
	root := catalog.Name{Schema: "public", Table: "ev"}
	for _, leaf := range []string{"ev_a", "ev_b"} {
		n := catalog.Name{Schema: "public", Table: leaf}
		r.info[n] = catalog.Info{Root: root, Keys: []string{"id"}, KeySource: catalog.SourcePrimaryKey}
	}
	suffix, _ := selection.NewSuffix(`_\d{4}$`)
	a := newAssembler(r, AssemblerConfig{}, TablesConfig{Suffix: suffix})
	a.Start(1)
	out := feed(t, a, "BEGIN 1",
		"table public.ev_a, public.plain, public.ev_b, public.logs_2024: TRUNCATE: (no-flags)",
		"table public.ev_a: TRUNCATE: (no-flags)",
		"COMMIT 1")
	b := out[0]
	if len(b.Messages) != 4 {
		t.Fatalf("%d messages, want ev, plain, logs, then ev", len(b.Messages))
	}
	for i, want := range []string{"ev", "plain", "logs", "ev"} {
		if b.Messages[i].Subject != "redms.wal.shop.public."+want {
			t.Errorf("message %d on %s, want %s", i, b.Messages[i].Subject, want)
		}
	}
	if len(r.partitions) != 2 || len(r.partitions[0]) != 2 || len(r.partitions[1]) != 1 {
		t.Errorf("resolver asked for %v, want [ev_a ev_b] then [ev_a]", r.partitions)
	}
	if hdr(b, 0, walheader.Leaf) != "" || hdr(b, 3, walheader.Leaf) != "public.ev_a" || hdr(b, 0, walheader.PartitionBounds) == "" {
		t.Errorf("headers %v / %v", b.Messages[0].Header, b.Messages[3].Header)
	}
	if hdr(b, 1, walheader.PartitionBounds) != "" {
		t.Errorf("a plain table's TRUNCATE has %s", hdr(b, 1, walheader.PartitionBounds))
	}
	if p := hdr(b, 2, walheader.PartitionBounds); !strings.Contains(p, "REDMS_PARTITION_SUFFIX_REGEXP") {
		t.Errorf("a suffix-folded table's TRUNCATE has %s %q", walheader.PartitionBounds, p)
	}
	// Each subject's message at its subject's next index.
	for i, want := range []string{"0/67:0", "0/67:0", "0/67:0", "0/67:1"} { // the COMMIT's end
		if got := hdr(b, i, walheader.FirstPos); got != want || hdr(b, i, walheader.MsgID) != b.Messages[i].Subject+":"+want {
			t.Errorf("message %d: position %s id %s, want %s", i, got, hdr(b, i, walheader.MsgID), want)
		}
	}
}

func TestTableOfParseError(t *testing.T) {
	_, err := testdecoding.Parse([]byte(`table "My Schema"."a.b": INSERT: id[integer]:'unterminated`))
	if err == nil {
		t.Fatal("bad record parsed")
	}
	got, ok := TableOfParseError(err)
	if !ok || got != (testdecoding.Table{Schema: "My Schema", Name: "a.b"}) {
		t.Errorf("TableOfParseError = %+v, %v", got, ok)
	}
	_, err = testdecoding.Parse([]byte("garbage"))
	if _, ok := TableOfParseError(err); ok {
		t.Error("a table from garbage")
	}
}

// A session reads the same WAL from wherever the slot's confirmed position
// is (a keepalive may have moved it past the last COMMIT; a Postgres
// restart may have moved it back): the positions must not depend on it.
func TestPositionsDependOnTheWALAlone(t *testing.T) {
	wal := []string{"BEGIN 5",
		"table public.t: INSERT: id[integer]:1",
		"table public.t: UPDATE: id[integer]:1",
		"COMMIT 5"}
	var got [][]string
	for _, start := range []uint64{0x40, 0x60} {
		a := newAssembler(newResolver(), AssemblerConfig{}, TablesConfig{})
		a.Start(start)
		var pos []string
		for _, o := range feed(t, a, wal...) {
			for i := range o.Messages {
				pos = append(pos, hdr(o, i, walheader.FirstPos))
			}
		}
		got = append(got, pos)
	}
	if strings.Join(got[0], " ") != strings.Join(got[1], " ") {
		t.Fatalf("the same transaction numbered %v by a session started at 0/40 and %v by one started at 0/60", got[0], got[1])
	}
}

// memSpills keeps spilled bases in memory (slotrecord.Spills keeps them in
// KV).
type memSpills map[uint32]uint64

func (m memSpills) Base(xid uint32) (uint64, bool) { b, ok := m[xid]; return b, ok }
func (m memSpills) Spill(_ context.Context, xid uint32, base uint64) error {
	m[xid] = base
	return nil
}

// A transaction larger than the buffer is published before its COMMIT: a
// session that reads it again, started elsewhere, gives it the base the
// first one published it with.
func TestSpilledBaseKeptAcrossSessions(t *testing.T) {
	spills := memSpills{}
	wal := []string{"BEGIN 9",
		"table public.t: INSERT: id[integer]:1",
		"table public.t: INSERT: id[integer]:2",
		"table public.t: INSERT: id[integer]:3",
		"COMMIT 9"}
	var got [][]string
	for i, start := range []uint64{0x10, 0x80} {
		a := newAssembler(newResolver(), AssemblerConfig{MaxTxnChanges: 2, Spills: spills}, TablesConfig{})
		a.Start(start)
		lines := wal
		if i == 0 {
			lines = wal[:3] // the first session dies after the spill
		}
		var pos []string
		for _, o := range feed(t, a, lines...) {
			for i := range o.Messages {
				pos = append(pos, hdr(o, i, walheader.FirstPos))
			}
		}
		got = append(got, pos)
	}
	if len(got[0]) != 2 || len(got[1]) != 3 || got[0][0] != got[1][0] || got[0][1] != got[1][1] || got[1][2] != "0/11:2" {
		t.Fatalf("spilled positions %v in the first session, %v when read again from 0/80; want 0/11:0 0/11:1 in both, then 0/11:2", got[0], got[1])
	}
}
