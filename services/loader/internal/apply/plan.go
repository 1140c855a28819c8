package apply

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/stage"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// plan is everything a window sends to the warehouse.
type plan struct {
	before      []string // Redshift VARCHAR widening, outside the transaction
	segs        []segPlan
	objects     []string // staged S3 keys
	stagedBytes int64
}

type segPlan struct {
	truncate bool
	ddl      []string
	steps    []*step
}

// step is one staging table: created, loaded, used by stmts, dropped.
type step struct {
	kind     string // delete, upsert, update, move, oldkey
	tmp      string
	tmpCols  []warehouse.Column
	rows     [][]stage.Value
	colset   []string // update groups: the known columns (object key hash)
	stmts    []string
	file     stage.File
	manifest string
}

// stageParallel is how many staging files of a window are encoded and
// uploaded at once.
const stageParallel = 4

func tempName(seg int, kind string, n int) string {
	return fmt.Sprintf("redms_s%d_%s%d", seg, kind, n)
}

// holds reports whether a column of type have takes every value of type
// want unchanged (a wider VARCHAR, NUMERIC, integer or float), so it is kept
// rather than narrowed.
func holds(have, want typemap.Target) bool {
	rank := func(k typemap.Kind) (family, size int) {
		switch k {
		case typemap.KindSmallInt:
			return 1, 1
		case typemap.KindInteger:
			return 1, 2
		case typemap.KindBigInt:
			return 1, 3
		case typemap.KindReal:
			return 2, 1
		case typemap.KindDouble:
			return 2, 2
		}
		return 0, 0
	}
	if have.Kind == typemap.KindVarchar && want.Kind == typemap.KindVarchar {
		return have.Length >= want.Length
	}
	if have.Kind == typemap.KindNumeric && want.Kind == typemap.KindNumeric {
		return have.Scale >= want.Scale && have.Precision-have.Scale >= want.Precision-want.Scale
	}
	hf, hs := rank(have.Kind)
	wf, ws := rank(want.Kind)
	return hf != 0 && hf == wf && hs >= ws
}

func indexCol(cols []warehouse.Column, name string) int {
	return slices.IndexFunc(cols, func(c warehouse.Column) bool { return c.Name == name })
}

// fit converts a source value to what the column receives, counting rules.
func (x *window) fit(t typemap.Target, c fold.Column) stage.Value {
	v, null, rule := typemap.Fit(t, c.Value, c.Null)
	if rule != "" {
		x.res.Adjusted[rule]++
	}
	return stage.Value{Text: v, Null: null}
}

// plan decides DDL and staging tables segment by segment, tracking the
// target's columns as the DDL would leave them.
func (x *window) plan(folded fold.Result, cur []warehouse.Column, schemaExists bool) (*plan, error) {
	d := x.a.cfg.Dialect
	opt := typemap.Options{NumericDefault: x.a.cfg.NumericDefault}
	p := &plan{}

	// Redshift widens a VARCHAR only outside a transaction: size every
	// VARCHAR column once for the longest the window needs.
	widest := map[string]int{}
	for _, s := range folded.Segments {
		for _, c := range s.Columns {
			if t := typemap.Map(d, c.Type, opt); t.Kind == typemap.KindVarchar {
				widest[c.Name] = max(widest[c.Name], t.Length)
			}
		}
	}
	desired := func(c fold.Column) warehouse.Column {
		t := typemap.Map(d, c.Type, opt)
		if d == warehouse.Redshift && t.Kind == typemap.KindVarchar {
			t = typemap.Make(typemap.KindVarchar, 0, 0, widest[c.Name])
		}
		return warehouse.Column{Name: c.Name, Type: t}
	}
	cols := slices.Clone(cur)
	if d == warehouse.Redshift {
		for i, c := range cols {
			if w, ok := widest[c.Name]; ok && c.Type.Kind == typemap.KindVarchar && c.Type.Length < w {
				p.before = append(p.before, warehouse.WidenVarchar(x.tgt, c.Name, w))
				cols[i].Type = typemap.Make(typemap.KindVarchar, 0, 0, w)
			}
		}
	}
	exists := cur != nil

	for si, s := range folded.Segments {
		sp := segPlan{truncate: s.Truncate && exists}
		if sp.truncate {
			x.res.Rows["truncate"]++
		}
		if s.Columns != nil {
			want := make([]warehouse.Column, len(s.Columns))
			for i, c := range s.Columns {
				if err := warehouse.CheckIdent(c.Name); err != nil {
					return nil, x.park(err.Error(), err)
				}
				want[i] = desired(c)
			}
			if !exists {
				if !schemaExists {
					sp.ddl = append(sp.ddl, warehouse.CreateSchema(x.tgt.Schema))
				}
				sp.ddl = append(sp.ddl, warehouse.CreateTable(x.tgt, want))
				cols, exists = slices.Clone(want), true
			} else {
				for _, w := range want {
					j := indexCol(cols, w.Name)
					switch {
					case j < 0:
						sp.ddl = append(sp.ddl, warehouse.AddColumn(x.tgt, w))
						cols = append(cols, w)
					case cols[j].Type.SQL == w.Type.SQL:
					case holds(cols[j].Type, w.Type):
						// keep the wider column: every value still fits
					default:
						sp.ddl = append(sp.ddl, warehouse.Retype(d, x.tgt, w)...)
						cols = append(slices.Delete(cols, j, j+1), w)
					}
				}
				for j := 0; j < len(cols); {
					if indexCol(want, cols[j].Name) < 0 {
						sp.ddl = append(sp.ddl, warehouse.DropColumn(x.tgt, cols[j].Name))
						cols = slices.Delete(cols, j, j+1)
						continue
					}
					j++
				}
			}
		}
		if exists {
			if err := x.planData(&sp, si, s, cols); err != nil {
				return nil, err
			}
		}
		p.segs = append(p.segs, sp)
	}
	return p, nil
}

// planData stages a segment's deletes, upserts and updates against the
// target's columns cols.
func (x *window) planData(sp *segPlan, si int, s fold.Segment, cols []warehouse.Column) error {
	full := x.spec.Full
	// keyCols: the target columns the key compares (FULL: every column).
	var keyCols []warehouse.Column
	if full {
		keyCols = cols
	} else {
		for _, k := range x.spec.Columns {
			j := indexCol(cols, k)
			if j < 0 {
				err := fmt.Errorf("key column %q is not a column of %s", k, x.target)
				return x.park(err.Error(), err)
			}
			keyCols = append(keyCols, cols[j])
		}
	}
	kNames := func(n int) []warehouse.Column {
		out := make([]warehouse.Column, n)
		for i := range n {
			out[i] = warehouse.Column{Name: fmt.Sprintf("k%d", i), Type: keyCols[i].Type}
		}
		return out
	}

	if len(s.Deletes) > 0 {
		st := &step{kind: "delete", tmp: tempName(si, "delete", 0), tmpCols: kNames(len(keyCols))}
		for _, key := range s.Deletes {
			row := make([]stage.Value, len(keyCols))
			for i, kc := range keyCols {
				j := slices.IndexFunc(key, func(c fold.Column) bool { return c.Name == kc.Name })
				if j < 0 {
					row[i] = stage.Value{Null: true} // FULL: old rows omit null columns
					continue
				}
				row[i] = x.fit(kc.Type, key[j])
			}
			st.rows = append(st.rows, row)
		}
		match := make([]warehouse.Match, len(keyCols))
		for i, kc := range keyCols {
			match[i] = warehouse.Match{Target: kc.Name, Temp: st.tmpCols[i].Name}
		}
		st.stmts = []string{warehouse.DeleteUsing(x.tgt, st.tmp, match, full)}
		x.res.Rows["delete"] += len(st.rows)
		sp.steps = append(sp.steps, st)
	}

	if len(s.Upserts) > 0 {
		st := &step{kind: "upsert", tmp: tempName(si, "upsert", 0)}
		types := make([]typemap.Target, len(s.Columns))
		all := make([]warehouse.Match, len(s.Columns))
		for i, c := range s.Columns {
			types[i] = cols[indexCol(cols, c.Name)].Type
			st.tmpCols = append(st.tmpCols, warehouse.Column{Name: fmt.Sprintf("c%d", i), Type: types[i]})
			all[i] = warehouse.Match{Target: c.Name, Temp: st.tmpCols[i].Name}
		}
		for _, r := range s.Upserts {
			row := make([]stage.Value, len(r))
			for i, c := range r {
				row[i] = x.fit(types[i], c)
			}
			st.rows = append(st.rows, row)
		}
		var match []warehouse.Match
		for _, kc := range keyCols {
			match = append(match, all[slices.IndexFunc(all, func(m warehouse.Match) bool { return m.Target == kc.Name })])
		}
		st.stmts = []string{
			warehouse.DeleteUsing(x.tgt, st.tmp, match, full),
			warehouse.InsertSelect(x.tgt, all, st.tmp),
		}
		x.res.Rows["insert"] += len(st.rows)
		sp.steps = append(sp.steps, st)
	}

	for gi, g := range s.Updates {
		kind := "update"
		if g.Move {
			kind = "move"
		}
		st := &step{kind: kind, tmp: tempName(si, kind, gi), tmpCols: kNames(len(keyCols)), colset: g.Columns}
		keys := make([]warehouse.Match, len(keyCols))
		for i, kc := range keyCols {
			keys[i] = warehouse.Match{Target: kc.Name, Temp: st.tmpCols[i].Name}
		}
		set := make([]warehouse.Match, len(g.Columns))
		types := make([]typemap.Target, len(g.Columns))
		for i, name := range g.Columns {
			types[i] = cols[indexCol(cols, name)].Type
			tc := warehouse.Column{Name: fmt.Sprintf("c%d", i), Type: types[i]}
			st.tmpCols = append(st.tmpCols, tc)
			set[i] = warehouse.Match{Target: name, Temp: tc.Name}
		}
		for _, r := range g.Rows {
			row := make([]stage.Value, 0, len(st.tmpCols))
			for i, kc := range keyCols {
				row = append(row, x.fit(kc.Type, r.Match[i]))
			}
			for i, c := range r.Set {
				row = append(row, x.fit(types[i], c))
			}
			st.rows = append(st.rows, row)
		}
		if !g.Move {
			st.stmts = append(st.stmts, warehouse.UpdateFrom(x.tgt, set, st.tmp, keys))
			x.res.Rows["update"] += len(st.rows)
			sp.steps = append(sp.steps, st)
			continue
		}
		// A key change whose row the warehouse must complete (DESIGN §4:
		// delete the old key, upsert the new row). Where the new key exists
		// (a replay finds the move done) its known columns are set; the
		// rest move the old row to the new key; then the old key is
		// deleted either way, or a replayed INSERT of the old key would
		// leave that row behind for ever.
		var newKey []warehouse.Match
		for _, kc := range keyCols {
			newKey = append(newKey, set[slices.IndexFunc(set, func(m warehouse.Match) bool { return m.Target == kc.Name })])
		}
		st.stmts = append(st.stmts,
			warehouse.UpdateFrom(x.tgt, set, st.tmp, newKey),
			warehouse.DeleteTempWhereExists(st.tmp, x.tgt, newKey),
			warehouse.UpdateFrom(x.tgt, set, st.tmp, keys),
		)
		x.res.Rows["update"] += len(st.rows)
		sp.steps = append(sp.steps, st, oldKeys(si, gi, st.rows, keyCols, x.tgt))
	}
	return nil
}

// oldKeys is the step that deletes the old keys of a move group after the
// move: a moved row no longer has its old key, so only rows a replay
// re-created there go. It stages the keys (the first len(keyCols) values of
// the move step's rows) apart, as the move drops its staging rows whose new
// key exists.
func oldKeys(si, gi int, moveRows [][]stage.Value, keyCols []warehouse.Column, tgt warehouse.Table) *step {
	st := &step{kind: "oldkey", tmp: tempName(si, "oldkey", gi)}
	match := make([]warehouse.Match, len(keyCols))
	for i, kc := range keyCols {
		st.tmpCols = append(st.tmpCols, warehouse.Column{Name: fmt.Sprintf("k%d", i), Type: kc.Type})
		match[i] = warehouse.Match{Target: kc.Name, Temp: st.tmpCols[i].Name}
	}
	for _, r := range moveRows {
		st.rows = append(st.rows, r[:len(keyCols):len(keyCols)])
	}
	st.stmts = []string{warehouse.DeleteUsing(tgt, st.tmp, match, false)}
	return st
}

// stage encodes every step's rows and uploads them.
func (x *window) stage(ctx context.Context, p *plan) error {
	first, last := x.w.Msgs[0].Seq, x.w.Msgs[len(x.w.Msgs)-1].Seq
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(stageParallel)
	for si := range p.segs {
		for _, st := range p.segs[si].steps {
			g.Go(func() error {
				f, err := stage.Encode(st.rows, x.a.cfg.PartBytes)
				if err != nil {
					return fmt.Errorf("encode %s rows of %s: %w", st.kind, x.target, err)
				}
				st.file, st.rows = f, nil
				mu.Lock()
				p.stagedBytes += f.Bytes()
				mu.Unlock()
				if x.a.store == nil {
					return nil
				}
				dir := stage.Dir(x.a.cfg.S3Prefix, x.w.Table, first, last, si, st.kind, st.colset)
				keys, url, err := x.a.store.Put(gctx, dir, &st.file)
				mu.Lock()
				p.objects = append(p.objects, keys...)
				mu.Unlock()
				if err != nil {
					return fmt.Errorf("stage %s rows of %s: %w", st.kind, x.target, err)
				}
				st.manifest = url
				return nil
			})
		}
	}
	return g.Wait()
}

// transact runs the window's one transaction.
func (x *window) transact(ctx context.Context, conn *pgx.Conn, p *plan, applied int64) error {
	d := x.a.cfg.Dialect
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin on %s: %w", x.target, err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit this is a no-op
	exec := func(action, sql string) error {
		if _, err := tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			return x.classify(action, err)
		}
		return nil
	}
	now := x.a.now()
	// Two owners racing to create the row collide on its primary key: that
	// is worth a retry, never a park.
	if _, err := tx.Exec(ctx, warehouse.EnsureWatermark(d, x.a.cfg.StateSchema, x.target, now), pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("create watermark row of %s: %w", x.target, err)
	}
	locked, err := readSeq(ctx, tx.Conn(), warehouse.ReadWatermark(d, x.a.cfg.StateSchema, x.target))
	if err != nil {
		return x.classify("read watermark", err)
	}
	if locked != applied {
		return fmt.Errorf("watermark of %s moved from %d to %d while staging: another owner applied; retry", x.target, applied, locked)
	}
	for _, sp := range p.segs {
		if sp.truncate {
			if err := exec("empty table on truncate", warehouse.DeleteAll(x.tgt)); err != nil {
				return err
			}
		}
		for _, stmt := range sp.ddl {
			if err := exec("alter table", stmt); err != nil {
				return err
			}
		}
		for _, st := range sp.steps {
			if err := x.runStep(ctx, tx, st, exec); err != nil {
				return err
			}
		}
	}
	last := x.w.Msgs[len(x.w.Msgs)-1]
	if err := exec("advance watermark", warehouse.AdvanceWatermark(d, x.a.cfg.StateSchema, x.target, last.Seq, x.res.LastLSN, now)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return x.classify("commit", err)
	}
	return nil
}

func (x *window) runStep(ctx context.Context, tx pgx.Tx, st *step, exec func(string, string) error) error {
	if err := exec("create staging table", warehouse.CreateTemp(st.tmp, st.tmpCols)); err != nil {
		return err
	}
	names := make([]string, len(st.tmpCols))
	for i, c := range st.tmpCols {
		names[i] = c.Name
	}
	var loaded int64
	if x.a.cfg.Dialect == warehouse.Redshift {
		cred := warehouse.Credentials{IAMRole: x.a.cfg.RedshiftIAMRole, AccessKeyID: x.a.cfg.S3AccessKeyID, SecretAccessKey: x.a.cfg.S3SecretAccessKey}
		if err := exec("copy "+st.kind+" rows", warehouse.CopyFromS3(st.tmp, names, st.manifest, cred, x.a.cfg.S3Region, st.file.NullMarker)); err != nil {
			return err
		}
		n, err := readSeq(ctx, tx.Conn(), warehouse.LastCopyCount())
		if err != nil {
			return x.classify("read copy count", err)
		}
		loaded = n
	} else {
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, st.file.CSV(), warehouse.CopyFromStdin(st.tmp, names, st.file.NullMarker))
		if err != nil {
			return x.classify("copy "+st.kind+" rows", err)
		}
		loaded = tag.RowsAffected()
	}
	if loaded != int64(st.file.Rows) {
		return fmt.Errorf("copy %s rows into %s: loaded %d rows, staged %d", st.kind, x.target, loaded, st.file.Rows)
	}
	for _, stmt := range st.stmts {
		if err := exec(st.kind+" rows", stmt); err != nil {
			return err
		}
	}
	return exec("drop staging table", warehouse.DropTemp(st.tmp))
}
