package apply

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/typemap"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
	"github.com/redms/redms/services/loader/internal/warehouse"
)

// Snapshot chunks (docs/DESIGN.md §7, docs/CONTRACTS.md Redms-Snapshot):
// their records are INSERTs folded like any other; each part also
// replaces its key range. Before the window's merge steps, the target
// rows in the parts' ranges are deleted unless a staged row names their
// key: the keys each part kept (they changed while the chunk was read and
// the stream carries them) and every key the window's live changes touch
// (its own merge steps decide those; an update may need the row's
// unchanged TOAST values). A chunk's own rows need no protection: they are
// whole, and the merge writes them after the delete. A part of a
// keyless table's whole replace (full) deletes every row at its first
// part; the window's changes before that part are superseded by it. A
// part read with a --where filter (filtered) deletes nothing.

// snapshotOf is the Redms-Snapshot of m, nil when it has none.
func snapshotOf(m *Msg) *walheader.Snapshot {
	if m.Meta.Extra == nil {
		return nil
	}
	return m.Meta.Extra.Snapshot
}

// snapshotSelect drops the accepted changes before the last whole-table
// replace of the window: it replaces what they did.
func (x *job) snapshotSelect() {
	cut := -1
	var last *walheader.Snapshot
	for i, a := range x.sel.accepted {
		s := snapshotOf(a.msg)
		// the first record of the part: a batch's records share its header
		if s != nil && s != last && s.Full && !s.Filtered && s.Part == 1 {
			cut = i
		}
		last = s
	}
	if cut > 0 {
		x.sel.replays += cut
		x.sel.accepted = x.sel.accepted[cut:]
	}
}

// span is a key range (from, to]; nil bounds are unbounded.
type span struct{ from, to walheader.Key }

// planSnapshot adds the window's range replaces to p: a staged step of
// the keys they keep, and their DELETE statements. cur is the target's
// columns before the window (nil: it does not exist, nothing to delete).
func (x *job) planSnapshot(p *plan, cur []warehouse.Column) error {
	var parts []*walheader.Snapshot
	full := false
	var last *walheader.Snapshot
	for _, a := range x.sel.accepted {
		s := snapshotOf(a.msg)
		if s == last { // a batch's records share their part's header
			continue
		}
		last = s
		switch {
		case s == nil || s.Filtered:
		case s.Full:
			full = full || s.Part == 1
		default:
			parts = append(parts, s)
		}
	}
	if cur == nil || (!full && len(parts) == 0) {
		return nil
	}
	if full {
		p.snapshot = append(p.snapshot, warehouse.DeleteAll(x.tgt))
		x.res.Rows["snapshot-replace"]++
		return nil
	}
	names := parts[0].Columns
	keyCols := make([]warehouse.Column, len(names))
	for i, n := range names {
		j := indexCol(cur, n)
		if j < 0 {
			err := fmt.Errorf("snapshot %s chunk %d: key column %q is not a column of %s", parts[0].ID, parts[0].Chunk, n, x.target)
			return x.park(err.Error(), err)
		}
		keyCols[i] = cur[j]
	}
	for _, s := range parts {
		if !slices.Equal(s.Columns, names) {
			err := fmt.Errorf("snapshot chunks of %s in one window over key columns %v and %v", x.target, names, s.Columns)
			return x.park(err.Error(), err)
		}
	}
	var spare []walheader.Key
	seen := map[string]bool{}
	protect := func(k walheader.Key) {
		if id := keyID(k); !seen[id] {
			seen[id] = true
			spare = append(spare, k)
		}
	}
	for _, a := range x.sel.accepted {
		if snapshotOf(a.msg) != nil {
			continue
		}
		r := a.rec
		switch r.Kind {
		case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete:
		default:
			continue
		}
		images := [][]fold.Column{r.Columns}
		if r.HasOldKey {
			images = append(images, r.OldKey)
		}
		for _, img := range images {
			if k, ok := keyOfImage(img, names); ok {
				protect(k)
			}
		}
	}
	for _, s := range parts {
		for _, k := range s.Keep {
			protect(k)
		}
	}
	keys := make([]warehouse.Match, len(keyCols))
	for i, kc := range keyCols {
		keys[i] = warehouse.Match{Target: kc.Name, Exact: kc.Type.Kind == typemap.KindVarchar}
	}
	step := -1 // no key to spare: the range deletes need no staged step
	if len(spare) > 0 {
		st := &p.stage
		step = st.next()
		keyAt := make([]int, len(keyCols))
		for i, kc := range keyCols {
			keyAt[i] = st.col(asKey, kc)
			keys[i].Temp = st.name(keyAt[i])
		}
		for _, k := range spare {
			row := st.row(step)
			for i, kc := range keyCols {
				row[keyAt[i]] = x.fit(kc.Type, keyColumn(k[i]))
			}
			if err := x.add(st, row); err != nil {
				return err
			}
		}
	}
	for _, sp := range spans(parts) {
		from, okF := x.bound(keyCols, sp.from)
		to, okT := x.bound(keyCols, sp.to)
		if !okF || !okT {
			x.log.Warn("snapshot range with a NULL key bound: not replaced", "from", sp.from, "to", sp.to)
			continue
		}
		p.snapshot = append(p.snapshot, warehouse.DeleteRange(x.a.cfg.Dialect, x.tgt, keys, from, to, step))
	}
	x.res.Rows["snapshot-range"] += len(parts)
	return nil
}

// spans merges the parts' ranges where one ends at the next one's start:
// a chunk's row parts follow each other, its first part (the watermark)
// covers the rest of its range, and the next chunk starts there.
func spans(parts []*walheader.Snapshot) []span {
	sorted := slices.Clone(parts)
	rank := func(s *walheader.Snapshot) int {
		if s.Part == 1 {
			return s.Parts + 1
		}
		return s.Part
	}
	slices.SortStableFunc(sorted, func(a, b *walheader.Snapshot) int {
		if a.ID != b.ID {
			return 0 // snapshots keep their order of arrival
		}
		if a.Chunk != b.Chunk {
			return a.Chunk - b.Chunk
		}
		return rank(a) - rank(b)
	})
	var out []span
	for _, s := range sorted {
		if n := len(out); n > 0 && out[n-1].to != nil && s.From != nil && keyID(out[n-1].to) == keyID(s.From) {
			out[n-1].to = s.To
			continue
		}
		out = append(out, span{from: s.From, to: s.To})
	}
	return out
}

// bound renders a key bound as typed literals; ok is false for a bound
// with a NULL value (no key row compares with it).
func (x *job) bound(keyCols []warehouse.Column, k walheader.Key) (warehouse.Bound, bool) {
	if k == nil {
		return nil, true
	}
	out := make(warehouse.Bound, len(keyCols))
	for i, kc := range keyCols {
		v := x.fit(kc.Type, keyColumn(k[i]))
		if v.Null {
			return nil, false
		}
		out[i] = warehouse.Typed(x.a.cfg.Dialect, v.Text, kc.Type.SQL)
	}
	return out, true
}

func keyColumn(v *string) fold.Column {
	if v == nil {
		return fold.Column{Null: true}
	}
	return fold.Column{Value: *v}
}

// keyOfImage is the key of a row image, false when it lacks a key column.
func keyOfImage(img []fold.Column, names []string) (walheader.Key, bool) {
	k := make(walheader.Key, len(names))
	for i, n := range names {
		j := slices.IndexFunc(img, func(c fold.Column) bool { return c.Name == n })
		if j < 0 || img[j].Unchanged {
			return nil, false
		}
		if !img[j].Null {
			v := img[j].Value
			k[i] = &v
		}
	}
	return k, true
}

func keyID(k walheader.Key) string {
	b, _ := json.Marshal(k)
	return string(b)
}
