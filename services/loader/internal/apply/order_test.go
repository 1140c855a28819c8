package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testinfra/testenv"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// posScenarios are the scenarios of ordering by source position
// (docs/DESIGN.md §2.3); runScenarios runs them in both dialects.
func posScenarios(t *testing.T, e *env) {
	t.Run("ordered by position, not arrival", func(t *testing.T) {
		e.t = t
		w := e.window("pos_order",
			pk(`table public.pos_order: INSERT: id[integer]:1 v[text]:'v1'`),
			pk(`table public.pos_order: UPDATE: id[integer]:1 v[text]:'v2'`),
			pk(`table public.pos_order: UPDATE: id[integer]:1 v[text]:'v3'`),
		)
		w.Msgs[0], w.Msgs[2] = w.Msgs[2], w.Msgs[0]
		dup := w.Msgs[1]
		dup.Seq = 1 << 40
		w.Msgs = append(w.Msgs, dup) // the same position stored twice
		res := e.apply(w)
		if !res.Applied || len(res.Held) != 0 || res.Replays != 1 || res.Position != w.Msgs[0].Meta.Pos {
			t.Errorf("result %+v", res)
		}
		e.expect("pos_order", `{"id":1,"v":"v3"}`)
	})
	t.Run("held until its prev arrives", func(t *testing.T) {
		e.t = t
		first := e.window("pos_hold", pk(`table public.pos_hold: INSERT: id[integer]:1 v[text]:'a'`))
		e.apply(first)
		gap := e.window("pos_hold", pk(`table public.pos_hold: INSERT: id[integer]:2 v[text]:'b'`))
		later := e.window("pos_hold",
			pk(`table public.pos_hold: UPDATE: id[integer]:1 v[text]:'c'`),
			pk(`table public.pos_hold: INSERT: id[integer]:3 v[text]:'d'`),
		)
		res := e.apply(later)
		if res.Applied || fmt.Sprint(res.Held) != "[0 1]" || res.WaitFor != gap.Msgs[0].Meta.Pos || res.HeldAt != later.Msgs[0].Meta.Pos || res.Partial {
			t.Errorf("window with a gap: %+v", res)
		}
		e.expect("pos_hold", `{"id":1,"v":"a"}`)
		// The next window: the held changes carried, then the missing one.
		next := Window{Table: later.Table, Msgs: append(later.Msgs, gap.Msgs...)}
		res = e.apply(next)
		if !res.Applied || len(res.Held) != 0 || res.Position != later.Msgs[1].Meta.Pos {
			t.Errorf("window that closes the gap: %+v", res)
		}
		e.expect("pos_hold", `{"id":1,"v":"c"}
{"id":2,"v":"b"}
{"id":3,"v":"d"}`)
		// A replay of all of it changes nothing.
		res = e.apply(Window{Table: later.Table, Msgs: append(append(first.Msgs, gap.Msgs...), later.Msgs...)})
		if res.Applied || res.Replays != 4 {
			t.Errorf("replay: %+v", res)
		}
	})
	t.Run("split record", func(t *testing.T) {
		e.t = t
		body := `table public.pos_split: INSERT: id[integer]:1 v[text]:'` + strings.Repeat("é0123456789", 50) + `'`
		w := e.window("pos_split", pk(body))
		whole := w.Msgs[0]
		parts := func(ks ...int) Window {
			out := Window{Table: w.Table}
			size := len(body)/3 + 1
			for _, k := range ks {
				meta := e.meta(pk(body))
				meta.Pos, meta.PosLast, meta.Prev, meta.HasPrev = whole.Meta.Pos, whole.Meta.Pos, whole.Meta.Prev, whole.Meta.HasPrev
				meta.Part, meta.Parts = k, 3
				e.seq++
				out.Msgs = append(out.Msgs, NewMsg(e.seq, meta, []byte(body[(k-1)*size:min(k*size, len(body))])))
			}
			return out
		}
		res := e.apply(parts(3, 1))
		if res.Applied || fmt.Sprint(res.Held) != "[0 1]" || !res.Partial || res.WaitFor != whole.Meta.Pos {
			t.Errorf("parts missing: %+v", res)
		}
		res = e.apply(parts(2, 3, 1, 2))
		if !res.Applied || len(res.Held) != 0 || res.Replays != 1 {
			t.Errorf("parts complete: %+v", res)
		}
		e.expect("pos_split", `{"id":1,"v":"`+strings.Repeat("é0123456789", 50)+`"}`)
	})
	t.Run("column added with a default fills existing rows", func(t *testing.T) {
		e.t = t
		e.apply(e.window("pos_default",
			pk(`table public.pos_default: INSERT: id[integer]:1`),
			pk(`table public.pos_default: INSERT: id[integer]:2`),
		))
		yes, amount := "it's", "12.345"
		w := e.window("pos_default",
			pk(`table public.pos_default: INSERT: id[integer]:3`),
			pk(`table public.pos_default: INSERT: id[integer]:4 flag[text]:'no' amount[numeric]:1 gone[integer]:null`),
		)
		w.Msgs[1].Meta.Extra = &Extra{Missing: map[string]*string{"flag": &yes, "amount": &amount, "gone": nil}}
		e.apply(w)
		e.expect("pos_default", `{"id":1,"flag":"it's","amount":12.34500000,"gone":null}
{"id":2,"flag":"it's","amount":12.34500000,"gone":null}
{"id":3,"flag":"it's","amount":12.34500000,"gone":null}
{"id":4,"flag":"no","amount":1.00000000,"gone":null}`)
	})
	t.Run("truncate of one partition", func(t *testing.T) {
		e.t = t
		e.apply(e.window("pos_part",
			pk(`table public.pos_part_a: INSERT: id[integer]:1 region[text]:'eu' at[date]:'2023-01-15'`),
			pk(`table public.pos_part_a: INSERT: id[integer]:2 region[text]:'eu' at[date]:'2023-02-01'`),
			pk(`table public.pos_part_a: INSERT: id[integer]:3 region[text]:null at[date]:'2022-01-01'`),
			pk(`table public.pos_part_a: INSERT: id[integer]:4 region[text]:'us' at[date]:'2023-01-15'`),
		))
		v := func(s string) walheader.Bound { return walheader.Bound{Kind: walheader.BoundValue, Value: s} }
		w := e.window("pos_part",
			pk(`table public.pos_part_eu: TRUNCATE: (no-flags)`),
			pk(`table public.pos_part: INSERT: id[integer]:5 region[text]:'eu' at[date]:'2023-01-20'`),
		)
		w.Msgs[0].Meta.Extra = &Extra{Partition: &walheader.Partition{Leaf: "public.pos_part_eu", Levels: []walheader.PartitionLevel{
			{Strategy: walheader.StrategyList, Columns: []string{"region"}, In: []walheader.Bound{v("eu"), {Kind: walheader.BoundNull}}},
			{Strategy: walheader.StrategyRange, Columns: []string{"at"}, From: []walheader.Bound{v("2023-01-01")}, To: []walheader.Bound{v("2023-02-01")}},
		}}}
		res := e.apply(w)
		if res.Rows["truncate"] != 1 {
			t.Errorf("result %+v", res)
		}
		e.expect("pos_part", `{"id":2,"region":"eu","at":"2023-02-01"}
{"id":3,"region":null,"at":"2022-01-01"}
{"id":4,"region":"us","at":"2023-01-15"}
{"id":5,"region":"eu","at":"2023-01-20"}`)
		hash := e.window("pos_part", pk(`table public.pos_part_h: TRUNCATE: (no-flags)`))
		hash.Msgs[0].Meta.Extra = &Extra{Partition: &walheader.Partition{Leaf: "public.pos_part_h", Unbounded: "a hash partition"}}
		_, err := e.ap.Apply(context.Background(), hash)
		var pe *ParkError
		if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "public.pos_part_h") || !strings.Contains(pe.Reason, "a hash partition") || !strings.Contains(pe.Reason, "snapshot") {
			t.Errorf("unbounded partition: %v", err)
		}
		missing := e.window("pos_part", pk(`table public.pos_part_x: TRUNCATE: (no-flags)`))
		missing.Msgs[0].Meta.Extra = &Extra{Partition: &walheader.Partition{Leaf: "public.pos_part_x", Levels: []walheader.PartitionLevel{
			{Strategy: walheader.StrategyList, Columns: []string{"nosuch"}, In: []walheader.Bound{v("1")}},
		}}}
		missing.Msgs[0].Meta.HasPrev = false // after the parked one
		if _, err := e.ap.Apply(context.Background(), missing); !errors.As(err, &pe) || !strings.Contains(pe.Reason, `"nosuch"`) {
			t.Errorf("bound column missing from the target: %v", err)
		}
		e.expect("pos_part", `{"id":2,"region":"eu","at":"2023-02-01"}
{"id":3,"region":null,"at":"2022-01-01"}
{"id":4,"region":"us","at":"2023-01-15"}
{"id":5,"region":"eu","at":"2023-01-20"}`)
	})
	t.Run("messages without positions", func(t *testing.T) {
		e.t = t
		old := e.legacyWindow("pos_legacy",
			pk(`table public.pos_legacy: INSERT: id[integer]:1 v[text]:'a'`),
			pk(`table public.pos_legacy: UPDATE: id[integer]:1 v[text]:'b'`),
		)
		res := e.apply(old)
		if !res.Applied || res.LegacySeq != old.Msgs[1].Seq || !res.Position.IsZero() {
			t.Errorf("legacy window: %+v", res)
		}
		if res := e.apply(old); res.Applied || res.Replays != 2 {
			t.Errorf("legacy replay: %+v", res)
		}
		// The upgraded capture's first message has no prev; legacy messages
		// in the same window go first, whatever their place.
		tail := e.legacyWindow("pos_legacy", pk(`table public.pos_legacy: UPDATE: id[integer]:1 v[text]:'c'`))
		pos := e.window("pos_legacy", pk(`table public.pos_legacy: UPDATE: id[integer]:1 v[text]:'d'`))
		res = e.apply(Window{Table: pos.Table, Msgs: append(pos.Msgs, tail.Msgs...)})
		if !res.Applied || res.Position != pos.Msgs[0].Meta.Pos || res.LegacySeq != tail.Msgs[0].Seq {
			t.Errorf("mixed window: %+v", res)
		}
		e.expect("pos_legacy", `{"id":1,"v":"d"}`)
		// Once a position is applied every legacy message is below it.
		late := e.legacyWindow("pos_legacy", pk(`table public.pos_legacy: UPDATE: id[integer]:1 v[text]:'late'`))
		if res := e.apply(late); res.Applied || res.Replays != 1 {
			t.Errorf("legacy message after positions: %+v", res)
		}
		e.expect("pos_legacy", `{"id":1,"v":"d"}`)
	})
}

// Messages written before source positions are fenced by the watermark of
// the loader before them, so binaries can be replaced with a backlog in the
// stream; two source tables mapped to one target park.
func TestStateAcrossSourcesAndVersions(t *testing.T) {
	pg := testenv.StartPostgres(t)
	pool := testenv.Pool(t, pg.CreateDatabase(t, "wh"))
	e := newEnv(t, warehouse.Postgres, pool, pool, testenv.StartS3(t))
	e.s3.CreateBucket(t, "stage")
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE public.redms_applied (target varchar(512) PRIMARY KEY, last_seq bigint NOT NULL, last_lsn varchar(32) NOT NULL, applied_at timestamp NOT NULL);
		CREATE TABLE public.upgraded (id integer, v varchar(65535));
		INSERT INTO public.upgraded VALUES (1, 'applied by the old loader');
		INSERT INTO public.redms_applied VALUES ('"public"."upgraded"', 2, '0/1002', now())`); err != nil {
		t.Fatal(err)
	}
	backlog := e.legacyWindow("upgraded",
		pk(`table public.upgraded: INSERT: id[integer]:1 v[text]:'applied by the old loader'`),
		pk(`table public.upgraded: UPDATE: id[integer]:1 v[text]:'a'`),
		pk(`table public.upgraded: INSERT: id[integer]:2 v[text]:'b'`),
	)
	backlog.Msgs[0].Meta.Keys = nil // messages before keys were sent: the "id" default
	res := e.apply(backlog)
	if !res.Applied || res.Replays != 2 || res.Rows["insert"] != 1 {
		t.Errorf("backlog after an upgrade: %+v", res)
	}
	e.expect("upgraded", `{"id":1,"v":"applied by the old loader"}
{"id":2,"v":"b"}`)

	e.apply(e.window("orders", pk(`table public.orders: INSERT: id[integer]:1 v[text]:'public'`)))
	other := e.window("orders", pk(`table sales.orders: INSERT: id[integer]:2 v[text]:'sales'`))
	other.Table = subject.Table{DB: "shop", Schema: "sales", Name: "orders"}
	other.Msgs[0].Meta.HasPrev = false
	cfg := e.ap.cfg
	cfg.TargetSchema = "public"
	folded, err := New(cfg, pool, e.s3c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = folded.Apply(ctx, other)
	var pe *ParkError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reason, "shop.public.orders") || !strings.Contains(pe.Reason, "shop.sales.orders") || !strings.Contains(pe.Reason, `"public"."orders"`) {
		t.Fatalf("second source of one target: %v", err)
	}
	e.expect("orders", `{"id":1,"v":"public"}`)
}
