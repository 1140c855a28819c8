package change

import (
	"context"
	"log/slog"
	"testing"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/publish"
	"github.com/redms/redms/services/capture/internal/selection"
)

type countingResolver struct {
	calls map[catalog.Name]int
	info  map[catalog.Name]catalog.Info
}

func (r *countingResolver) Resolve(_ context.Context, t catalog.Name) (catalog.Info, error) {
	r.calls[t]++
	if i, ok := r.info[t]; ok {
		return i, nil
	}
	return catalog.Info{Root: t, Keys: []string{"id"}, KeySource: catalog.SourcePrimaryKey}, nil
}

func feed(t *testing.T, b *Builder, lines ...string) {
	t.Helper()
	for i, l := range lines {
		rec, err := testdecoding.Parse([]byte(l))
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		lsn := pglogrepl.LSN(100 + i)
		if rec.Kind != testdecoding.KindBegin && rec.Kind != testdecoding.KindCommit {
			lsn = 100 // several changes at one LSN, as a multi-insert or TRUNCATE gives
		}
		if err := b.Record(context.Background(), &rec, []byte(l), lsn); err != nil {
			t.Fatal(err)
		}
	}
}

func newBuilder(r *countingResolver, filter selection.Filter, out *[]publish.Batch) *Builder {
	return &Builder{DB: "shop", Resolver: r, Filter: filter, Log: slog.New(slog.DiscardHandler),
		Emit: func(_ context.Context, b publish.Batch) error { *out = append(*out, b); return nil }}
}

func TestOrdinalsAndTruncate(t *testing.T) {
	r := &countingResolver{calls: map[catalog.Name]int{}}
	var out []publish.Batch
	b := newBuilder(r, selection.Filter{}, &out)
	feed(t, b, "BEGIN 7",
		"table public.t: INSERT: id[integer]:1",
		"table public.t: INSERT: id[integer]:2",
		"table public.t, public.u: TRUNCATE: (no-flags)",
		"COMMIT 7 (at 2024-01-02 03:04:05.123456+00)")
	if len(out) != 1 || len(out[0].Messages) != 4 || out[0].Commit != 104 {
		t.Fatalf("batches %+v", out)
	}
	ids := []string{"shop:0/64:0", "shop:0/64:1", "shop:0/64:2", "shop:0/64:3"}
	subjects := []string{"redms.wal.shop.public.t", "redms.wal.shop.public.t", "redms.wal.shop.public.t", "redms.wal.shop.public.u"}
	for i, m := range out[0].Messages {
		if got := m.Header.Get(walheader.MsgID); got != ids[i] {
			t.Errorf("message %d: id %s, want %s", i, got, ids[i])
		}
		if m.Subject != subjects[i] {
			t.Errorf("message %d: subject %s, want %s", i, m.Subject, subjects[i])
		}
		if m.Header.Get(walheader.Xid) != "7" || m.Header.Get(walheader.CommitLSN) != "0/68" ||
			m.Header.Get(walheader.CommitTime) != "2024-01-02T03:04:05.123456000Z" {
			t.Errorf("message %d: headers %v", i, m.Header)
		}
	}
}

func TestColumnChangeLooksUpAgain(t *testing.T) {
	r := &countingResolver{calls: map[catalog.Name]int{}}
	var out []publish.Batch
	b := newBuilder(r, selection.Filter{}, &out)
	feed(t, b, "BEGIN 1",
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

func TestExcludedAndSpill(t *testing.T) {
	r := &countingResolver{calls: map[catalog.Name]int{}}
	var out []publish.Batch
	filter, _ := selection.NewFilter("", "public.secret")
	b := newBuilder(r, filter, &out)
	excluded := 0
	b.Metrics.Excluded = func(table string) {
		if table != "public.secret" {
			t.Errorf("excluded label %q", table)
		}
		excluded++
	}
	b.MaxTxnChanges = 2
	feed(t, b, "BEGIN 1",
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
	if len(out[0].Messages) != 2 || out[0].Commit != 0 || out[0].Messages[0].Header.Get(walheader.CommitLSN) != "" {
		t.Errorf("spilled batch %+v", out[0])
	}
	if len(out[1].Messages) != 1 || out[1].Commit == 0 || out[1].Messages[0].Header.Get(walheader.CommitLSN) == "" {
		t.Errorf("commit batch %+v", out[1])
	}
	if len(out[2].Messages) != 0 || out[2].Commit == 0 {
		t.Errorf("excluded-only transaction must still carry its commit: %+v", out[2])
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
