package apply

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/stage"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// plan is everything a window sends to the warehouse.
type plan struct {
	before      []string // Redshift VARCHAR widening, outside the transaction
	lockTarget  bool     // Postgres, the target exists: lock it with the state table
	snapshot    []string // range replaces of snapshot chunks, before the segments
	segs        []segPlan
	stage       staging
	objects     []string // staged S3 keys
	stagedBytes int64
}

type segPlan struct {
	truncate string   // the statement that empties the target (or a leaf's rows of it)
	ddl      []string // column changes, or a rebuild
	stmts    []string // merge statements, reading the staging table
}

// staging is the window's one staging table: a step column, then the
// staged columns, each standing for a target column in a role (a key the
// target is matched on, or a value it receives) and typed like it.
type staging struct {
	cols     []warehouse.Column
	targets  []string         // the target column each of cols stands for
	index    map[stagedAs]int // → position in a row (1 + position in cols)
	cuttable []bool           // by row position: a value a row over 4 MB may lose
	rows     [][]stage.Value  // step, then staged columns (a short row ends in NULLs)
	steps    int
	distKey  string // the staged column of the target's distribution key

	file     stage.File
	manifest string
	cutCols  map[string]bool // target columns cut in rows over 4 MB
}

type stagedAs struct {
	key  bool
	name string // target column
	typ  string
}

// Roles of a staged column.
const (
	asKey   = true
	asValue = false
)

// col is the row position of the staged column for target column c in a
// role, added when new.
func (s *staging) col(key bool, c warehouse.Column) int {
	k := stagedAs{key: key, name: c.Name, typ: c.Type.SQL}
	if i, ok := s.index[k]; ok {
		return i
	}
	if s.index == nil {
		s.index = map[stagedAs]int{}
		s.cuttable = []bool{false} // the step
	}
	prefix := "c"
	if key {
		prefix = "k"
	}
	n := 0
	for _, o := range s.cols {
		if o.Name[0] == prefix[0] {
			n++
		}
	}
	s.cols = append(s.cols, warehouse.Column{Name: prefix + strconv.Itoa(n), Type: c.Type})
	s.targets = append(s.targets, c.Name)
	s.cuttable = append(s.cuttable, !key)
	s.index[k] = len(s.cols)
	return len(s.cols)
}

// name is the staged column at row position i.
func (s *staging) name(i int) string { return s.cols[i-1].Name }

// target is the target column the staged column at row position i stands
// for.
func (s *staging) target(i int) string { return s.targets[i-1] }

// typ is the type of the staged column at row position i.
func (s *staging) typ(i int) typemap.Target { return s.cols[i-1].Type }

// next starts a merge step.
func (s *staging) next() int {
	s.steps++
	return s.steps - 1
}

// row is a new row of step, wide enough for the columns staged so far,
// every value NULL.
func (s *staging) row(step int) []stage.Value {
	r := make([]stage.Value, 1+len(s.cols))
	r[0] = stage.Value{Text: strconv.Itoa(step)}
	for i := 1; i < len(r); i++ {
		r[i].Null = true
	}
	return r
}

// holds reports whether a column of type have takes every value of type
// want unchanged (a wider VARCHAR, NUMERIC, integer or float; a VARCHAR the
// text of a SUPER or VARBYTE), so it is kept rather than narrowed or
// converted.
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
	if have.Kind == typemap.KindVarchar && (want.Kind == typemap.KindSuper || want.Kind == typemap.KindVarbyte) {
		// REDMS_REDSHIFT_JSON/BYTEA apply to new columns: a cast would
		// make a JSON text a SUPER string, hex text bytes of its letters
		return true
	}
	if have.Kind == typemap.KindVarbyte && want.Kind == typemap.KindVarbyte {
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
func (x *job) fit(t typemap.Target, c fold.Column) stage.Value {
	v, null, rule := typemap.Fit(t, c.Value, c.Null)
	if rule != "" {
		x.res.Adjusted[rule]++
	}
	return stage.Value{Text: v, Null: null}
}

// colAttrs are a Redshift column's attributes that ALTER TABLE minds.
type colAttrs struct {
	distKey  bool
	sortKey  int
	encoding string
}

// fixedEncodings are the encodings whose columns Redshift cannot retype.
var fixedEncodings = map[string]bool{"bytedict": true, "runlength": true, "text255": true, "text32k": true}

// keyed: Redshift refuses to drop the column, or to retype it by add, copy,
// drop and rename.
func (a colAttrs) keyed() bool { return a.distKey || a.sortKey > 0 }

// fixed: Redshift refuses ALTER COLUMN … TYPE on it.
func (a colAttrs) fixed() bool { return a.keyed() || fixedEncodings[a.encoding] }

// readAttrs reads the target's column attributes (Redshift).
func readAttrs(ctx context.Context, conn *pgx.Conn, t warehouse.Table) (map[string]colAttrs, error) {
	if _, err := conn.Exec(ctx, warehouse.SetSearchPath(t.Schema), pgx.QueryExecModeSimpleProtocol); err != nil {
		return nil, fmt.Errorf("set search path to %s: %w", t.Schema, err)
	}
	rows, err := conn.Query(ctx, warehouse.TableAttrs(t), pgx.QueryExecModeExec)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]colAttrs{}
	for rows.Next() {
		var name, enc string
		var a colAttrs
		if err := rows.Scan(&name, &enc, &a.distKey, &a.sortKey); err != nil {
			return nil, err
		}
		a.encoding = enc
		out[name] = a
	}
	return out, rows.Err()
}

// tableKeys are the Redshift attributes the loader gives a table of
// columns cols: the window's key as SORTKEY, as PRIMARY KEY when it is the
// source's primary key, the configured distribution. A key that is the
// "id" guess, the whole row, or has a column Redshift cannot sort on
// (SUPER, VARBYTE) gives none.
func (x *job) tableKeys(cols []warehouse.Column) warehouse.TableKeys {
	k := warehouse.TableKeys{Dist: x.a.cfg.DistStyle}
	if x.spec.Full || x.spec.Default || len(x.spec.Columns) == 0 {
		return k
	}
	for _, name := range x.spec.Columns {
		j := indexCol(cols, name)
		if j < 0 || cols[j].Type.Kind == typemap.KindSuper || cols[j].Type.Kind == typemap.KindVarbyte {
			return k
		}
	}
	k.Columns, k.Primary = x.spec.Columns, x.spec.Primary
	return k
}

// attrsOf are the column attributes a table created with k has.
func attrsOf(k warehouse.TableKeys) map[string]colAttrs {
	out := map[string]colAttrs{}
	for i, c := range k.Columns {
		out[c] = colAttrs{sortKey: i + 1, distKey: c == k.DistKey()}
	}
	return out
}

// declaredType is the target type of a column, from its declared type
// where capture sent one that agrees with what test_decoding printed.
func (x *job) declaredType(c fold.Column) typemap.Target {
	opt := typemap.Options{NumericDefault: x.a.cfg.NumericDefault, JSONSuper: x.a.cfg.JSONSuper, ByteaVarbyte: x.a.cfg.ByteaVarbyte}
	return typemap.Map(x.a.cfg.Dialect, typemap.Declared(c.Type, x.declared[c.Name]), opt)
}

// widest is, for each VARCHAR column of the window, the length it needs:
// the longest its declared types map to, and, where that is below the
// maximum, at least the longest value (a declared type from before an
// ALTER must not cut values). Both dialects size a column once for the
// window (Redshift widens only outside a transaction).
func (x *job) widest(folded fold.Result) map[string]int {
	widest := map[string]int{}
	for _, s := range folded.Segments {
		for i, c := range s.Columns {
			t := x.declaredType(c)
			if t.Kind != typemap.KindVarchar {
				continue
			}
			n := t.Length
			if n < typemap.MaxVarchar {
				for _, r := range s.Upserts {
					n = max(n, len(r[i].Value))
				}
				for _, r := range s.Inserts {
					n = max(n, len(r[i].Value))
				}
				for _, g := range s.Updates {
					if j := slices.Index(g.Columns, c.Name); j >= 0 {
						for _, r := range g.Rows {
							n = max(n, len(r.Set[j].Value))
						}
					}
				}
			}
			widest[c.Name] = max(widest[c.Name], min(n, typemap.MaxVarchar))
		}
	}
	return widest
}

// plan decides DDL and the staged rows segment by segment, tracking the
// target's columns as the DDL would leave them. attrs reads the target's
// Redshift column attributes, asked only when a column change needs them.
func (x *job) plan(folded fold.Result, cur []warehouse.Column, schemaExists bool, attrs func() (map[string]colAttrs, error)) (*plan, error) {
	d := x.a.cfg.Dialect
	// Redshift's LOCK is exclusive: locking the target too would make every
	// dashboard query on it wait for each window. The state table alone
	// fences (docs/DESIGN.md §5); Postgres's SHARE ROW EXCLUSIVE lets
	// readers through, so there the target is locked as well.
	p := &plan{lockTarget: cur != nil && d == warehouse.Postgres}
	widest := x.widest(folded)
	desired := func(c fold.Column) warehouse.Column {
		t := x.declaredType(c)
		if t.Kind == typemap.KindVarchar {
			t = typemap.Make(typemap.KindVarchar, 0, 0, widest[c.Name])
		}
		return warehouse.Column{Name: c.Name, Type: t}
	}
	var known map[string]colAttrs
	attr := func(name string) (colAttrs, error) {
		if known == nil {
			a, err := attrs()
			if err != nil {
				return colAttrs{}, fmt.Errorf("read column attributes of %s: %w", x.target, err)
			}
			known = a
		}
		return known[name], nil
	}
	cols := slices.Clone(cur)
	if d == warehouse.Redshift {
		// Widen in place where Redshift lets ALTER COLUMN; a key column
		// is widened by the segment's rebuild instead.
		for i, c := range cols {
			if w, ok := widest[c.Name]; ok && c.Type.Kind == typemap.KindVarchar && c.Type.Length < w {
				a, err := attr(c.Name)
				if err != nil {
					return nil, err
				}
				if a.fixed() {
					continue
				}
				p.before = append(p.before, warehouse.WidenVarchar(x.tgt, c.Name, w))
				cols[i].Type = typemap.Make(typemap.KindVarchar, 0, 0, w)
			}
		}
	}
	exists := cur != nil

	for _, s := range folded.Segments {
		sp := segPlan{}
		if s.Truncate && s.Partition != nil && s.Partition.Unbounded != "" {
			err := fmt.Errorf("TRUNCATE of partition %s cannot be applied to %s: %s, so no bound tells its rows apart; a snapshot of the root repairs it",
				s.Partition.Leaf, x.target, s.Partition.Unbounded)
			return nil, x.park(err.Error(), err)
		}
		if s.Truncate && exists {
			stmt, err := x.truncate(s.Partition, cols)
			if err != nil {
				return nil, err
			}
			sp.truncate = stmt
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
				k := x.tableKeys(want)
				sp.ddl = append(sp.ddl, warehouse.CreateTable(d, x.tgt, want, k))
				cols, exists, known = slices.Clone(want), true, attrsOf(k)
			} else {
				var rebuilt *warehouse.TableKeys
				var err error
				if cols, sp.ddl, rebuilt, err = x.alter(s, cols, want, attr); err != nil {
					return nil, err
				}
				if rebuilt != nil {
					known = attrsOf(*rebuilt)
				}
			}
		}
		if exists {
			if err := x.planData(p, &sp, s, cols); err != nil {
				return nil, err
			}
		}
		p.segs = append(p.segs, sp)
	}
	return p, nil
}
