package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// env is a warehouse (Postgres), an S3 server and an Applier loading into them.
type env struct {
	t    testing.TB
	s3   *testenv.S3
	s3c  *s3.Client
	pool *pgxpool.Pool // the applier's warehouse connection
	read *pgxpool.Pool // where the test reads the target (the backing Postgres under rsemu)
	ap   *Applier
	seq  uint64
	last map[string]walheader.Pos // table → position of its last message
	snap *snapshots
}

// snapshots records snapshot requests.
type snapshots struct {
	mu   sync.Mutex
	reqs []string
}

func (s *snapshots) Request(_ context.Context, t subject.Table, reason, first, last string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, fmt.Sprintf("%s %s..%s: %s", t, first, last, reason))
	return nil
}

func (s *snapshots) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

func newEnv(t testing.TB, dialect warehouse.Dialect, pool, read *pgxpool.Pool, s3srv *testenv.S3) *env {
	e := &env{t: t, pool: pool, read: read, s3: s3srv, last: map[string]walheader.Pos{}, snap: &snapshots{}}
	e.s3c = e.s3.Client(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ap, err := New(Config{
		Dialect:   dialect,
		S3Bucket:  "stage",
		S3Prefix:  "redms/",
		PartBytes: 256,
		S3Region:  e.s3.Region(), S3AccessKeyID: e.s3.AccessKeyID(), S3SecretAccessKey: e.s3.SecretAccessKey(),
		TableKeys: map[string][]string{"public.cfgkeys": {"code"}},
	}, pool, e.s3c, e.snap, log)
	if err != nil {
		t.Fatal(err)
	}
	e.ap = ap
	return e
}

// rec is one change message: its test_decoding text and key headers.
type rec struct {
	text   string
	keys   []string
	source string
	types  map[string]string // Redms-Types
}

// typed is r with declared types.
func (r rec) typed(types map[string]string) rec {
	r.types = types
	return r
}

func pk(text string, keys ...string) rec {
	if len(keys) == 0 {
		keys = []string{"id"}
	}
	return rec{text: text, keys: keys, source: walheader.KeySourcePrimaryKey}
}

// window is one message per rec, each a change of its own transaction with
// a source position, the prev chain unbroken.
func (e *env) window(table string, recs ...rec) Window {
	w := Window{Table: subject.Table{DB: "shop", Schema: "public", Name: table}}
	for _, r := range recs {
		e.seq++
		pos := walheader.Pos{Base: 0x100000 + 0x100*e.seq}
		meta := e.meta(r)
		meta.Pos, meta.PosLast = pos, pos
		meta.Prev, meta.HasPrev = e.last[table], !e.last[table].IsZero()
		e.last[table] = pos
		w.Msgs = append(w.Msgs, NewMsg(e.seq, meta, []byte(r.text)))
	}
	return w
}

// legacyWindow is like window, with messages of a capture before source
// positions.
func (e *env) legacyWindow(table string, recs ...rec) Window {
	w := Window{Table: subject.Table{DB: "shop", Schema: "public", Name: table}}
	for _, r := range recs {
		e.seq++
		w.Msgs = append(w.Msgs, NewMsg(e.seq, e.meta(r), []byte(r.text)))
	}
	return w
}

func (e *env) meta(r rec) walheader.Meta {
	return walheader.Meta{
		LSN:        fmt.Sprintf("0/%X", 0x1000+e.seq),
		CommitLSN:  fmt.Sprintf("0/%X", 0x1000+e.seq),
		Xid:        700 + e.seq,
		CommitTime: time.Date(2026, 1, 1, 0, 0, int(e.seq), 0, time.UTC),
		Keys:       r.keys,
		KeySource:  r.source,
		Types:      r.types,
	}
}

func (e *env) apply(w Window) Result {
	e.t.Helper()
	res, err := e.ap.Apply(context.Background(), w)
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
	return res
}

// rows returns the target table's rows as JSON objects, sorted.
func (e *env) rows(table string) string {
	e.t.Helper()
	r, err := e.read.Query(context.Background(), fmt.Sprintf(`SELECT row_to_json(t)::text FROM public.%s t ORDER BY 1`, warehouse.Ident(table)))
	if err != nil {
		e.t.Fatalf("read %s: %v", table, err)
	}
	defer r.Close()
	var out []string
	for r.Next() {
		var s string
		if err := r.Scan(&s); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := r.Err(); err != nil {
		e.t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

func (e *env) expect(table, want string) {
	e.t.Helper()
	if got := e.rows(table); got != want {
		e.t.Errorf("%s rows:\n%s\nwant\n%s", table, got, want)
	}
}

func (e *env) columns(table string) string {
	e.t.Helper()
	cols, err := introspectPool(e.read, warehouse.Table{Schema: "public", Name: table})
	if err != nil {
		e.t.Fatal(err)
	}
	var parts []string
	for _, c := range cols {
		parts = append(parts, c.Name+" "+c.Type.SQL)
	}
	return strings.Join(parts, ", ")
}

func introspectPool(pool *pgxpool.Pool, t warehouse.Table) ([]warehouse.Column, error) {
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	return introspect(context.Background(), conn.Conn(), warehouse.Postgres, t)
}

// manifests counts the staged manifests under prefix.
func (e *env) manifests(prefix string) int {
	e.t.Helper()
	out, err := e.s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("stage"), Prefix: aws.String(prefix)})
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, o := range out.Contents {
		if strings.HasSuffix(aws.ToString(o.Key), "/manifest") {
			n++
		}
	}
	return n
}

func (e *env) objects() int {
	out, err := e.s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("stage")})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(out.Contents)
}

func TestApplyPostgres(t *testing.T) {
	pg := testenv.StartPostgres(t)
	s3srv := testenv.StartS3(t)
	s3srv.CreateBucket(t, "stage")
	pool := testenv.Pool(t, pg.CreateDatabase(t, "wh"))
	runScenarios(t, newEnv(t, warehouse.Postgres, pool, pool, s3srv))
}

// runScenarios runs every scenario against one warehouse; each uses its own table.
func runScenarios(t *testing.T, e *env) {
	defer posScenarios(t, e)
	defer limitScenarios(t, e)
	t.Run("insert update delete", func(t *testing.T) {
		e.t = t
		res := e.apply(e.window("orders",
			pk(`table public.orders: INSERT: id[integer]:1 note[text]:'a' amount[numeric(12,2)]:1.50`),
			pk(`table public.orders: INSERT: id[integer]:2 note[text]:'b' amount[numeric(12,2)]:2.00`),
			pk(`table public.orders: INSERT: id[integer]:3 note[text]:'c' amount[numeric(12,2)]:3.00`),
			pk(`table public.orders: UPDATE: id[integer]:1 note[text]:'a2' amount[numeric(12,2)]:1.75`),
			pk(`table public.orders: DELETE: id[integer]:2`),
		))
		if !res.Applied || res.Rows["insert"] != 2 || res.Rows["delete"] != 1 || res.FirstLSN != "0/1001" || res.LastLSN != "0/1005" {
			t.Errorf("result %+v", res)
		}
		if !res.LastCommit.Equal(time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)) {
			t.Errorf("last commit %v", res.LastCommit)
		}
		e.expect("orders", `{"id":1,"note":"a2","amount":1.75}
{"id":3,"note":"c","amount":3.00}`)
		if got := e.columns("orders"); got != "id INTEGER, note VARCHAR(65535), amount NUMERIC(12,2)" {
			t.Errorf("columns: %s", got)
		}
		if n := e.objects(); n != 0 {
			t.Errorf("%d staged objects left after commit", n)
		}
	})
	t.Run("odd identifiers keep their case", func(t *testing.T) {
		e.t = t
		e.apply(e.window("Mixed Case.Table*>",
			pk(`table public."Mixed Case.Table*>": INSERT: "Id"[integer]:1 "co""l"[text]:'a' "select"[text]:'b'`, "Id"),
			pk(`table public."Mixed Case.Table*>": UPDATE: old-key: "Id"[integer]:1 new-tuple: "Id"[integer]:2 "co""l"[text]:'a2' "select"[text]:'b'`, "Id"),
		))
		e.apply(e.window("mixed case.table*>",
			pk(`table public."mixed case.table*>": INSERT: id[integer]:7`),
		))
		e.expect("Mixed Case.Table*>", `{"Id":2,"co\"l":"a2","select":"b"}`)
		e.expect("mixed case.table*>", `{"id":7}`)
	})
	t.Run("toast fill and update of known columns", func(t *testing.T) {
		e.t = t
		e.apply(e.window("docs",
			pk(`table public.docs: INSERT: id[integer]:1 rev[integer]:1 body[text]:'one'`),
			pk(`table public.docs: INSERT: id[integer]:2 rev[integer]:1 body[text]:'two'`),
		))
		res := e.apply(e.window("docs",
			pk(`table public.docs: INSERT: id[integer]:3 rev[integer]:1 body[text]:'three'`),
			pk(`table public.docs: UPDATE: id[integer]:3 rev[integer]:2 body[text]:unchanged-toast-datum`),
			pk(`table public.docs: UPDATE: id[integer]:1 rev[integer]:2 body[text]:unchanged-toast-datum`),
		))
		if res.Rows["update"] != 1 || res.Rows["insert"] != 1 {
			t.Errorf("rows %v", res.Rows)
		}
		e.expect("docs", `{"id":1,"rev":2,"body":"one"}
{"id":2,"rev":1,"body":"two"}
{"id":3,"rev":2,"body":"three"}`)
	})
	t.Run("composite key and configured key", func(t *testing.T) {
		e.t = t
		e.apply(e.window("lines",
			pk(`table public.lines: INSERT: o[integer]:1 n[integer]:1 q[integer]:5`, "o", "n"),
			pk(`table public.lines: INSERT: o[integer]:1 n[integer]:2 q[integer]:6`, "o", "n"),
			pk(`table public.lines: INSERT: o[integer]:2 n[integer]:1 q[integer]:7`, "o", "n"),
			pk(`table public.lines: UPDATE: o[integer]:1 n[integer]:2 q[integer]:60`, "o", "n"),
			pk(`table public.lines: DELETE: o[integer]:1 n[integer]:1`, "o", "n"),
		))
		e.expect("lines", `{"o":1,"n":2,"q":60}
{"o":2,"n":1,"q":7}`)
		e.apply(e.window("cfgkeys",
			rec{text: `table public.cfgkeys: INSERT: code[text]:'x' v[integer]:1`, source: walheader.KeySourceConfig},
			rec{text: `table public.cfgkeys: INSERT: code[text]:'x' v[integer]:2`, source: walheader.KeySourceConfig},
		))
		e.expect("cfgkeys", `{"code":"x","v":2}`)
	})
	t.Run("primary key change", func(t *testing.T) {
		e.t = t
		e.apply(e.window("moves",
			pk(`table public.moves: INSERT: id[integer]:1 body[text]:'one'`),
			pk(`table public.moves: INSERT: id[integer]:5 body[text]:'five'`),
			pk(`table public.moves: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 body[text]:'uno'`),
		))
		e.expect("moves", `{"id":2,"body":"uno"}
{"id":5,"body":"five"}`)
		// A key change whose TOAST value no change of the window carries:
		// the warehouse row moves to its new key.
		w := e.window("moves",
			pk(`table public.moves: UPDATE: old-key: id[integer]:5 new-tuple: id[integer]:6 body[text]:unchanged-toast-datum`),
			pk(`table public.moves: INSERT: id[integer]:5 body[text]:'new five'`),
		)
		e.apply(w)
		want := `{"id":2,"body":"uno"}
{"id":5,"body":"new five"}
{"id":6,"body":"five"}`
		e.expect("moves", want)
		// Replaying the window (applied position reset) leaves the same rows.
		e.rewind(w)
		e.apply(w)
		e.expect("moves", want)
	})
	t.Run("replayed key change whose new key exists", func(t *testing.T) {
		e.t = t
		// The e2e replay bug: an INSERT and a later key change with the
		// TOAST value unchanged, replayed in separate windows after the first
		// pass moved the row. The replayed INSERT re-creates the old key; the
		// replayed move finds the new key present and must still delete it.
		big := strings.Repeat("x", 40)
		ins := e.window("rekey", pk(`table public.rekey: INSERT: id[integer]:11 n[integer]:1 payload[text]:'`+big+`'`))
		mv := e.window("rekey", pk(`table public.rekey: UPDATE: old-key: id[integer]:11 new-tuple: id[integer]:30 n[integer]:2 payload[text]:unchanged-toast-datum`))
		e.apply(ins)
		e.apply(mv)
		want := `{"id":30,"n":2,"payload":"` + big + `"}`
		e.expect("rekey", want)
		e.rewind(ins)
		e.apply(ins)
		e.expect("rekey", `{"id":11,"n":1,"payload":"`+big+`"}
`+want)
		e.apply(mv)
		e.expect("rekey", want)
		// The move replayed alone (the old key absent, the new one present)
		// keeps the new row.
		e.rewind(mv)
		e.apply(mv)
		e.expect("rekey", want)
	})
	t.Run("replica identity full", func(t *testing.T) {
		e.t = t
		full := func(s string) rec {
			return rec{text: s, keys: []string{}, source: walheader.KeySourceReplicaIdentityFull}
		}
		e.apply(e.window("full_ri",
			full(`table public.full_ri: INSERT: id[integer]:1 v[text]:'a' n[numeric]:null`),
			full(`table public.full_ri: INSERT: id[integer]:2 v[text]:'b' n[numeric]:null`),
			full(`table public.full_ri: INSERT: id[integer]:null v[text]:null n[numeric]:null`),
			full(`table public.full_ri: UPDATE: old-key: id[integer]:1 v[text]:'a' new-tuple: id[integer]:1 v[text]:'a2' n[numeric]:4`),
		))
		e.apply(e.window("full_ri",
			full(`table public.full_ri: DELETE: id[integer]:2 v[text]:'b'`),
			full(`table public.full_ri: UPDATE: old-key: id[integer]:1 v[text]:'a2' n[numeric]:4 new-tuple: id[integer]:1 v[text]:'a3' n[numeric]:4`),
		))
		e.expect("full_ri", `{"id":1,"v":"a3","n":4.00000000}
{"id":null,"v":null,"n":null}`)
	})
	t.Run("replica identity full keeps identical rows", func(t *testing.T) {
		e.t = t
		full := func(s string) rec {
			return rec{text: s, keys: []string{}, source: walheader.KeySourceReplicaIdentityFull}
		}
		a := full(`table public.full_bag: INSERT: id[integer]:1 v[text]:'a'`)
		b := full(`table public.full_bag: INSERT: id[integer]:2 v[text]:'b'`)
		res := e.apply(e.window("full_bag", a, a, a, b))
		if res.Rows["insert"] != 4 || res.Replays != 0 {
			t.Errorf("result %+v", res)
		}
		// A copy of a row the target holds is one more copy; an INSERT
		// after a DELETE of its row in the window replaces every copy.
		e.apply(e.window("full_bag", a, b,
			full(`table public.full_bag: DELETE: id[integer]:2 v[text]:'b'`),
			b,
		))
		e.expect("full_bag", `{"id":1,"v":"a"}
{"id":1,"v":"a"}
{"id":1,"v":"a"}
{"id":1,"v":"a"}
{"id":2,"v":"b"}`)
	})
	t.Run("column changes mid-window", func(t *testing.T) {
		e.t = t
		res := e.apply(e.window("ddl",
			pk(`table public.ddl: INSERT: id[integer]:1 a[character varying(5)]:'x' b[integer]:1`),
			pk(`table public.ddl: INSERT: id[integer]:2 a[character varying(5)]:'y' b[integer]:2 c[text]:'20'`),
			pk(`table public.ddl: INSERT: id[integer]:3 a[character varying(10)]:'z' b[bigint]:3000000000 c[text]:'30'`),
			pk(`table public.ddl: INSERT: id[integer]:4 a[character varying(2)]:'w' c[text]:'40'`),
		))
		if !res.Applied {
			t.Fatalf("%+v", res)
		}
		e.expect("ddl", `{"id":1,"a":"x","c":null}
{"id":2,"a":"y","c":"20"}
{"id":3,"a":"z","c":"30"}
{"id":4,"a":"w","c":"40"}`)
		if got := e.columns("ddl"); got != "id INTEGER, a VARCHAR(40), c VARCHAR(65535)" {
			t.Errorf("columns: %s", got)
		}
		e.apply(e.window("ddl",
			pk(`table public.ddl: INSERT: id[integer]:5 a[text]:'t' c[integer]:5`),
		))
		if got := e.columns("ddl"); got != "id INTEGER, a VARCHAR(65535), c INTEGER" {
			t.Errorf("columns after retype: %s", got)
		}
		e.expect("ddl", `{"id":1,"a":"x","c":null}
{"id":2,"a":"y","c":20}
{"id":3,"a":"z","c":30}
{"id":4,"a":"w","c":40}
{"id":5,"a":"t","c":5}`)
		// A narrower integer keeps the wider column.
		e.apply(e.window("ddl",
			pk(`table public.ddl: INSERT: id[smallint]:7 a[text]:'s' c[integer]:7`),
		))
		if got := e.columns("ddl"); got != "id INTEGER, a VARCHAR(65535), c INTEGER" {
			t.Errorf("columns after narrowing: %s", got)
		}
		// A retype the warehouse cannot cast existing values for parks.
		_, err := e.ap.Apply(context.Background(), e.window("ddl",
			pk(`table public.ddl: INSERT: id[integer]:6 a[boolean]:true c[integer]:6`),
		))
		var pe *ParkError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "alter table") {
			t.Errorf("uncastable retype: %v", err)
		}
	})
	t.Run("truncate mid-window", func(t *testing.T) {
		e.t = t
		res := e.apply(e.window("tr",
			pk(`table public.tr: INSERT: id[integer]:1`),
			pk(`table public.tr: INSERT: id[integer]:2`),
			pk(`table public.tr, public.other: TRUNCATE: (no-flags)`),
			pk(`table public.tr: INSERT: id[integer]:3`),
		))
		if res.Rows["truncate"] != 1 {
			t.Errorf("rows %v", res.Rows)
		}
		e.expect("tr", `{"id":3}`)
		e.apply(e.window("tr", pk(`table public.tr: TRUNCATE: (no-flags)`)))
		e.expect("tr", ``)
	})
	t.Run("deletes on a missing table", func(t *testing.T) {
		e.t = t
		res := e.apply(e.window("ghost",
			pk(`table public.ghost: DELETE: id[integer]:1`),
			pk(`table public.ghost: TRUNCATE: (no-flags)`),
		))
		if !res.Applied || res.Rows["delete"] != 0 {
			t.Errorf("result %+v", res)
		}
		if got := e.columns("ghost"); got != "" {
			t.Errorf("ghost table created: %s", got)
		}
	})
	t.Run("applied position", func(t *testing.T) {
		e.t = t
		w := e.window("wm",
			pk(`table public.wm: INSERT: id[integer]:1 v[text]:'a'`),
			pk(`table public.wm: UPDATE: id[integer]:1 v[text]:'b'`),
		)
		e.apply(w)
		res := e.apply(w)
		if res.Applied || res.Replays != 2 {
			t.Errorf("second apply: %+v", res)
		}
		// A window that overlaps the watermark applies only what is new.
		w2 := w
		w2.Msgs = append(w2.Msgs[:2:2], e.window("wm", pk(`table public.wm: UPDATE: id[integer]:1 v[text]:'c'`)).Msgs...)
		res = e.apply(w2)
		if !res.Applied || res.Replays != 2 || res.Rows["insert"] != 1 {
			t.Errorf("overlapping apply: %+v", res)
		}
		e.expect("wm", `{"id":1,"v":"c"}`)
		// The same window applied again (applied position lost) gives the same state.
		e.rewind(w2)
		e.apply(w2)
		e.expect("wm", `{"id":1,"v":"c"}`)
	})
	t.Run("a stale owner is fenced by the applied position", func(t *testing.T) {
		e.t = t
		stale := e.window("fence", pk(`table public.fence: INSERT: id[integer]:1 v[text]:'stale'`))
		fresh := stale
		fresh.Msgs = append(stale.Msgs[:1:1], e.window("fence", pk(`table public.fence: UPDATE: id[integer]:1 v[text]:'fresh'`)).Msgs...)
		// The fresh owner commits while the stale one is staging.
		e.ap.beforeTx = func() {
			e.ap.beforeTx = nil
			e.apply(fresh)
		}
		_, err := e.ap.Apply(context.Background(), stale)
		var pe *ParkError
		if err == nil || errors.As(err, &pe) || !strings.Contains(err.Error(), "applied position") {
			t.Fatalf("stale window: want a retryable applied position error, got %v", err)
		}
		// Its retry finds everything applied.
		res := e.apply(stale)
		if res.Applied || res.Replays != 1 {
			t.Errorf("retry of the stale window: %+v", res)
		}
		e.expect("fence", `{"id":1,"v":"fresh"}`)
	})
	t.Run("unparseable record parks", func(t *testing.T) {
		e.t = t
		w := e.window("bad",
			pk(`table public.bad: INSERT: id[integer]:1`),
			pk(`table public.bad: INSERT: id[integer]:'unterminated`),
		)
		_, err := e.ap.Apply(context.Background(), w)
		var pe *ParkError
		if !errors.As(err, &pe) {
			t.Fatalf("want ParkError, got %v", err)
		}
		if pe.Table != "public.bad" || !strings.Contains(pe.Reason, "lsn 0/") || pe.FirstSeq != w.Msgs[0].Seq || pe.LastSeq != w.Msgs[1].Seq {
			t.Errorf("park error %+v", pe)
		}
		if got := e.columns("bad"); got != "" {
			t.Errorf("bad window applied: %s", got)
		}
	})
	t.Run("value the warehouse rejects parks", func(t *testing.T) {
		e.t = t
		_, err := e.ap.Apply(context.Background(), e.window("rej",
			pk(`table public.rej: INSERT: id[integer]:1 d[integer]:'not a number'`),
		))
		var pe *ParkError
		// Redshift reports a COPY load error as XX000 naming stl_load_errors.
		if !errors.As(err, &pe) {
			t.Fatalf("want ParkError, got %v", err)
		}
	})
	t.Run("identifier too long for the warehouse parks", func(t *testing.T) {
		e.t = t
		long := strings.Repeat("c", 128)
		_, err := e.ap.Apply(context.Background(), e.window("longcol",
			pk(`table public.longcol: INSERT: id[integer]:1 `+long+`[integer]:2`),
		))
		var pe *ParkError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "128 bytes") {
			t.Errorf("want ParkError naming the identifier, got %v", err)
		}
	})
	t.Run("staged objects are kept when asked", func(t *testing.T) {
		e.t = t
		cfg := e.ap.cfg
		cfg.KeepObjects, cfg.S3Prefix = true, "kept/"
		keep, err := New(cfg, e.pool, e.s3c, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keep.Apply(context.Background(), e.window("kept", pk(`table public.kept: INSERT: id[integer]:1`))); err != nil {
			t.Fatal(err)
		}
		out, err := e.s3c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("stage"), Prefix: aws.String("kept/")})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
		if len(keys) != 2 || !strings.HasSuffix(keys[0], "/manifest") && !strings.HasSuffix(keys[1], "/manifest") {
			t.Errorf("kept objects: %v", keys)
		}
	})
	t.Run("keyless changes", func(t *testing.T) {
		e.t = t
		none := func(s string) rec { return rec{text: s, keys: []string{}, source: walheader.KeySourceNone} }
		res := e.apply(e.window("nokey",
			none(`table public.nokey: INSERT: v[text]:'a'`),
			none(`table public.nokey: INSERT: v[text]:'a'`),
			none(`table public.nokey: INSERT: v[text]:'b'`),
		))
		if !res.Applied || res.Rows["insert"] != 3 || len(e.snap.got()) != 0 {
			t.Errorf("keyless inserts: %+v, snapshot requests %v", res, e.snap.got())
		}
		e.expect("nokey", `{"v":"a"}
{"v":"a"}
{"v":"b"}`)
		w := e.window("nokey",
			none(`table public.nokey: UPDATE: v[text]:'c'`),
			none(`table public.nokey: DELETE: (no-tuple-data)`),
			none(`table public.nokey: INSERT: v[text]:'d'`),
		)
		res = e.apply(w)
		if !res.Applied || res.Unapplied["no-key"] != 2 || res.Rows["insert"] != 1 {
			t.Errorf("keyless update and delete: %+v", res)
		}
		if got := e.snap.got(); len(got) != 1 || !strings.Contains(got[0], "public.nokey "+w.Msgs[0].Meta.LSN+".."+w.Msgs[1].Meta.LSN) {
			t.Errorf("snapshot requests %q", got)
		}
		// The "id" default, where changes have no id column.
		res = e.apply(e.window("noid", rec{text: `table public.noid: INSERT: v[text]:'a'`}))
		if !res.Applied || res.Rows["insert"] != 1 {
			t.Errorf("default key without id: %+v", res)
		}
		e.expect("noid", `{"v":"a"}`)
	})
	t.Run("values survive and rules are counted", func(t *testing.T) {
		e.t = t
		res := e.apply(e.window("vals",
			pk(`table public.vals: INSERT: id[integer]:1 s[text]:null n[numeric]:1.5 c[character varying(2)]:'ab' f[double precision]:1.5 d[date]:'2024-01-02'`),
			pk(`table public.vals: INSERT: id[integer]:2 s[text]:'' n[numeric]:100000000000000000000 c[character varying(2)]:'abcdéfghi' f[double precision]:'Infinity' d[date]:'infinity'`),
			pk(`table public.vals: INSERT: id[integer]:3 s[text]:'\N' n[numeric]:'NaN' c[character varying(2)]:'~N' f[double precision]:'NaN' d[date]:'0001-01-01'`),
			pk(`table public.vals: INSERT: id[integer]:4 s[text]:'NULL' n[numeric]:-0.000000005 c[character varying(2)]:'"' f[double precision]:-0 d[date]:'294277-01-01'`),
			pk(`table public.vals: INSERT: id[integer]:5 s[text]:'\' n[numeric]:null c[character varying(2)]:',' f[double precision]:null d[date]:null`),
			pk("table public.vals: INSERT: id[integer]:6 s[text]:'a\r\nb''c' n[numeric]:0 c[character varying(2)]:'~N1' f[double precision]:1e-300 d[date]:'4713-01-01 BC'"),
		))
		e.expect("vals", `{"id":1,"s":null,"n":1.50000000,"c":"ab","f":1.5,"d":"2024-01-02"}
{"id":2,"s":"","n":92233720368.54775807,"c":"abcdéfghi","f":null,"d":null}
{"id":3,"s":"\\N","n":null,"c":"~N","f":null,"d":"0001-01-01"}
{"id":4,"s":"NULL","n":-0.00000001,"c":"\"","f":-0,"d":null}
{"id":5,"s":"\\","n":null,"c":",","f":null,"d":null}
{"id":6,"s":"a\r\nb'c","n":0.00000000,"c":"~N1","f":1e-300,"d":"4713-01-01 BC"}`)
		// c's longest value is longer than varchar(2) allows (a declared
		// type from before an ALTER): the column is widened to fit it
		want := map[string]int{"numeric-saturated": 1, "numeric-nan-null": 1, "float-nonfinite-null": 2, "date-out-of-range-null": 2}
		if fmt.Sprint(res.Adjusted) != fmt.Sprint(want) {
			t.Errorf("adjusted %v, want %v", res.Adjusted, want)
		}
		if res.StagedBytes <= 0 {
			t.Errorf("staged bytes %d", res.StagedBytes)
		}
	})
}

// resetState sets table's applied position to to and its legacy fence to 0,
// as if what came after was never applied.
func (e *env) resetState(table string, to walheader.Pos) {
	e.t.Helper()
	st := warehouse.StateTable("public", warehouse.Table{Schema: "public", Name: table})
	_, err := e.read.Exec(context.Background(), `UPDATE `+st.SQL()+` SET pos_base = $1, pos_index = $2, legacy_seq = 0`, int64(to.Base), int64(to.Index))
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "42P01" {
		return // nothing applied yet
	}
	if err != nil {
		e.t.Fatal(err)
	}
}

// rewind makes w apply again: the applied position goes back to just
// before its first message.
func (e *env) rewind(w Window) {
	e.t.Helper()
	e.resetState(w.Table.Name, w.Msgs[0].Meta.Prev)
}

func TestNewChecksConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		s3   bool
	}{
		{"unknown dialect", Config{Dialect: "oracle"}, false},
		{"redshift without s3", Config{Dialect: warehouse.Redshift, S3Bucket: "b", RedshiftIAMRole: "r"}, false},
		{"redshift without credentials", Config{Dialect: warehouse.Redshift, S3Bucket: "b"}, true},
		{"s3 without bucket", Config{Dialect: warehouse.Postgres}, true},
	}
	for _, c := range cases {
		var s3c *s3.Client
		if c.s3 {
			s3c = s3.New(s3.Options{Region: "us-east-1"})
		}
		if _, err := New(c.cfg, nil, s3c, nil, nil); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if _, err := New(Config{Dialect: warehouse.Postgres}, nil, nil, nil, nil); err != nil {
		t.Errorf("postgres without s3: %v", err)
	}
}
