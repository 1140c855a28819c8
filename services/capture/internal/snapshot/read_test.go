package snapshot

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/typemap"
)

func TestReadChunksCompositeKey(t *testing.T) {
	pool := sourceWith(t, strings.Join([]string{
		`CREATE TABLE public.events (id bigint, day date, what text, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)`,
		`CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')`,
		`CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')`,
		`INSERT INTO public.events SELECT g, '2026-01-01'::date + (g % 59), 'e' || g FROM generate_series(1, 3000) g`,
	}, "; "))
	ctx := context.Background()
	tb := testdecoding.Table{Schema: "public", Name: "events"}
	cols, err := readColumns(ctx, pool, tb)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	chunks := readAll(t, pool, tb, cols, []int{0, 1}, 500)
	for _, ch := range chunks {
		for _, r := range ch {
			if seen[r.key] {
				t.Fatalf("row %q twice", r.text)
			}
			seen[r.key] = true
		}
	}
	if len(seen) != 3000 || len(chunks) != 7 {
		t.Errorf("read %d rows in %d chunks, want 3000 in 7", len(seen), len(chunks))
	}
}

// readAll reads table tb chunk after chunk of limit rows, keyed by
// keys (indexes into cols), until a chunk comes short.
func readAll(t *testing.T, pool *pgxpool.Pool, tb testdecoding.Table, cols []column, keys []int, limit int) [][]row {
	t.Helper()
	var chunks [][]row
	var cursor []*string
	for {
		rows, last, _, err := readChunk(context.Background(), pool, tb, cols, keys, cursor, nil, "", limit)
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, rows)
		if len(rows) < limit {
			return chunks
		}
		cursor = last
	}
}

func pxpool(url string) (*pgxpool.Pool, error) { return pgxpool.New(context.Background(), url) }

// sourceWith is a pool on a new source database on which sql ran.
func sourceWith(t *testing.T, sql string) *pgxpool.Pool {
	t.Helper()
	pool, err := pxpool(testenv.StartPostgres(t).CreateDatabase(t, "src"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
	return pool
}

// readFirst reads the first chunk (up to 10 rows) of public.<name>, keyed
// by its first column.
func readFirst(t *testing.T, pool *pgxpool.Pool, name string) ([]row, *visibility) {
	t.Helper()
	ctx := context.Background()
	tb := testdecoding.Table{Schema: "public", Name: name}
	cols, err := readColumns(ctx, pool, tb)
	if err != nil {
		t.Fatal(err)
	}
	rows, _, vis, err := readChunk(ctx, pool, tb, cols, []int{0}, nil, nil, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	return rows, vis
}

func TestChunkSQL(t *testing.T) {
	cols := []column{sortable("id", "bigint", ""), sortable("Day", "date", ""), sortable("what", "text", "C")}
	tb := testdecoding.Table{Schema: "public", Name: "events"}
	got := ChunkSQL(tb, cols, []int{0, 1}, true, false, "what <> 'x'", 500)
	want := `SELECT id::text AS k0, "Day"::text AS k1, id::text AS c0, "Day"::text AS c1, what::text AS c2 FROM public.events WHERE (id, "Day") > ($1::bigint, $2::date) AND (what <> 'x') ORDER BY id, "Day" LIMIT 500`
	if got != want {
		t.Errorf("ChunkSQL\n got %s\nwant %s", got, want)
	}
	if got, want := ChunkSQL(tb, cols[2:], nil, false, false, "", 10), `SELECT what::text AS c0 FROM public.events LIMIT 10`; got != want {
		t.Errorf("ChunkSQL keyless\n got %s\nwant %s", got, want)
	}
	got = ChunkSQL(tb, cols, []int{0, 1}, true, true, "", 500)
	want = `SELECT id::text AS k0, "Day"::text AS k1, id::text AS c0, "Day"::text AS c1, what::text AS c2 FROM public.events WHERE (id, "Day") > ($1::bigint, $2::date) AND (id, "Day") <= ($3::bigint, $4::date) ORDER BY id, "Day" LIMIT 500`
	if got != want {
		t.Errorf("ChunkSQL in a range\n got %s\nwant %s", got, want)
	}
	got = ChunkSQL(tb, cols, []int{0}, false, true, "", 5)
	want = `SELECT id::text AS k0, id::text AS c0, "Day"::text AS c1, what::text AS c2 FROM public.events WHERE (id) <= ($1::bigint) ORDER BY id LIMIT 5`
	if got != want {
		t.Errorf("ChunkSQL up to a range's end\n got %s\nwant %s", got, want)
	}
	// A text key under a linguistic collation is ordered as the warehouse
	// orders it, by its bytes.
	cols[2] = sortable("what", "text", "icu")
	got = ChunkSQL(tb, cols, []int{2, 0}, true, false, "", 5)
	want = `SELECT what::text AS k0, id::text AS k1, id::text AS c0, "Day"::text AS c1, what::text AS c2 FROM public.events WHERE (what::text COLLATE "C", id) > ($1::text, $2::bigint) ORDER BY what::text COLLATE "C", id LIMIT 5`
	if got != want {
		t.Errorf("ChunkSQL with a collated text key\n got %s\nwant %s", got, want)
	}
}

// sortable is a column as readColumns makes it.
func sortable(name, declared, locale string) column {
	c := column{name: name, declared: declared}
	c.sort, c.bound, _ = typemap.SortKey(testdecoding.QuoteIdentifier(name), declared, locale)
	return c
}

// TestReadChunksInWarehouseOrder: keys whose source order is not the
// warehouse's (text under a linguistic collation, an enum) are read in the
// warehouse's order, bytes of their text, so that each chunk's range holds
// in the warehouse exactly the chunk's keys (its range replace deletes the
// rest of the range). Read in the source's order, the range (a, A] of
// ICU's a < A < b < B holds B and a in the warehouse, a row of another
// chunk the range replace deletes.
func TestReadChunksInWarehouseOrder(t *testing.T) {
	pool := sourceWith(t, strings.Join([]string{
		`CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')`,
		`CREATE TABLE public.words (w text COLLATE "und-x-icu", m public.mood, n int, PRIMARY KEY (w, m))`,
		`INSERT INTO public.words SELECT w, m, 1 FROM unnest(ARRAY['a', 'A', 'b', 'B', 'é', 'E', 'z', '_x', 'a b', 'ab']) w, unnest(enum_range(NULL::public.mood)) m`,
	}, "; "))
	ctx := context.Background()
	tb := testdecoding.Table{Schema: "public", Name: "words"}
	cols, err := readColumns(ctx, pool, tb)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ch := range readAll(t, pool, tb, cols, []int{0, 1}, 4) {
		for _, r := range ch {
			got = append(got, *r.vals[0]+"/"+*r.vals[1])
		}
	}
	if len(got) != 30 {
		t.Fatalf("read %d rows, want 30: %q", len(got), got)
	}
	for i := 1; i < len(got); i++ {
		a, b := strings.SplitN(got[i-1], "/", 2), strings.SplitN(got[i], "/", 2)
		if a[0] > b[0] || (a[0] == b[0] && a[1] >= b[1]) {
			t.Fatalf("rows read out of the warehouse's (byte) order: %q before %q in %q", got[i-1], got[i], got)
		}
	}
}

// TestReadChunkKeepsCharPadding: a char(n) value is read as test_decoding
// prints it, blank-padded (a ::text cast strips the padding, so a snapshot
// loaded other values than the stream does), and NULL stays NULL.
func TestReadChunkKeepsCharPadding(t *testing.T) {
	pool := sourceWith(t, `CREATE TABLE public.c (id int PRIMARY KEY, code char(4)); INSERT INTO public.c VALUES (1, 'b'), (2, NULL)`)
	rows, _ := readFirst(t, pool, "c")
	var got []string
	for _, r := range rows {
		got = append(got, string(r.text))
	}
	want := []string{
		"table public.c: INSERT: id[integer]:1 code[character]:'b   '",
		"table public.c: INSERT: id[integer]:2 code[character]:null",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rows read:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReadChunkSeesInProgress: a chunk's read returns what its snapshot
// does not see, in test_decoding's numbering: a transaction in progress is
// among it, the one committed before is not.
func TestReadChunkSeesInProgress(t *testing.T) {
	pool := sourceWith(t, `CREATE TABLE public.t (id int PRIMARY KEY, v text); INSERT INTO public.t VALUES (1, 'a')`)
	ctx := context.Background()
	open, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = open.Rollback(ctx) }()
	var xid int64
	if err := open.QueryRow(ctx, `UPDATE public.t SET v = 'b' WHERE id = 1 RETURNING txid_current() % 4294967296`).Scan(&xid); err != nil {
		t.Fatal(err)
	}
	rows, vis := readFirst(t, pool, "t")
	if len(rows) != 1 || !strings.Contains(string(rows[0].text), "'a'") {
		t.Fatalf("%d rows (%v), want the committed version of row 1", len(rows), rows)
	}
	if !vis.invisible(uint32(xid)) {
		t.Fatalf("the read's snapshot (xmax %d, in progress %v) sees transaction %d, which had not committed", vis.xmax, vis.xip, xid)
	}
	if vis.invisible(uint32(xid) - 1) {
		t.Errorf("the read's snapshot (xmax %d, in progress %v) does not see transaction %d, which committed before", vis.xmax, vis.xip, xid-1)
	}
}
