// Package fold turns one window of a table's changes, in stream order, into
// the few set-based actions the warehouse applies (docs/DESIGN.md §4).
//
// Within a segment every key ends with exactly one action, decided by its last
// change:
//
//   - DELETE → delete the key;
//   - INSERT, or an UPDATE whose row image is complete → upsert (delete the
//     key, insert the row); under REPLICA IDENTITY FULL most INSERTs are
//     plain inserts instead (see Keys below);
//   - an UPDATE that still has unchanged-toast-datum columns after filling them
//     from the latest earlier change of that key in the window → UPDATE of the
//     known columns only, grouped by the set of known columns.
//
// An UPDATE with old-key: deletes the old key and upserts the new row. When
// such an UPDATE also has columns nobody in the window knows, the row is moved
// in the warehouse (UPDATE … SET key = new WHERE key = old) in a segment of
// its own, so no other action of the window can be ordered around it.
//
// The window is split into segments at every change of the column set (names
// and types of an INSERT's or UPDATE's columns: an added, dropped or retyped
// column), at every TRUNCATE, and where changes go from keyless to keyed or
// back; segments apply in order.
//
// Keyless changes (the table had no key when capture read them, e.g. it was
// loaded before its primary key was added): an INSERT is a plain insert of
// its row, exact because replays never reach the fold (docs/DESIGN.md §2.3);
// an UPDATE or DELETE cannot be applied without a key or old row and is
// returned in Result.Unapplied.
//
// Replay-shaped orders (insert of a live key, update or delete of a deleted
// key) are counted, never rejected: the last change still decides. An UPDATE
// of known columns of a key the window has deleted is dropped, as it would
// find no row.
//
// Keys: the table's key columns, or under REPLICA IDENTITY FULL the whole row.
// test_decoding omits null columns from old rows, so a FULL key is the row's
// non-null columns; the warehouse compares it NULL-safely against every column.
// A FULL table without a key is a multiset: an INSERT of a row identity the
// window has seen nothing of, or only plain inserts of, is a plain insert of
// one more copy (exact, as keyless inserts are); an INSERT after an UPDATE or
// DELETE of that identity in the window is an upsert. Plain inserts apply
// before the segment's deletes, upserts and updates, so a later DELETE or
// UPDATE of the identity finds them.
// Limits of whole-row identity: rows are told apart by value only (the
// warehouse has no row id), so a DELETE or UPDATE of one of several identical
// rows affects every copy; a DELETE that arrives after a column was dropped or
// added, before any INSERT/UPDATE shows the new column set, and replays that
// span a column change, may not find their row.
package fold

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
)

// Column is one column of a row (name, source type, value).
type Column = testdecoding.Column

// Record is what fold reads of a parsed test_decoding record: a window can
// hold a million, so it keeps no more (a testdecoding.Record is four times
// the size).
type Record struct {
	Kind        testdecoding.Kind
	HasOldKey   bool
	NoTupleData bool
	Columns     []Column
	OldKey      []Column
}

// RecordOf is what fold reads of r; it shares r's column slices.
func RecordOf(r *testdecoding.Record) Record {
	return Record{Kind: r.Kind, HasOldKey: r.HasOldKey, NoTupleData: r.NoTupleData, Columns: r.Columns, OldKey: r.OldKey}
}

// Change is one change of the window.
type Change struct {
	Seq    uint64
	LSN    string
	Record *Record // shared with the window's message, read-only
	// Keyless: the change's table had no key when it was read.
	Keyless bool
	Extra   *Extra // nil for most changes
}

// Extra is what few changes carry.
type Extra struct {
	// Missing is the value existing rows hold for a column added with a
	// constant default (Redms-Missing; a nil value is NULL).
	Missing map[string]*string
	// Partition is the truncated leaf of a TRUNCATE that travels on its
	// root's subject (Redms-Partition).
	Partition *walheader.Partition
}

// KeySpec says how rows are identified.
type KeySpec struct {
	Columns []string // key column names, in key order
	Full    bool     // REPLICA IDENTITY FULL: the whole row is the key
}

// Segment is a run of changes with one column set, applied as: empty the
// table (Truncate; only Partition's rows when set), DDL to Columns, Inserts,
// Deletes, Upserts, then Updates.
type Segment struct {
	Truncate  bool
	Partition *walheader.Partition
	// Columns are the names and types of the INSERT/UPDATE rows of the
	// segment (Value unused); nil when it has none.
	Columns []Column
	// Missing: the value existing rows hold for a column the segment adds.
	Missing map[string]*string
	Inserts [][]Column // plain inserts (keyless rows, FULL rows), in Columns order
	Deletes [][]Column // key columns (FULL: the non-null columns of the old row)
	Upserts [][]Column // complete rows, in Columns order
	Updates []UpdateGroup
	// FirstSeq and LastSeq are the stream sequences of the segment's first
	// and last change.
	FirstSeq, LastSeq uint64
}

// UpdateGroup is the rows that update the same set of known columns.
type UpdateGroup struct {
	Columns []string // known columns, in segment column order
	Rows    []UpdateRow
	// Move: the rows change their key (Match is the old key). A row whose
	// new key already exists in the warehouse is not moved (a replay finds
	// the move done) but has its known columns set; the old key is deleted
	// either way (a replayed INSERT may have re-created it).
	Move bool
}

// UpdateRow matches a row by key and sets the known columns.
type UpdateRow struct {
	Match []Column // key columns the warehouse row has now
	Set   []Column // values of UpdateGroup.Columns, in that order
}

// Result is a folded window.
type Result struct {
	Segments  []Segment
	Replays   int       // replay-shaped orders seen
	Unapplied []*Change // keyless UPDATEs and DELETEs, in window order
}

// ErrNoKey says the changes lack the key columns the KeySpec names.
var ErrNoKey = errors.New("change lacks key columns")

// Error is a change fold cannot use; the window must park.
type Error struct {
	Seq    uint64
	LSN    string
	Reason string
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("fold change seq %d lsn %s: %s", e.Seq, e.LSN, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

type action uint8

const (
	actDelete action = iota + 1
	actUpsert
	actUpdate
)

type entry struct {
	act  action
	move bool
	key  []Column // for deletes: the key; for updates: the match key
	row  []Column // upsert or update row (update rows may hold Unchanged columns)
}

// keyState is what the window knows of one key's current row (known, live,
// row) and the open segment's entry for it (e, set when seg is the open
// segment's number). One map of them costs half the lookups of a map for
// each. plain: the window has only plain inserts of this FULL row identity.
type keyState struct {
	known bool
	live  bool
	plain bool
	row   []Column
	seg   int
	e     entry
}

type folder struct {
	spec    KeySpec
	res     Result
	seg     *Segment
	segN    int                  // number of the open segment, from 1
	keyless bool                 // the open segment holds keyless changes
	keys    map[string]*keyState // by key identity
	order   []*keyState          // keys with an entry in the open segment, in first-set order
}

// Fold folds the changes (INSERT, UPDATE, DELETE, TRUNCATE; others are
// ignored) of one table's window.
func Fold(changes []Change, spec KeySpec) (Result, error) {
	f := &folder{spec: spec, keys: make(map[string]*keyState)}
	f.open(false)
	for i := range changes {
		c := &changes[i]
		var err error
		switch kind := c.Record.Kind; {
		case kind == testdecoding.KindTruncate:
			f.close()
			f.open(true)
			if c.Extra != nil {
				f.seg.Partition = c.Extra.Partition
			}
			f.note(c)
			clear(f.keys)
		case c.Keyless && kind == testdecoding.KindInsert:
			f.mode(true)
			f.columnsFor(c.Record.Columns, c)
			f.note(c)
			f.seg.Inserts = append(f.seg.Inserts, c.Record.Columns)
		case c.Keyless && (kind == testdecoding.KindUpdate || kind == testdecoding.KindDelete):
			f.res.Unapplied = append(f.res.Unapplied, c)
		case kind == testdecoding.KindInsert:
			f.mode(false)
			err = f.insert(c)
		case kind == testdecoding.KindUpdate:
			f.mode(false)
			err = f.update(c)
		case kind == testdecoding.KindDelete:
			f.mode(false)
			err = f.delete(c)
		default:
			continue
		}
		if err != nil {
			return Result{}, err
		}
	}
	f.close()
	return f.res, nil
}

func (f *folder) open(truncate bool) {
	f.seg = &Segment{Truncate: truncate}
	f.segN++
	f.order = f.order[:0]
}

// mode starts a new segment when the open one holds changes of the other
// kind (keyless or keyed).
func (f *folder) mode(keyless bool) {
	if f.keyless != keyless && (len(f.order) > 0 || len(f.seg.Inserts) > 0) {
		f.close()
		f.open(false)
	}
	f.keyless = keyless
}

func (f *folder) note(c *Change) {
	if f.seg.FirstSeq == 0 {
		f.seg.FirstSeq = c.Seq
	}
	f.seg.LastSeq = c.Seq
}

// close emits the open segment if it does anything.
func (f *folder) close() {
	s := f.seg
	groups := map[string]int{}
	for _, sl := range f.order {
		e := sl.e
		switch e.act {
		case actDelete:
			s.Deletes = append(s.Deletes, e.key)
		case actUpsert:
			s.Upserts = append(s.Upserts, e.row)
		case actUpdate:
			var names []string
			var set []Column
			for _, col := range e.row {
				if !col.Unchanged {
					names = append(names, col.Name)
					set = append(set, col)
				}
			}
			id := strings.Join(names, "\x00")
			if e.move {
				id = "move\x00" + id
			}
			gi, ok := groups[id]
			if !ok {
				gi = len(s.Updates)
				groups[id] = gi
				s.Updates = append(s.Updates, UpdateGroup{Columns: names, Move: e.move})
			}
			s.Updates[gi].Rows = append(s.Updates[gi].Rows, UpdateRow{Match: e.key, Set: set})
		}
	}
	if s.Truncate || len(s.Inserts)+len(s.Deletes)+len(s.Upserts)+len(s.Updates) > 0 {
		f.res.Segments = append(f.res.Segments, *s)
	}
}

// columnsFor starts a new segment when row's column set differs from the
// open segment's, and notes what c says existing rows hold for added
// columns.
func (f *folder) columnsFor(row []Column, c *Change) {
	if f.seg.Columns != nil && !sameColumns(f.seg.Columns, row) {
		f.close()
		f.open(false)
	}
	if f.seg.Columns == nil {
		cols := make([]Column, len(row))
		for i, c := range row {
			cols[i] = Column{Name: c.Name, Type: c.Type}
		}
		f.seg.Columns = cols
	}
	if c.Extra != nil && len(c.Extra.Missing) > 0 {
		if f.seg.Missing == nil {
			f.seg.Missing = map[string]*string{}
		}
		for name, v := range c.Extra.Missing {
			if _, ok := f.seg.Missing[name]; !ok {
				f.seg.Missing[name] = v
			}
		}
	}
}

func sameColumns(a, b []Column) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Type != b[i].Type {
			return false
		}
	}
	return true
}

// state returns the state of key identity id, creating it.
func (f *folder) state(id string) *keyState {
	sl := f.keys[id]
	if sl == nil {
		sl = &keyState{}
		f.keys[id] = sl
	}
	return sl
}

// set makes e the open segment's entry for sl and records the row the
// window then knows for the key.
func (f *folder) set(sl *keyState, e entry, live bool, row []Column) {
	if sl.seg != f.segN {
		sl.seg = f.segN
		f.order = append(f.order, sl)
	}
	sl.e = e
	sl.known, sl.live, sl.row, sl.plain = true, live, row, false
}

func (f *folder) insert(c *Change) error {
	row := c.Record.Columns
	key, id, err := f.keyOf(row, c)
	if err != nil {
		return err
	}
	f.columnsFor(row, c)
	f.note(c)
	sl := f.state(id)
	if f.spec.Full && (!sl.known || sl.plain) {
		// A row of a multiset: one more copy, appended.
		f.seg.Inserts = append(f.seg.Inserts, row)
		sl.known, sl.live, sl.row, sl.plain = true, true, row, true
		return nil
	}
	if sl.known && sl.live {
		f.res.Replays++ // insert of a key the window already has
	}
	f.set(sl, entry{act: actUpsert, key: key, row: row}, true, row)
	return nil
}

func (f *folder) delete(c *Change) error {
	if c.Record.NoTupleData {
		return &Error{Seq: c.Seq, LSN: c.LSN, Reason: "DELETE without key data (table has no replica identity)", Err: ErrNoKey}
	}
	key, id, err := f.keyOf(c.Record.Columns, c)
	if err != nil {
		return err
	}
	f.note(c)
	sl := f.state(id)
	if sl.known && !sl.live {
		f.res.Replays++ // delete of a deleted key
	}
	f.set(sl, entry{act: actDelete, key: key}, false, nil)
	return nil
}

func (f *folder) update(c *Change) error {
	rec := c.Record
	row := rec.Columns
	// The key the row had before this change, and what is known of it.
	var oldKey []Column
	var oldID string
	var err error
	if rec.HasOldKey {
		if f.spec.Full {
			oldKey, oldID = fullKey(rec.OldKey)
		} else {
			oldKey, oldID, err = f.keyOf(rec.OldKey, c)
		}
	} else {
		oldKey, oldID, err = f.keyOf(row, c)
	}
	if err != nil {
		return err
	}
	st := f.keys[oldID]
	seen := st != nil && st.known
	if seen && !st.live {
		f.res.Replays++ // update of a deleted key
	}

	filled := row
	if hasUnchanged(row) {
		filled = make([]Column, len(row))
		copy(filled, row)
		if f.spec.Full && rec.HasOldKey {
			fillFrom(filled, rec.OldKey)
		}
		if seen && st.live {
			fillFrom(filled, st.row)
		}
	}
	partial := hasUnchanged(filled)
	if partial && f.spec.Full {
		return &Error{Seq: c.Seq, LSN: c.LSN, Reason: "UPDATE of a REPLICA IDENTITY FULL table with an unchanged-toast-datum column the window cannot fill"}
	}
	newKey, newID, err := f.keyOf(filled, c)
	if err != nil {
		return err
	}
	f.columnsFor(row, c)
	moved := newID != oldID

	switch {
	case !partial:
		if moved {
			f.note(c)
			f.set(f.state(oldID), entry{act: actDelete, key: oldKey}, false, nil)
		}
		f.note(c)
		f.set(f.state(newID), entry{act: actUpsert, key: newKey, row: filled}, true, filled)
	case seen && !st.live:
		// The window deleted the row: an UPDATE of known columns finds nothing.
		f.note(c)
	case moved:
		// Move the warehouse row to its new key, alone in its segment.
		f.close()
		f.open(false)
		f.columnsFor(row, c)
		f.note(c)
		f.set(f.state(newID), entry{act: actUpdate, move: true, key: oldKey, row: filled}, true, filled)
		f.close()
		f.open(false)
		delete(f.keys, oldID)
	default:
		f.note(c)
		f.set(f.state(newID), entry{act: actUpdate, key: newKey, row: filled}, true, filled)
	}
	return nil
}

func hasUnchanged(row []Column) bool {
	for i := range row {
		if row[i].Unchanged {
			return true
		}
	}
	return false
}

// fillFrom replaces unchanged-toast columns of row with src's value of the
// same column, where src has one.
func fillFrom(row, src []Column) {
	for i := range row {
		if !row[i].Unchanged {
			continue
		}
		if i < len(src) && src[i].Name == row[i].Name {
			if !src[i].Unchanged {
				row[i] = src[i]
			}
			continue
		}
		for j := range src {
			if src[j].Name == row[i].Name {
				if !src[j].Unchanged {
					row[i] = src[j]
				}
				break
			}
		}
	}
}

// keyOf returns the key columns of row and their identity string.
func (f *folder) keyOf(row []Column, c *Change) ([]Column, string, error) {
	if f.spec.Full {
		k, id := fullKey(row)
		return k, id, nil
	}
	if len(f.spec.Columns) == 1 {
		return oneKey(row, f.spec.Columns[0], c)
	}
	key := make([]Column, len(f.spec.Columns))
	var b strings.Builder
	for i, name := range f.spec.Columns {
		j := indexOf(row, name)
		if j < 0 {
			return nil, "", &Error{Seq: c.Seq, LSN: c.LSN, Reason: fmt.Sprintf("%s lacks key column %q", c.Record.Kind, name), Err: ErrNoKey}
		}
		if row[j].Unchanged {
			return nil, "", &Error{Seq: c.Seq, LSN: c.LSN, Reason: fmt.Sprintf("%s key column %q is unchanged-toast-datum", c.Record.Kind, name)}
		}
		key[i] = row[j]
		writeValue(&b, row[j])
	}
	return key, b.String(), nil
}

// oneKey is keyOf for a single key column, the common case, without
// allocating: the key shares row's array, and the identity is the value
// itself, or NUL for null (test_decoding text never holds a NUL byte, so
// no value reads NUL).
func oneKey(row []Column, name string, c *Change) ([]Column, string, error) {
	j := indexOf(row, name)
	if j < 0 {
		return nil, "", &Error{Seq: c.Seq, LSN: c.LSN, Reason: fmt.Sprintf("%s lacks key column %q", c.Record.Kind, name), Err: ErrNoKey}
	}
	if row[j].Unchanged {
		return nil, "", &Error{Seq: c.Seq, LSN: c.LSN, Reason: fmt.Sprintf("%s key column %q is unchanged-toast-datum", c.Record.Kind, name)}
	}
	if row[j].Null {
		return row[j : j+1 : j+1], "\x00", nil
	}
	return row[j : j+1 : j+1], row[j].Value, nil
}

// fullKey is the key of a REPLICA IDENTITY FULL row: its non-null columns
// (test_decoding prints old rows without their null columns).
func fullKey(row []Column) ([]Column, string) {
	var key []Column
	var b strings.Builder
	for _, c := range row {
		if c.Null {
			continue
		}
		key = append(key, c)
		b.WriteString(strconv.Itoa(len(c.Name)))
		b.WriteByte(':')
		b.WriteString(c.Name)
		writeValue(&b, c)
	}
	return key, b.String()
}

func writeValue(b *strings.Builder, c Column) {
	if c.Null {
		b.WriteString("n;")
		return
	}
	b.WriteString(strconv.Itoa(len(c.Value)))
	b.WriteByte(':')
	b.WriteString(c.Value)
}

func indexOf(row []Column, name string) int {
	for i := range row {
		if row[i].Name == name {
			return i
		}
	}
	return -1
}
