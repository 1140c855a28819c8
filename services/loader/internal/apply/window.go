package apply

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
	"unsafe"

	"github.com/redms/redms/pkg/subject"
	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/loader/internal/fold"
)

// Window is the messages of one table a runner hands to the applier, in
// the order they arrived: changes held back by an earlier window first,
// then the new ones. The applier orders them by source position. The table
// comes from the subject, never from the body.
type Window struct {
	Table subject.Table
	Msgs  []Msg
}

// Msg is one JetStream message of the table, parsed on arrival: Meta is
// what its headers (docs/CONTRACTS.md) say, Record what fold needs of its
// test_decoding text. A window can hold a million messages, so a message
// keeps neither a header map (several hundred bytes each) nor its raw body
// next to the parsed record (whose strings are one copy of the body), nor
// the parser's whole Record. MetaErr is set when the headers did not parse,
// RecordErr when the body did not: applying a window holding such a message
// parks the table, unless its position says it was applied before
// (RecordErr only). A part of a split record keeps its body in
// Meta.Extra.Body instead: it is parsed once its parts are joined.
type Msg struct {
	Seq       uint64
	Meta      Meta
	MetaErr   error
	Record    fold.Record
	RecordErr error
}

// Meta is what the applier reads of a message's headers (walheader.Meta
// without the commit LSN, ordinal, xid and leaf, and what few messages carry
// behind Extra): Keys and Types are nil when their header is absent. Pos is zero on a
// message of a capture before source positions.
type Meta struct {
	LSN        string
	CommitTime time.Time
	Keys       []string
	KeySource  string
	Pos        walheader.Pos
	Prev       walheader.Pos
	HasPrev    bool
	Types      map[string]string // Redms-Types: declared types; nil when absent
	Extra      *Extra
}

// Extra is what few messages carry.
type Extra struct {
	PosLast     walheader.Pos // of a message of several changes
	Part, Parts int           // part k of n of a split record
	Body        []byte        // a part's share of the record's text
	Missing     map[string]*string
	Partition   *walheader.Partition
	Snapshot    *walheader.Snapshot // Redms-Snapshot: a part of a snapshot chunk
}

// Last is the position of the message's last change.
func (m Meta) Last() walheader.Pos {
	if m.Extra != nil && !m.Extra.PosLast.IsZero() {
		return m.Extra.PosLast
	}
	return m.Pos
}

// Parts is k and n of part k of n of a split record; 0, 0 on a whole one.
func (m Meta) Parts() (k, n int) {
	if m.Extra == nil {
		return 0, 0
	}
	return m.Extra.Part, m.Extra.Parts
}

// MetaOf is what the applier reads of m; it shares m's strings and maps.
func MetaOf(m walheader.Meta) Meta {
	meta := Meta{LSN: m.LSN, CommitTime: m.CommitTime, Keys: m.Keys, KeySource: m.KeySource,
		Pos: m.Pos, Prev: m.Prev, HasPrev: m.HasPrev, Types: m.Types}
	if m.PosLast != m.Pos || m.Parts > 0 || m.Missing != nil || m.Partition != nil || m.Snapshot != nil {
		meta.Extra = &Extra{Part: m.Part, Parts: m.Parts, Missing: m.Missing, Partition: m.Partition, Snapshot: m.Snapshot}
		if m.PosLast != m.Pos {
			meta.Extra.PosLast = m.PosLast
		}
	}
	return meta
}

// NewMsg parses the message of stream sequence seq whose headers say meta
// and whose body is data; data may be reused afterwards. A part of a split
// record keeps a copy of data, parsed once its parts are joined.
func NewMsg(seq uint64, meta walheader.Meta, data []byte) Msg {
	m := Msg{Seq: seq, Meta: MetaOf(meta)}
	if meta.Parts > 0 {
		m.Meta.Extra.Body = bytes.Clone(data)
		return m
	}
	m.parse(data)
	return m
}

func (m *Msg) parse(data []byte) {
	var rec testdecoding.Record
	if err := testdecoding.ParseInto(data, &rec); err != nil {
		m.RecordErr = err
	} else {
		m.Record = fold.RecordOf(&rec)
	}
}

// Footprint is what a window keeps in memory for a change of columns
// columns (new and old ones) beyond the values' bytes: its Msg, the
// columns' descriptors and its LSN text. A window's bytes count it, so
// that REDMS_WINDOW_BYTES bounds the memory a window of batches takes: a
// batch's body and headers are a few hundred bytes per change smaller than
// one message per change, what the window keeps of each change is not.
func Footprint(columns int) int {
	return int(unsafe.Sizeof(Msg{})) + columns*int(unsafe.Sizeof(fold.Column{})) + 16
}

// Footprint is Footprint of m's columns.
func (m *Msg) Footprint() int { return Footprint(len(m.Record.Columns) + len(m.Record.OldKey)) }

// AppendChanges appends the changes of the message of stream sequence seq
// to dst, each a Msg of that sequence, and returns the extended slice. A
// message of one change (and every message of a capture before batches) is
// one Msg, as NewMsg makes it. A batch (docs/DESIGN.md §3) is one Msg per
// record, in the batch's order, each with its own position, LSN and commit
// time, and as prev the previous record's position (the first record: the
// batch's prev), so that every rule of a window — position order, replays,
// the prev chain, missing values, declared types — applies per change. The
// records share the batch's keys, declared types and missing values. A body
// that does not match Redms-Lens is one Msg whose MetaErr names it: the
// window parks the table.
func AppendChanges(dst []Msg, seq uint64, meta walheader.Meta, data []byte) []Msg {
	if len(meta.Lens) == 0 {
		return append(dst, NewMsg(seq, meta, data))
	}
	recs, err := walheader.SplitBody(data, meta.Lens)
	if err != nil {
		return append(dst, Msg{Seq: seq, MetaErr: fmt.Errorf("batch at lsn %s: %w", meta.LSN, err)})
	}
	shared := Meta{Keys: meta.Keys, KeySource: meta.KeySource, Types: meta.Types}
	if meta.Missing != nil || meta.Partition != nil || meta.Snapshot != nil {
		// A snapshot chunk's part is one message: its records share one
		// *walheader.Snapshot, which is how the window tells its parts.
		shared.Extra = &Extra{Missing: meta.Missing, Partition: meta.Partition, Snapshot: meta.Snapshot}
	}
	i := 0
	prev, hasPrev := meta.Prev, meta.HasPrev
	for _, run := range meta.Runs {
		for k := range run.Count {
			m := Msg{Seq: seq, Meta: shared}
			m.Meta.Pos = walheader.Pos{Base: run.Base, Index: run.First + uint64(k)}
			m.Meta.Prev, m.Meta.HasPrev = prev, hasPrev
			m.Meta.CommitTime = run.CommitTime
			m.Meta.LSN = lsnText(meta.LSNs[i])
			m.parse(recs[i])
			dst = append(dst, m)
			prev, hasPrev = m.Meta.Pos, true
			i++
		}
	}
	return dst
}

// lsnText renders an LSN in Postgres' X/Y form.
func lsnText(l uint64) string {
	var b [17]byte
	dst := strconv.AppendUint(b[:0], l>>32, 16)
	dst = append(dst, '/')
	dst = strconv.AppendUint(dst, l&0xFFFFFFFF, 16)
	for i, c := range dst {
		if 'a' <= c && c <= 'f' {
			dst[i] = c - 'a' + 'A'
		}
	}
	return string(dst)
}
