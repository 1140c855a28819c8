package apply

import (
	"context"
	"fmt"
	"testing"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

func key(vals ...string) walheader.Key {
	k := make(walheader.Key, len(vals))
	for i := range vals {
		k[i] = &vals[i]
	}
	return k
}

// snapWindow is a snapshot chunk as capture publishes it with one record a
// message: the watermark record (part 1, the range after the last row),
// then each row as a part of its own over (previous row, row].
func (e *env) snapWindow(table string, id string, chunk int, from, to walheader.Key, keep []walheader.Key, rows []string, rowKeys []walheader.Key) Window {
	w := Window{Table: subject.Table{DB: "shop", Schema: "public", Name: table}}
	e.seq++
	base := 0x100000 + 0x100*e.seq
	n := 1 + len(rows)
	last := from
	if len(rowKeys) > 0 {
		last = rowKeys[len(rowKeys)-1]
	}
	texts := append([]string{`message: transactional: 0 prefix: redms-snapshot, sz: 2 content:{}`}, rows...)
	for i, text := range texts {
		h := &walheader.Snapshot{ID: id, Chunk: chunk, Part: i + 1, Parts: n, Columns: []string{"id"}, Keep: keep}
		if i == 0 {
			h.From, h.To = last, to
		} else {
			h.From, h.To = from, rowKeys[i-1]
			from = rowKeys[i-1]
		}
		pos := walheader.Pos{Base: base, Index: uint64(i)}
		meta := e.meta(pk(text))
		meta.Pos, meta.PosLast, meta.Snapshot = pos, pos, h
		meta.Prev, meta.HasPrev = e.last[table], !e.last[table].IsZero()
		e.last[table] = pos
		w.Msgs = append(w.Msgs, NewMsg(e.seq, meta, []byte(text)))
	}
	return w
}

// snapBatchWindow is a snapshot chunk as capture publishes it in batches:
// the watermark record (part 1, the range after the last row), then one
// message (part 2) holding every row, over (from, last row].
func (e *env) snapBatchWindow(table string, id string, chunk int, from, to walheader.Key, keep []walheader.Key, rows []string, rowKeys []walheader.Key) Window {
	w := Window{Table: subject.Table{DB: "shop", Schema: "public", Name: table}}
	e.seq++
	base := 0x100000 + 0x100*e.seq
	last := rowKeys[len(rowKeys)-1]
	mark := `message: transactional: 0 prefix: redms-snapshot, sz: 2 content:{}`
	meta := e.meta(pk(mark))
	pos := walheader.Pos{Base: base}
	meta.Pos, meta.PosLast = pos, pos
	meta.Snapshot = &walheader.Snapshot{ID: id, Chunk: chunk, Part: 1, Parts: 2, Columns: []string{"id"}, Keep: keep, From: last, To: to}
	meta.Prev, meta.HasPrev = e.last[table], !e.last[table].IsZero()
	w.Msgs = append(w.Msgs, NewMsg(e.seq, meta, []byte(mark)))

	e.seq++
	meta = e.meta(pk(rows[0]))
	meta.Pos, meta.PosLast = walheader.Pos{Base: base, Index: 1}, walheader.Pos{Base: base, Index: uint64(len(rows))}
	meta.Prev, meta.HasPrev = pos, true
	meta.Snapshot = &walheader.Snapshot{ID: id, Chunk: chunk, Part: 2, Parts: 2, Columns: []string{"id"}, Keep: keep, From: from, To: last}
	recs := make([][]byte, len(rows))
	for i, r := range rows {
		recs[i] = []byte(r)
		meta.Lens = append(meta.Lens, len(r))
		meta.LSNs = append(meta.LSNs, uint64(0x1000+e.seq))
	}
	meta.Runs = []walheader.Run{{Base: base, First: 1, Count: len(rows), CommitTime: meta.CommitTime}}
	e.last[table] = meta.PosLast
	w.Msgs = AppendChanges(w.Msgs, e.seq, meta, walheader.JoinBody(nil, recs))
	return w
}

func TestSnapshotRangeReplace(t *testing.T) {
	for _, batched := range []bool{false, true} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) { testSnapshotRangeReplace(t, batched) })
	}
}

func testSnapshotRangeReplace(t *testing.T, batched bool) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool := testenv.Pool(t, pg.CreateDatabase(t, "wh"))
	e := newEnv(t, warehouse.Postgres, pool, pool, s3srv)
	ins := func(id int, note string) rec {
		return pk(fmt.Sprintf(`table public.snap: INSERT: id[integer]:%d note[text]:'%s'`, id, note))
	}
	e.apply(e.window("snap", ins(1, "a"), ins(2, "b"), ins(3, "c"), ins(4, "d"), ins(6, "f"), ins(10, "x"), ins(20, "y")))
	// Wrong rows: 2 changed, 10 extra, 5 missing.
	if _, err := pool.Exec(context.Background(), `UPDATE public.snap SET note = 'wrong' WHERE id = 2`); err != nil {
		t.Fatal(err)
	}
	// The source holds 1 2 3 5 6(kept: it changed while read) 7 and 20
	// (outside the chunk's range).
	chunk := e.snapWindow
	if batched {
		chunk = e.snapBatchWindow
	}
	w := chunk("snap", "s1", 1, nil, key("15"), []walheader.Key{key("6")},
		[]string{
			`table public.snap: INSERT: id[integer]:1 note[text]:'a'`,
			`table public.snap: INSERT: id[integer]:2 note[text]:'b'`,
			`table public.snap: INSERT: id[integer]:3 note[text]:'c'`,
			`table public.snap: INSERT: id[integer]:5 note[text]:'e'`,
			`table public.snap: INSERT: id[integer]:7 note[text]:'g'`,
		}, []walheader.Key{key("1"), key("2"), key("3"), key("5"), key("7")})
	// The rows' parts as one batch-like run of records sharing a header:
	// still one range per part.
	for i := 2; i < len(w.Msgs); i++ {
		w.Msgs[i].Meta.Extra.Snapshot = w.Msgs[1].Meta.Extra.Snapshot
	}
	w.Msgs[1].Meta.Extra.Snapshot.To = key("7")
	// A live update of a chunk row in the same window: its key is spared
	// by the range delete, and the merge replaces the row (a plain insert
	// of it would collide with the row the delete kept).
	w.Msgs = append(w.Msgs, e.window("snap", pk(`table public.snap: UPDATE: id[integer]:3 note[text]:'c2'`)).Msgs...)
	res := e.apply(w)
	if !res.Applied || res.Rows["snapshot-range"] != 2 {
		t.Fatalf("result %+v, want 2 snapshot ranges (the watermark's and the rows' part)", res)
	}
	e.expect("snap", `{"id":1,"note":"a"}
{"id":2,"note":"b"}
{"id":20,"note":"y"}
{"id":3,"note":"c2"}
{"id":5,"note":"e"}
{"id":6,"note":"f"}
{"id":7,"note":"g"}`)
}

// snapBatch is one snapshot part of several records as capture publishes
// it: one batch (Redms-Lens) carrying h, the records at consecutive
// positions of one base.
func (e *env) snapBatch(w *Window, h *walheader.Snapshot, r rec, texts ...string) {
	e.seq++
	base := uint64(0x100000 + 0x100*e.seq)
	meta := e.meta(r)
	meta.Snapshot = h
	meta.Pos, meta.PosLast = walheader.Pos{Base: base}, walheader.Pos{Base: base, Index: uint64(len(texts) - 1)}
	meta.Prev, meta.HasPrev = e.last[w.Table.Name], !e.last[w.Table.Name].IsZero()
	e.last[w.Table.Name] = meta.PosLast
	meta.Runs = []walheader.Run{{Base: base, Count: len(texts), CommitTime: meta.CommitTime}}
	var bodies [][]byte
	for i, text := range texts {
		bodies = append(bodies, []byte(text))
		meta.Lens = append(meta.Lens, len(text))
		meta.LSNs = append(meta.LSNs, base+uint64(i))
	}
	w.Msgs = AppendChanges(w.Msgs, e.seq, meta, walheader.JoinBody(nil, bodies))
}

// A snapshot part of several records (one batch) replaces its range
// once, with every record of it; a whole-table part 1 of several records
// supersedes what came before it, not its own first records.
func TestSnapshotPartsInBatches(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool := testenv.Pool(t, pg.CreateDatabase(t, "wh"))
	e := newEnv(t, warehouse.Postgres, pool, pool, s3srv)
	ins := func(table string, id int, note string) string {
		return fmt.Sprintf(`table public.%s: INSERT: id[integer]:%d note[text]:'%s'`, table, id, note)
	}
	e.apply(e.window("snapb", pk(ins("snapb", 1, "a")), pk(ins("snapb", 2, "wrong")), pk(ins("snapb", 4, "extra")), pk(ins("snapb", 20, "y"))))
	w := Window{Table: subject.Table{DB: "shop", Schema: "public", Name: "snapb"}}
	e.snapBatch(&w, &walheader.Snapshot{ID: "s1", Chunk: 1, Part: 1, Parts: 2, Columns: []string{"id"}, From: key("5"), To: key("15")}, pk(""),
		`message: transactional: 0 prefix: redms-snapshot, sz: 2 content:{}`)
	e.snapBatch(&w, &walheader.Snapshot{ID: "s1", Chunk: 1, Part: 2, Parts: 2, Columns: []string{"id"}, To: key("5")}, pk(""),
		ins("snapb", 1, "a"), ins("snapb", 2, "b"), ins("snapb", 5, "e"))
	if res := e.apply(w); !res.Applied || res.Rows["snapshot-range"] != 2 {
		t.Fatalf("result %+v, want two parts replaced", res)
	}
	e.expect("snapb", `{"id":1,"note":"a"}
{"id":2,"note":"b"}
{"id":20,"note":"y"}
{"id":5,"note":"e"}`)

	// A keyless table replaced whole: part 1 holds three rows.
	none := func(text string) rec { return rec{text: text, keys: []string{}, source: walheader.KeySourceNone} }
	e.apply(e.window("snapf", none(ins("snapf", 9, "old"))))
	w = Window{Table: subject.Table{DB: "shop", Schema: "public", Name: "snapf"}}
	w.Msgs = append(w.Msgs, e.window("snapf", none(ins("snapf", 8, "superseded"))).Msgs...)
	e.snapBatch(&w, &walheader.Snapshot{ID: "s2", Chunk: 1, Part: 1, Parts: 1, Full: true}, none(""),
		ins("snapf", 1, "a"), ins("snapf", 2, "b"), ins("snapf", 3, "c"))
	if res := e.apply(w); !res.Applied {
		t.Fatalf("result %+v", res)
	}
	e.expect("snapf", `{"id":1,"note":"a"}
{"id":2,"note":"b"}
{"id":3,"note":"c"}`)
}

// TestSnapshotRangeComparesBytes: on a Postgres warehouse whose default
// collation is linguistic, a chunk's range of text keys compares by bytes,
// as capture reads chunks (typemap.SortKey) and as Redshift compares: the
// chunk (, B] of rows A and B keeps a and b, after B in bytes but before it
// in ICU's a < A < b < B.
func TestSnapshotRangeComparesBytes(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pg.Exec(t, "postgres", `CREATE DATABASE wh TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'und'`)
	pool := testenv.Pool(t, pg.URL("wh"))
	e := newEnv(t, warehouse.Postgres, pool, pool, s3srv)
	row := func(id string, n int) string {
		return fmt.Sprintf(`table public.words: INSERT: id[text]:'%s' n[integer]:%d`, id, n)
	}
	e.apply(e.window("words", pk(row("a", 1)), pk(row("A", 1)), pk(row("b", 1)), pk(row("B", 1))))
	e.apply(e.snapWindow("words", "s1", 1, nil, key("B"), nil,
		[]string{row("A", 2), row("B", 2)}, []walheader.Key{key("A"), key("B")}))
	e.expect("words", `{"id":"a","n":1}
{"id":"A","n":2}
{"id":"b","n":1}
{"id":"B","n":2}`)
}
