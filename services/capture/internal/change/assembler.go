package change

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pglogrepl"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/batch"
)

// Numbering says how an Assembler gives positions.
type Numbering uint8

const (
	// PerTransaction is the slot's numbering (docs/DESIGN.md §2.3): base
	// = the end LSN of the transaction's own COMMIT, index = the change
	// record's number among its transaction's records on the same
	// subject, from 0. Both depend on the WAL alone, so a session that
	// reads a transaction again numbers it the same whatever position it
	// started from. A transaction larger than MaxTxnChanges is published
	// before its COMMIT is read: its base is one more than the last end of
	// a COMMIT before it (the session's start for the first), kept by xid
	// in Spills so that a later session uses the same.
	PerTransaction Numbering = iota
	// PerInput is --stdin's: base = the run's epoch, index = the change
	// record's number among the input's records on the same subject, from
	// 1 (the input has no LSNs).
	PerInput
)

// AssemblerConfig says how an Assembler numbers changes.
type AssemblerConfig struct {
	Numbering Numbering
	// MaxTxnChanges bounds the changes buffered for one transaction:
	// past it they are yielded before the COMMIT, without commit headers.
	MaxTxnChanges int
	Log           *slog.Logger
	Metrics       Metrics
	// Snapshots, when set, sees every published change and the logical
	// decoding messages, and splices snapshot chunks into the stream
	// (internal/snapshot).
	Snapshots Snapshots
	// Spills, when set, keeps the bases of transactions published before
	// their COMMIT (slotrecord.Spills). Without it a spilled transaction
	// read again by a session that started elsewhere may get another base.
	Spills Spills
}

// Spills keeps the base of each transaction published before its COMMIT,
// by xid.
type Spills interface {
	// Base is the base a spilled transaction xid was published with.
	Base(xid uint32) (uint64, bool)
	// Spill records base for xid before any of its changes is published.
	Spill(ctx context.Context, xid uint32, base uint64) error
}

// Snapshots splices snapshot chunks into the stream at their high
// watermarks (snapshot.Coordinator).
type Snapshots interface {
	// Observe sees a change published on subject.
	Observe(subject string, rec *testdecoding.Record)
	// Watermark takes a logical decoding message (raw is its text); at a
	// chunk's high watermark it returns the chunk's records.
	Watermark(rec *testdecoding.Record, raw []byte) (SnapshotChunk, bool)
	// Committed says the transaction read last, xid, committed at lsn.
	Committed(xid uint32, lsn uint64)
	// Reset says a new session starts: the open transaction is sent again.
	Reset()
}

// SnapshotChunk is a snapshot chunk to publish on Table's subject inside
// the transaction being read: Records (the watermark record first, then
// INSERTs) with their Redms-Snapshot headers (a pointer per part).
type SnapshotChunk struct {
	Table   testdecoding.Table
	Records [][]byte
	Headers []*walheader.Snapshot
	// Placed, when set, is told the position of the last record.
	Placed func(walheader.Pos)
}

// Assembler turns the records of one replication session (or one --stdin
// run) into chunks of changes, each with its subject, headers and source
// position: one change per INSERT, UPDATE or DELETE, one per subject for a
// TRUNCATE. internal/batch cuts them into messages.
type Assembler struct {
	cfg    AssemblerConfig
	tables *Tables
	slab   slab

	// The session: positions.
	session uint64
	base    uint64 // of the open transaction (provisional until COMMIT or spill)
	// lastCommit is the end of the last COMMIT read (the session's start
	// before any): a spilled transaction's base is one more.
	lastCommit uint64
	placed     []placed // snapshot chunks told their position once it is final

	// The transaction.
	open    bool // BEGIN seen (or a change without one), no COMMIT yet
	begun   bool // the open transaction had a BEGIN
	txns    uint64
	txn     *batch.Txn
	buf     []batch.Change
	last    int // changes of the last chunk: the next buffer's size
	spilled bool
}

// placed is a snapshot chunk's callback and its last record in buf.
type placed struct {
	fn  func(walheader.Pos)
	idx int
}

// NewAssembler returns an assembler that resolves tables through tables.
// Call Start before the first record of a session.
func NewAssembler(tables *Tables, cfg AssemblerConfig) *Assembler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Assembler{cfg: cfg, tables: tables}
}

// Start begins a session at base: the slot's confirmed position (the base
// of the session's first transaction), or --stdin's epoch. It forgets the
// open transaction (a reconnected slot sends it again); the session's
// chunks carry a new Session, so the batcher starts the prev chains again:
// a session's first message per subject has no prev, and a loader never
// waits for a position of an earlier session that may not come again.
// The cached tables are kept.
func (a *Assembler) Start(base uint64) {
	a.session++
	a.base, a.lastCommit = base, base
	a.buf, a.open, a.begun, a.spilled, a.txn, a.placed = nil, false, false, false, nil, nil
	if a.cfg.Snapshots != nil {
		a.cfg.Snapshots.Reset()
	}
}

// InTxn reports whether a transaction is open (BEGIN seen, COMMIT not yet).
func (a *Assembler) InTxn() bool { return a.open }

// Record takes one record. lsn is the record's position as the walsender
// gives it: the change LSN of a change, the end LSN of a COMMIT (what gets
// confirmed). raw is the record's text; it is copied. It yields a chunk
// when the record completes a transaction (COMMIT), fills the transaction
// buffer, or ends a transaction that had no COMMIT (a BEGIN while open).
func (a *Assembler) Record(ctx context.Context, rec *testdecoding.Record, raw []byte, lsn pglogrepl.LSN) (batch.Chunk, bool, error) {
	switch rec.Kind {
	case testdecoding.KindBegin:
		out, ok := a.cut(lsn)
		a.begin(rec.XID, true)
		return out, ok, nil
	case testdecoding.KindCommit:
		return a.commit(rec, lsn), true, nil
	case testdecoding.KindInsert, testdecoding.KindUpdate, testdecoding.KindDelete:
		a.implicitBegin(rec, lsn)
		tbl, err := a.tables.Get(ctx, rec.Table, rec.Columns, rec.Kind != testdecoding.KindDelete, a.txns)
		if err != nil {
			return batch.Chunk{}, false, fmt.Errorf("change at %s: %w", lsn, err)
		}
		a.add(tbl, raw, lsn, nil, tbl.leaf)
		if a.cfg.Snapshots != nil && tbl.Selected {
			a.cfg.Snapshots.Observe(tbl.Subject, rec)
		}
	case testdecoding.KindTruncate:
		a.implicitBegin(rec, lsn)
		if err := a.truncate(ctx, rec, raw, lsn); err != nil {
			return batch.Chunk{}, false, err
		}
	case testdecoding.KindMessage: // not a table change; maybe a snapshot watermark
		if a.cfg.Snapshots == nil {
			return batch.Chunk{}, false, nil
		}
		sc, ok := a.cfg.Snapshots.Watermark(rec, raw)
		if !ok {
			if !a.open && !rec.Transactional && a.cfg.Numbering == PerTransaction {
				// Positions depend on the WAL alone: a session that reads
				// this watermark again without splicing its chunk numbers
				// a spilled transaction after it as the one that spliced it
				// did.
				a.lastCommit = uint64(lsn)
			}
			return batch.Chunk{}, false, nil
		}
		if a.open { // not expected: watermarks are not transactional
			if err := a.splice(ctx, sc, lsn); err != nil {
				return batch.Chunk{}, false, err
			}
			break
		}
		// A non-transactional message comes between transactions, at its
		// place in commit order: the chunk is a transaction of its own,
		// "committed" at the message's LSN (everything before it was sent
		// before it, everything after commits later).
		a.begin(0, false)
		if err := a.splice(ctx, sc, lsn); err != nil {
			a.open = false
			return batch.Chunk{}, false, err
		}
		return a.commit(&testdecoding.Record{Kind: testdecoding.KindCommit}, lsn), true, nil
	default:
		return batch.Chunk{}, false, nil
	}
	if a.cfg.MaxTxnChanges > 0 && len(a.buf) >= a.cfg.MaxTxnChanges {
		if !a.spilled {
			if err := a.spill(ctx); err != nil {
				return batch.Chunk{}, false, fmt.Errorf("spill transaction %d at %s: %w", a.txn.Xid, lsn, err)
			}
			a.cfg.Log.Info("transaction exceeds buffer, publishing without commit headers", "xid", a.txn.Xid, "lsn", lsn.String(), "changes", len(a.buf), "base", pglogrepl.LSN(a.base).String())
		}
		a.spilled = true
		a.settle()
		return a.chunk(), true, nil
	}
	return batch.Chunk{}, false, nil
}

// Flush yields the changes of a transaction whose COMMIT never came
// (input that ends mid-transaction), without commit headers.
func (a *Assembler) Flush() (batch.Chunk, bool) {
	return a.cut(0)
}

func (a *Assembler) begin(xid uint32, begun bool) {
	a.open, a.begun, a.spilled = true, begun, false
	a.txns++
	a.txn = &batch.Txn{Xid: uint64(xid)}
	if a.cfg.Numbering == PerTransaction {
		a.base = a.lastCommit + 1
	}
}

// spill fixes the base of the open transaction before its first changes
// go out without its COMMIT: the one a session before gave it, if any.
func (a *Assembler) spill(ctx context.Context) error {
	if a.cfg.Numbering != PerTransaction || a.cfg.Spills == nil || a.txn.Xid == 0 {
		return nil
	}
	xid := uint32(a.txn.Xid)
	if b, ok := a.cfg.Spills.Base(xid); ok {
		a.rebase(b)
	} else if err := a.cfg.Spills.Spill(ctx, xid, a.base); err != nil {
		return err
	}
	return nil
}

// rebase gives the buffered changes of the open transaction base b.
func (a *Assembler) rebase(b uint64) {
	a.base = b
	for i := range a.buf {
		a.buf[i].Pos.Base = b
	}
}

// settle tells the buffered snapshot chunks their final positions.
func (a *Assembler) settle() {
	for _, p := range a.placed {
		p.fn(a.buf[p.idx].Pos)
	}
	a.placed = a.placed[:0]
}

// implicitBegin opens a transaction for a change that came without BEGIN:
// pg_recvlogical output cut mid-transaction. Its changes go out (no
// record vanishes) with the transaction unknown.
func (a *Assembler) implicitBegin(rec *testdecoding.Record, lsn pglogrepl.LSN) {
	if a.open {
		return
	}
	a.cfg.Log.Warn("changes before any BEGIN (input starts mid-transaction): published without transaction id or commit",
		"table", rec.Table.String(), "lsn", lsn.String())
	a.begin(0, false)
}

// chunk yields the buffered changes of the open transaction.
func (a *Assembler) chunk() batch.Chunk {
	out := batch.Chunk{Session: a.session, Txn: a.txn, Changes: a.buf}
	a.buf, a.last = nil, len(a.buf)
	return out
}

// cut ends an open transaction that got no COMMIT, yielding what it holds.
func (a *Assembler) cut(lsn pglogrepl.LSN) (batch.Chunk, bool) {
	if !a.open {
		return batch.Chunk{}, false
	}
	if a.begun && lsn != 0 {
		a.cfg.Log.Warn("BEGIN without a COMMIT of the open transaction: its changes are published without commit", "xid", a.txn.Xid, "lsn", lsn.String())
	}
	a.open = false
	a.settle()
	out := a.chunk()
	out.End = true
	return out, true
}

// next is the position of the next change record on tbl's subject.
func (a *Assembler) next(tbl *Table) walheader.Pos {
	s := tbl.subject
	if a.cfg.Numbering == PerInput {
		if s.epoch != a.session {
			s.epoch, s.next = a.session, 0
		}
		s.next++
		return walheader.Pos{Base: a.base, Index: s.next}
	}
	if s.epoch != a.txns {
		s.epoch, s.next = a.txns, 0
	}
	p := walheader.Pos{Base: a.base, Index: s.next}
	s.next++
	return p
}

func (a *Assembler) commit(rec *testdecoding.Record, lsn pglogrepl.LSN) batch.Chunk {
	if !a.open { // a COMMIT without BEGIN: nothing of it was read
		a.begin(rec.XID, false)
	}
	if a.cfg.Numbering == PerTransaction {
		if !a.spilled {
			a.rebase(uint64(lsn))
		}
		a.lastCommit = uint64(lsn)
	}
	a.settle()
	out := a.chunk()
	out.End, out.Commit, out.CommitTime = true, uint64(lsn), rec.CommitTime
	a.open, a.spilled = false, false
	if a.cfg.Metrics.Transactions != nil {
		a.cfg.Metrics.Transactions()
	}
	if a.cfg.Snapshots != nil {
		a.cfg.Snapshots.Committed(uint32(a.txn.Xid), uint64(lsn))
	}
	return out
}

// splice adds a snapshot chunk's records to the open transaction, at the
// next positions of its table's subject.
func (a *Assembler) splice(ctx context.Context, sc SnapshotChunk, lsn pglogrepl.LSN) error {
	var cols []testdecoding.Column
	if len(sc.Records) > 1 {
		var r testdecoding.Record
		if err := testdecoding.ParseInto(sc.Records[1], &r); err != nil {
			return fmt.Errorf("snapshot of %s at %s: render a row: %w", sc.Table, lsn, err)
		}
		cols = r.Columns
	}
	tbl, err := a.tables.Get(ctx, sc.Table, cols, cols != nil, a.txns)
	if err != nil {
		return fmt.Errorf("snapshot of %s at %s: %w", sc.Table, lsn, err)
	}
	if !tbl.Selected {
		return nil
	}
	for i, raw := range sc.Records {
		a.add(tbl, raw, lsn, nil, "")
		a.buf[len(a.buf)-1].Snapshot = sc.Headers[i]
	}
	if sc.Placed != nil {
		a.placed = append(a.placed, placed{fn: sc.Placed, idx: len(a.buf) - 1})
	}
	return nil
}

// truncate adds one change per subject the record's tables publish on
// (the tables of one partition tree share their root's), each at the next
// position of its subject.
func (a *Assembler) truncate(ctx context.Context, rec *testdecoding.Record, raw []byte, lsn pglogrepl.LSN) error {
	type group struct {
		subject string
		entries []*Table
	}
	var groups []group
	for _, t := range rec.Tables {
		tbl, err := a.tables.Get(ctx, t, nil, false, a.txns)
		if err != nil {
			return fmt.Errorf("truncate at %s: %w", lsn, err)
		}
		i := 0
		for i < len(groups) && groups[i].subject != tbl.Subject {
			i++
		}
		if i == len(groups) {
			groups = append(groups, group{subject: tbl.Subject})
		}
		groups[i].entries = append(groups[i].entries, tbl)
	}
	for _, g := range groups {
		tbl := g.entries[0]
		if !tbl.Selected {
			a.excluded(tbl, len(g.entries))
			continue
		}
		part, err := a.tables.Partition(ctx, g.entries)
		if err != nil {
			return fmt.Errorf("truncate at %s: %w", lsn, err)
		}
		leaf := tbl.leaf
		if len(g.entries) > 1 { // the message stands for several tables
			leaf = ""
		}
		a.add(tbl, raw, lsn, part, leaf)
		if a.cfg.Snapshots != nil {
			a.cfg.Snapshots.Observe(tbl.Subject, rec)
		}
	}
	return nil
}

func (a *Assembler) excluded(t *Table, n int) {
	if a.cfg.Metrics.Excluded != nil {
		for range n {
			a.cfg.Metrics.Excluded(t.Label)
		}
	}
}

// add buffers one change of t at the next position of its subject.
func (a *Assembler) add(t *Table, raw []byte, lsn pglogrepl.LSN, part *walheader.Partition, leaf string) {
	if !t.Selected {
		a.excluded(t, 1)
		return
	}
	if a.buf == nil {
		a.buf = make([]batch.Change, 0, max(a.last, 8))
	}
	a.buf = append(a.buf, batch.Change{Subject: t.Subject, Headers: t.headers, Leaf: leaf,
		Pos: a.next(t), LSN: uint64(lsn), Data: a.slab.copy(raw), Txn: a.txn, Partition: part})
}
