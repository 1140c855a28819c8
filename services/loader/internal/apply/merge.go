package apply

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/stage"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// alter is the DDL that turns the target's columns cols into want, a
// segment's columns, and the columns it leaves. A column is added (filled
// with its missing value, Redms-Missing), retyped where no wider column
// holds it, dropped when the source no longer has it. On Redshift, where a
// retype or drop hits a DISTKEY or SORTKEY column (which Redshift refuses),
// the table is rebuilt into the new shape instead, with the keys the loader
// gives a table it creates; rebuilt says so.
func (x *job) alter(s fold.Segment, cols, want []warehouse.Column, attr func(string) (colAttrs, error)) (after []warehouse.Column, ddl []string, rebuilt *warehouse.TableKeys, err error) {
	d := x.a.cfg.Dialect
	after = slices.Clone(cols)  // as the statements leave it (a Redshift retype moves the column last)
	shape := slices.Clone(cols) // as a rebuild leaves it (in place)
	var fills []string
	rebuild := false
	keyed := func(name string) error {
		if d != warehouse.Redshift || rebuild {
			return nil
		}
		a, err := attr(name)
		rebuild = a.keyed()
		return err
	}
	for _, w := range want {
		j := indexCol(after, w.Name)
		switch {
		case j < 0:
			ddl = append(ddl, warehouse.AddColumn(x.tgt, w))
			after, shape = append(after, w), append(shape, w)
			if v := s.Missing[w.Name]; v != nil {
				// The source filled its existing rows without WAL.
				if f := x.fit(w.Type, fold.Column{Name: w.Name, Value: *v}); !f.Null {
					fill := warehouse.FillColumn(d, x.tgt, w.Name, f.Text)
					ddl, fills = append(ddl, fill), append(fills, fill)
				}
			}
		case after[j].Type.SQL == w.Type.SQL:
		case holds(after[j].Type, w.Type):
			// keep the wider column: every value still fits
		default:
			if err := keyed(w.Name); err != nil {
				return nil, nil, nil, err
			}
			ddl = append(ddl, warehouse.Retype(d, x.tgt, w)...)
			after = append(slices.Delete(after, j, j+1), w)
			shape[indexCol(shape, w.Name)] = w
		}
	}
	for j := 0; j < len(after); {
		name := after[j].Name
		if indexCol(want, name) >= 0 {
			j++
			continue
		}
		if err := keyed(name); err != nil {
			return nil, nil, nil, err
		}
		ddl = append(ddl, warehouse.DropColumn(x.tgt, name))
		after = slices.Delete(after, j, j+1)
		k := indexCol(shape, name)
		shape = slices.Delete(shape, k, k+1)
	}
	if !rebuild {
		return after, ddl, nil, nil
	}
	k := x.tableKeys(shape)
	x.log.Warn("rebuilding the target: a column change hits a distribution or sort key column, which Redshift cannot alter",
		"lsn", x.res.FirstLSN+".."+x.res.LastLSN)
	return shape, append(warehouse.Rebuild(x.tgt, cols, shape, k), fills...), &k, nil
}

// planData stages a segment's inserts, deletes, upserts and updates against
// the target's columns cols, each a merge step reading its rows of the
// window's staging table.
func (x *job) planData(p *plan, sp *segPlan, s fold.Segment, cols []warehouse.Column) error {
	st := &p.stage
	full := x.spec.Full
	// keyCols: the target columns the key compares (FULL: every column).
	var keyCols []warehouse.Column
	switch {
	case len(s.Deletes)+len(s.Upserts)+len(s.Updates) == 0:
		// keyless inserts only
	case full:
		keyCols = cols
	default:
		for _, k := range x.spec.Columns {
			j := indexCol(cols, k)
			if j < 0 {
				err := fmt.Errorf("key column %q is not a column of %s", k, x.target)
				return x.park(err.Error(), err)
			}
			keyCols = append(keyCols, cols[j])
		}
	}
	if len(keyCols) > 0 && st.distKey == "" && x.a.cfg.Dialect == warehouse.Redshift {
		if k := x.tableKeys(cols); k.DistKey() == keyCols[0].Name {
			st.distKey = st.name(st.col(asKey, keyCols[0]))
		}
	}
	exact := func(c warehouse.Column) bool { return c.Type.Kind == typemap.KindVarchar }
	// keyAt: the row positions of the key columns; keys: the key match.
	keyAt := make([]int, len(keyCols))
	keys := make([]warehouse.Match, len(keyCols))
	isKey := map[string]bool{}
	for i, kc := range keyCols {
		keyAt[i] = st.col(asKey, kc)
		keys[i] = warehouse.Match{Target: kc.Name, Temp: st.name(keyAt[i]), Exact: exact(kc)}
		isKey[kc.Name] = true
	}
	target := func(name string) warehouse.Column { return cols[indexCol(cols, name)] }
	// rowCols stages whole rows of the segment: key columns as keys (when
	// keyed), the others as values.
	rowCols := func(keyed bool) ([]int, []warehouse.Match) {
		at := make([]int, len(s.Columns))
		all := make([]warehouse.Match, len(s.Columns))
		for i, c := range s.Columns {
			at[i] = st.col(keyed && isKey[c.Name], target(c.Name))
			all[i] = warehouse.Match{Target: c.Name, Temp: st.name(at[i])}
		}
		return at, all
	}
	putRow := func(step int, at []int, r []fold.Column) error {
		row := st.row(step)
		for i, c := range r {
			row[at[i]] = x.fit(st.typ(at[i]), c)
		}
		return x.add(st, row)
	}
	putKeys := func(step int, match []fold.Column) error {
		row := st.row(step)
		for i, kc := range keyCols {
			row[keyAt[i]] = x.fit(kc.Type, match[i])
		}
		return x.add(st, row)
	}

	if len(s.Inserts) > 0 {
		step := st.next()
		at, all := rowCols(false)
		for _, r := range s.Inserts {
			if err := putRow(step, at, r); err != nil {
				return err
			}
		}
		sp.stmts = append(sp.stmts, warehouse.InsertSelect(x.tgt, all, step))
		x.res.Rows["insert"] += len(s.Inserts)
	}

	if len(s.Deletes) > 0 {
		step := st.next()
		for _, key := range s.Deletes {
			row := st.row(step)
			for i, kc := range keyCols {
				j := slices.IndexFunc(key, func(c fold.Column) bool { return c.Name == kc.Name })
				if j >= 0 { // else NULL: FULL old rows omit null columns
					row[keyAt[i]] = x.fit(kc.Type, key[j])
				}
			}
			if err := x.add(st, row); err != nil {
				return err
			}
		}
		sp.stmts = append(sp.stmts, warehouse.DeleteUsing(x.tgt, step, keys, full))
		x.res.Rows["delete"] += len(s.Deletes)
	}

	if len(s.Upserts) > 0 {
		step := st.next()
		at, all := rowCols(true)
		for _, r := range s.Upserts {
			if err := putRow(step, at, r); err != nil {
				return err
			}
		}
		sp.stmts = append(sp.stmts, warehouse.DeleteUsing(x.tgt, step, keys, full), warehouse.InsertSelect(x.tgt, all, step))
		x.res.Rows["insert"] += len(s.Upserts)
	}

	for _, g := range s.Updates {
		step := st.next()
		setAt := make([]int, len(g.Columns))
		set := make([]warehouse.Match, len(g.Columns))
		for i, name := range g.Columns {
			setAt[i] = st.col(asValue, target(name))
			set[i] = warehouse.Match{Target: name, Temp: st.name(setAt[i])}
		}
		for _, r := range g.Rows {
			row := st.row(step)
			for i, kc := range keyCols {
				row[keyAt[i]] = x.fit(kc.Type, r.Match[i])
			}
			for i, c := range r.Set {
				row[setAt[i]] = x.fit(st.typ(setAt[i]), c)
			}
			if err := x.add(st, row); err != nil {
				return err
			}
		}
		x.res.Rows["update"] += len(g.Rows)
		if !g.Move {
			sp.stmts = append(sp.stmts, warehouse.UpdateFrom(x.tgt, set, step, keys))
			continue
		}
		// A key change whose row the warehouse must complete (docs/DESIGN.md §4:
		// delete the old key, upsert the new row). Where the new key exists
		// (a replay finds the move done) its known columns are set; the
		// rest move the old row to the new key; then the old key is
		// deleted either way, or a replayed INSERT of the old key would
		// leave that row behind for ever. The old keys are staged again,
		// as a step of their own: the move drops its rows whose new key
		// exists.
		newKey := make([]warehouse.Match, len(keyCols))
		for i, kc := range keyCols {
			newKey[i] = set[slices.IndexFunc(set, func(m warehouse.Match) bool { return m.Target == kc.Name })]
			newKey[i].Exact = exact(kc)
		}
		old := st.next()
		for _, r := range g.Rows {
			if err := putKeys(old, r.Match); err != nil {
				return err
			}
		}
		sp.stmts = append(sp.stmts,
			warehouse.UpdateFrom(x.tgt, set, step, newKey),
			warehouse.DeleteStageWhereExists(step, x.tgt, newKey),
			warehouse.UpdateFrom(x.tgt, set, step, keys),
			warehouse.DeleteUsing(x.tgt, old, keys, false),
		)
	}
	return nil
}

// add stages row, first cutting it to fit COPY's 4 MB: its largest values
// lose what must go (text keeps its first bytes, another type becomes
// NULL), counted once per row, the columns named in a warning. Key values
// are never cut: a row whose keys alone are too large parks the table.
func (x *job) add(st *staging, row []stage.Value) error {
	width := 1 + len(st.cols)
	size := stage.RecordBytes(row, width, stage.MaxMarkerBytes)
	if size <= stage.MaxRecordBytes {
		st.rows = append(st.rows, row)
		return nil
	}
	for size > stage.MaxRecordBytes {
		big, bytes := -1, 0
		for i, v := range row {
			if n := stage.FieldBytes(v, 0); st.cuttable[i] && !v.Null && n > bytes {
				big, bytes = i, n
			}
		}
		if big < 0 {
			err := fmt.Errorf("a staged row of %s is %d bytes, more than COPY's %d, in its key columns alone", x.target, size, stage.MaxRecordBytes)
			return x.park(err.Error(), err)
		}
		switch st.typ(big).Kind {
		case typemap.KindVarchar, typemap.KindChar:
			row[big].Text = typemap.TruncateUTF8(row[big].Text, len(row[big].Text)-(size-stage.MaxRecordBytes))
		default:
			row[big] = stage.Value{Null: true}
		}
		if st.cutCols == nil {
			st.cutCols = map[string]bool{}
		}
		st.cutCols[st.target(big)] = true
		size = stage.RecordBytes(row, width, stage.MaxMarkerBytes)
	}
	x.res.Adjusted[typemap.RuleRowTooLarge]++
	st.rows = append(st.rows, row)
	return nil
}

// truncate is the statement of a TRUNCATE: every row of the target, or the
// rows inside a truncated leaf partition's bounds.
func (x *job) truncate(p *walheader.Partition, cols []warehouse.Column) (string, error) {
	if p == nil {
		return warehouse.DeleteAll(x.tgt), nil
	}
	for _, l := range p.Levels {
		for _, c := range l.Columns {
			if indexCol(cols, c) < 0 {
				err := fmt.Errorf("TRUNCATE of partition %s: its bound column %q is not a column of %s", p.Leaf, c, x.target)
				return "", x.park(err.Error(), err)
			}
		}
	}
	stmt, err := warehouse.DeletePartition(x.a.cfg.Dialect, x.tgt, *p)
	if err != nil {
		err = fmt.Errorf("TRUNCATE of a partition of %s: %w", x.target, err)
		return "", x.park(err.Error(), err)
	}
	return stmt, nil
}

// stage encodes the window's staged rows into one file and uploads it.
func (x *job) stage(ctx context.Context, p *plan) error {
	st := &p.stage
	if st.steps == 0 {
		return nil
	}
	if len(st.cutCols) > 0 {
		cut := make([]string, 0, len(st.cutCols))
		for c := range st.cutCols {
			cut = append(cut, c)
		}
		slices.Sort(cut)
		x.log.Warn("rows over COPY's 4 MB cut to fit: their largest values lost what they must (text keeps its first bytes, other types are NULL)",
			"lsn", x.res.FirstLSN+".."+x.res.LastLSN, "columns", cut, "rows", x.res.Adjusted[typemap.RuleRowTooLarge])
	}
	f, err := stage.Encode(st.rows, 1+len(st.cols), x.a.cfg.PartBytes)
	if err != nil {
		return fmt.Errorf("encode staged rows of %s: %w", x.target, err)
	}
	st.file, st.rows = f, nil
	p.stagedBytes = f.Bytes()
	if x.a.store == nil {
		return nil
	}
	dir := stage.Dir(x.a.cfg.S3Prefix, x.w.Table, x.w.Msgs[0].Seq, x.w.Msgs[len(x.w.Msgs)-1].Seq)
	keys, url, err := x.a.store.Put(ctx, dir, &st.file)
	p.objects = keys
	if err != nil {
		return fmt.Errorf("stage rows of %s: %w", x.target, err)
	}
	st.manifest = url
	return nil
}

// transact runs the window's one transaction.
func (x *job) transact(ctx context.Context, conn *pgx.Conn, p *plan, peeked appliedState) error {
	d := x.a.cfg.Dialect
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin on %s: %w", x.target, warehouse.Detailed(err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit this is a no-op
	exec := func(action, sql string) error {
		if len(sql) > warehouse.MaxStatementBytes {
			err := fmt.Errorf("%s on %s: a statement of %d bytes, more than the warehouse's %d", action, x.target, len(sql), warehouse.MaxStatementBytes)
			return x.park(err.Error(), err)
		}
		start := time.Now()
		tag, err := tx.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return x.classify(action, err)
		}
		x.log.Debug("statement done", "action", action, "rows", tag.RowsAffected(), "seconds", time.Since(start).Seconds())
		return nil
	}
	// Locked before the transaction's snapshot: the fence reads the state
	// table, and under SNAPSHOT isolation only a lock taken first makes a
	// second owner wait for the first one's commit and then see it.
	lock := []warehouse.Table{x.state}
	if p.lockTarget {
		lock = append(lock, x.tgt)
	}
	if _, err := tx.Exec(ctx, warehouse.Lock(d, lock...), pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("lock state and target of %s: %w", x.target, warehouse.Detailed(err))
	}
	if x.a.locked != nil {
		x.a.locked()
	}
	if err := x.claimAndRead(ctx, tx, peeked); err != nil {
		return err
	}
	if p.stage.steps > 0 {
		if err := x.load(ctx, tx, &p.stage, exec); err != nil {
			return err
		}
	}
	for _, stmt := range p.snapshot {
		if err := exec("replace snapshot range", stmt); err != nil {
			return err
		}
	}
	for _, sp := range p.segs {
		if sp.truncate != "" {
			if err := exec("empty table on truncate", sp.truncate); err != nil {
				return err
			}
		}
		for _, stmt := range sp.ddl {
			if err := exec("alter table", stmt); err != nil {
				return err
			}
		}
		for _, stmt := range sp.stmts {
			if err := exec("merge staged rows", stmt); err != nil {
				return err
			}
		}
	}
	if p.stage.steps > 0 {
		if err := exec("drop staging table", warehouse.DropStage()); err != nil {
			return err
		}
	}
	advance, err := x.advance()
	if err != nil {
		return err
	}
	if err := exec("advance applied position", advance); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return x.classify("commit", err)
	}
	x.res.Position, x.res.LegacySeq = x.sel.last, x.sel.legacy
	return nil
}

// load creates the staging table and fills it with one COPY of the staged
// file.
func (x *job) load(ctx context.Context, tx pgx.Tx, st *staging, exec func(string, string) error) error {
	d := x.a.cfg.Dialect
	if err := exec("create staging table", warehouse.CreateStage(d, st.cols, st.distKey)); err != nil {
		return err
	}
	names := make([]string, 0, 1+len(st.cols))
	names = append(names, warehouse.StepColumn)
	for _, c := range st.cols {
		names = append(names, c.Name)
	}
	var loaded int64
	if d == warehouse.Redshift {
		cred := warehouse.Credentials{IAMRole: x.a.cfg.RedshiftIAMRole, AccessKeyID: x.a.cfg.S3AccessKeyID, SecretAccessKey: x.a.cfg.S3SecretAccessKey}
		if err := exec("copy staged rows", warehouse.CopyFromS3(warehouse.StageTable, names, st.manifest, cred, x.a.cfg.S3Region, st.file.NullMarker)); err != nil {
			return err
		}
		n, err := readInt(ctx, tx, warehouse.LastCopyCount())
		if err != nil {
			return x.classify("read copy count", err)
		}
		loaded = n
	} else {
		start := time.Now()
		tag, err := tx.Conn().PgConn().CopyFrom(ctx, st.file.CSV(), warehouse.CopyFromStdin(warehouse.StageTable, names, st.file.NullMarker))
		if err != nil {
			return x.classify("copy staged rows", err)
		}
		x.log.Debug("statement done", "action", "copy staged rows", "rows", tag.RowsAffected(), "seconds", time.Since(start).Seconds())
		loaded = tag.RowsAffected()
	}
	x.res.Copies++
	if loaded != int64(st.file.Rows) {
		return fmt.Errorf("copy staged rows into %s: loaded %d rows, staged %d", x.target, loaded, st.file.Rows)
	}
	if d == warehouse.Postgres {
		return exec("analyze staging table", warehouse.AnalyzeStage())
	}
	return nil
}
