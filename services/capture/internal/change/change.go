// Package change turns test_decoding records into JetStream messages: one per
// change (one per table for a multi-table TRUNCATE), grouped per transaction,
// with the headers of docs/CONTRACTS.md.
package change

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"

	"github.com/jackc/pglogrepl"
	"github.com/nats-io/nats.go"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/catalog"
	"github.com/redms/redms/services/capture/internal/publish"
	"github.com/redms/redms/services/capture/internal/selection"
)

// Resolver tells what the source knows about a table.
type Resolver interface {
	Resolve(ctx context.Context, t catalog.Name) (catalog.Info, error)
}

// Table is what a builder keeps per source table.
type Table struct {
	Subject  string
	Leaf     string // quoted leaf name when published on its root's subject
	Keys     string // JSON array
	Source   string // key source
	Label    string // root schema.table, unquoted: the metric label
	Selected bool
	columns  []string // column names of the last INSERT/UPDATE seen

	// Header values shared by every message of the table (never mutated).
	keysHdr, sourceHdr, leafHdr []string
}

// Metrics receives per-change counts; any field may be nil.
type Metrics struct {
	Excluded     func(table string)
	Transactions func()
}

// Builder assembles transactions of messages.
type Builder struct {
	DB       string
	Resolver Resolver
	Filter   selection.Filter
	Suffix   selection.Suffix
	// MaxTxnChanges bounds the messages buffered for one transaction: past it
	// the buffered messages are emitted without commit headers (see README).
	MaxTxnChanges int
	Log           *slog.Logger
	Metrics       Metrics
	// Emit hands a batch to the publisher.
	Emit func(ctx context.Context, b publish.Batch) error

	tables map[catalog.Name]*Table
	buf    []*nats.Msg
	xid    uint32
	xidHdr []string // shared by the transaction's messages

	// Messages and their bodies are carved from slabs to keep allocations
	// (and so GC work) per change low; a slab lives until its last message
	// is acknowledged.
	msgSlab  []nats.Msg
	dataSlab []byte
	inTxn    bool
	spilled  bool
	lastLSN  pglogrepl.LSN
	ordinal  int
}

// Reset forgets the open transaction (after a reconnect the slot sends it
// again) and the cached tables are kept.
func (b *Builder) Reset() {
	b.buf, b.inTxn, b.spilled, b.lastLSN, b.ordinal = nil, false, false, 0, 0
}

// InTxn reports whether a transaction is open (BEGIN seen, COMMIT not yet).
func (b *Builder) InTxn() bool { return b.inTxn }

// Record handles one record. lsn is the record's position: the change LSN of
// a change, the end LSN of a COMMIT (that is what gets confirmed). raw is the
// record's text; it is copied.
func (b *Builder) Record(ctx context.Context, rec *testdecoding.Record, raw []byte, lsn pglogrepl.LSN) error {
	switch rec.Kind {
	case testdecoding.KindBegin:
		b.buf, b.inTxn, b.spilled, b.xid = b.buf[:0], true, false, rec.XID
		b.xidHdr = nil
		if rec.XID != 0 {
			b.xidHdr = []string{strconv.FormatUint(uint64(rec.XID), 10)}
		}
		return nil
	case testdecoding.KindCommit:
		return b.commit(ctx, rec, lsn)
	case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete:
		ord := b.nextOrdinal(lsn)
		return b.add(ctx, rec, raw, lsn, ord, rec.Table, rec.Columns)
	case testdecoding.KindTruncate:
		for _, t := range rec.Tables {
			ord := b.nextOrdinal(lsn)
			if err := b.add(ctx, rec, raw, lsn, ord, t, nil); err != nil {
				return err
			}
		}
		return nil
	default: // logical decoding messages are not table changes
		return nil
	}
}

func (b *Builder) nextOrdinal(lsn pglogrepl.LSN) int {
	if lsn == b.lastLSN {
		b.ordinal++
	} else {
		b.lastLSN, b.ordinal = lsn, 0
	}
	return b.ordinal
}

func (b *Builder) add(ctx context.Context, rec *testdecoding.Record, raw []byte, lsn pglogrepl.LSN, ord int, t testdecoding.Table, cols []testdecoding.Column) error {
	if !b.inTxn {
		// pg_recvlogical output cut at the start: no BEGIN seen. The change
		// still goes out, with its transaction unknown.
		b.inTxn, b.xid, b.xidHdr = true, 0, nil
	}
	tbl, err := b.table(ctx, t, rec.Kind, cols)
	if err != nil {
		return err
	}
	if !tbl.Selected {
		if b.Metrics.Excluded != nil {
			b.Metrics.Excluded(tbl.Label)
		}
		return nil
	}
	// 8 headers fit one map group: no table allocation.
	h := make(nats.Header, 8)
	lsnText := lsn.String()
	setChange(h, b.DB, lsnText, ord, b.xidHdr, tbl.keysHdr, tbl.sourceHdr)
	if tbl.leafHdr != nil {
		h[hdrLeaf] = tbl.leafHdr
	}
	m := b.newMsg()
	m.Subject, m.Header, m.Data = tbl.Subject, h, b.copyData(raw)
	b.buf = append(b.buf, m)
	if b.MaxTxnChanges > 0 && len(b.buf) >= b.MaxTxnChanges {
		if !b.spilled {
			b.Log.Info("transaction exceeds buffer, publishing without commit headers", "xid", b.xid, "lsn", lsnText, "changes", len(b.buf))
		}
		b.spilled = true
		batch := publish.Batch{Messages: b.buf}
		b.buf = nil
		return b.Emit(ctx, batch)
	}
	return nil
}

func (b *Builder) commit(ctx context.Context, rec *testdecoding.Record, lsn pglogrepl.LSN) error {
	commitLSN := lsn.String()
	var commitTime string
	if !rec.CommitTime.IsZero() {
		commitTime = rec.CommitTime.UTC().Format(walheader.TimeLayout)
	}
	lsnHdr := []string{commitLSN}
	var timeHdr []string
	if commitTime != "" {
		timeHdr = []string{commitTime}
	}
	for _, m := range b.buf {
		setCommit(m.Header, lsnHdr, timeHdr)
	}
	batch := publish.Batch{Messages: b.buf, Commit: uint64(lsn)}
	b.buf, b.inTxn, b.spilled = nil, false, false
	if b.Metrics.Transactions != nil {
		b.Metrics.Transactions()
	}
	return b.Emit(ctx, batch)
}

// table returns the cached entry of t, looking it up on first sight and again
// when an INSERT or UPDATE shows a different set of columns.
func (b *Builder) table(ctx context.Context, t testdecoding.Table, kind testdecoding.Kind, cols []testdecoding.Column) (*Table, error) {
	name := catalog.Name{Schema: t.Schema, Table: t.Name}
	if b.tables == nil {
		b.tables = map[catalog.Name]*Table{}
	}
	tbl := b.tables[name]
	changed := tbl != nil && (kind == testdecoding.KindInsert || kind == testdecoding.KindUpdate) && !sameColumns(tbl.columns, cols)
	if tbl != nil && !changed {
		return tbl, nil
	}
	info, err := b.Resolver.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	root := info.Root
	if root == (catalog.Name{}) {
		root = name
	}
	if r, ok := b.Suffix.Root(root.Table); ok {
		root.Table = r
	}
	keys := walheader.EncodeKeys(info.Keys)
	tbl = &Table{
		Subject:  subjectOf(b.DB, root.Schema, root.Table),
		Keys:     keys,
		Source:   info.KeySource,
		Label:    root.String(),
		Selected: b.Filter.Selected(root.Schema, root.Table),
	}
	if root != name {
		tbl.Leaf = t.String()
		tbl.leafHdr = []string{tbl.Leaf}
	}
	tbl.keysHdr, tbl.sourceHdr = []string{tbl.Keys}, []string{tbl.Source}
	if kind == testdecoding.KindInsert || kind == testdecoding.KindUpdate {
		tbl.columns = columnNames(cols)
	}
	b.tables[name] = tbl
	b.Log.Debug("table resolved", "table", name.String(), "subject", tbl.Subject, "keys", tbl.Keys, "key_source", tbl.Source, "selected", tbl.Selected)
	return tbl, nil
}

func (b *Builder) newMsg() *nats.Msg {
	if len(b.msgSlab) == 0 {
		b.msgSlab = make([]nats.Msg, 256)
	}
	m := &b.msgSlab[0]
	b.msgSlab = b.msgSlab[1:]
	return m
}

func (b *Builder) copyData(raw []byte) []byte {
	if len(raw) > 8<<10 {
		return slices.Clone(raw)
	}
	if len(b.dataSlab) < len(raw) {
		b.dataSlab = make([]byte, 256<<10)
	}
	d := b.dataSlab[:len(raw):len(raw)]
	copy(d, raw)
	b.dataSlab = b.dataSlab[len(raw):]
	return d
}

func sameColumns(names []string, cols []testdecoding.Column) bool {
	if len(names) != len(cols) {
		return false
	}
	for i := range cols {
		if names[i] != cols[i].Name {
			return false
		}
	}
	return true
}

func columnNames(cols []testdecoding.Column) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.Name
	}
	return out
}

// Flush emits the messages of a transaction whose COMMIT never came (input
// that ends mid-transaction) without commit headers.
func (b *Builder) Flush(ctx context.Context) error {
	if len(b.buf) == 0 {
		b.inTxn = false
		return nil
	}
	batch := publish.Batch{Messages: b.buf}
	b.buf, b.inTxn = nil, false
	return b.Emit(ctx, batch)
}

// TableOfParseError returns the table a record that failed to parse names,
// when the parser got that far.
func TableOfParseError(err error) (testdecoding.Table, bool) {
	var pe *testdecoding.ParseError
	if !errors.As(err, &pe) || pe.Table == "" {
		return testdecoding.Table{}, false
	}
	// pe.Table is printed like test_decoding: parse it the same way.
	rec, perr := testdecoding.Parse([]byte("table " + pe.Table + ": DELETE: (no-tuple-data)"))
	if perr != nil || rec.Kind != testdecoding.KindDelete {
		return testdecoding.Table{}, false
	}
	return rec.Table, true
}
