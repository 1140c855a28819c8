// Package snapshot reads existing rows of source tables into the stream
// (docs/DESIGN.md §7): each chunk of a table, in key order, is read between
// a low and a high watermark written into the WAL with
// pg_logical_emit_message; keys changed between the watermarks (seen in
// the replication stream) are dropped from the chunk and named in its
// keep list; the rest is spliced into the stream as INSERT records at the
// high watermark's position, on the table's subject, each message with the
// Redms-Snapshot header (docs/CONTRACTS.md). The loader applies a chunk as
// a range replace.
//
// Coordinator is the meeting point of the two goroutines: the snapshot
// Runner registers a chunk, hands it the rows it read, and waits; the
// replication goroutine (through change.Assembler) tells it which keys
// changed and where the watermarks came, and takes the chunk's records at
// the high watermark.
package snapshot

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/redms/redms/pkg/testdecoding"
	"github.com/redms/redms/pkg/walheader"
	"github.com/redms/redms/services/capture/internal/change"
)

// Prefix is the logical decoding message prefix of redms' watermarks.
const Prefix = "redms-snapshot"

// mark is a watermark message's content.
type mark struct {
	Token string `json:"t"`
	High  bool   `json:"h,omitempty"`
}

// chunk is one attempt at one chunk, between the Runner and the stream.
type chunk struct {
	token   string
	subject string
	table   testdecoding.Table
	keyCols []string // nil: a full (keyless) replace
	low     bool     // the low watermark was seen
	lowSeq  uint64   // the commits seen before it (Coordinator.seq)
	high    bool     // the high watermark was seen
	dirty   string   // why the attempt must be read again ("" = fine)
	changed map[string]walheader.Key

	// Set by the Runner before it writes the high watermark.
	rows      []row
	from      walheader.Key
	to        walheader.Key
	id        string
	number    int
	parts     int  // records per part
	partBytes int  // body bytes per part at most (0: no limit)
	ready     bool // the rows are set
	filter    bool // read with a --where filter
	// vis is what the read's snapshot did not see.
	vis *visibility

	rowsSent  int
	keep      []walheader.Key
	commitLSN uint64
	lastPos   walheader.Pos // of its last record, once spliced
	done      chan struct{} // closed when the commit of the splice was seen, or dirty at the high watermark
}

// row is one row read: its key (text per key column) and its INSERT text.
type row struct {
	key  string // encodeKey of vals
	vals walheader.Key
	text []byte
}

// Coordinator joins chunks read by the Runner with the replication stream.
//
// It also remembers the last commits the stream showed, so that a chunk
// whose read did not yet see a transaction the stream shows committed
// before the chunk's low watermark is read again: Postgres writes a
// commit's WAL record before the commit becomes visible, so a read that
// starts just after the low watermark can miss a transaction committed
// before it, and that transaction's changes, being before the watermark,
// would not be dropped from the chunk, whose older rows would then
// overwrite them (docs/DESIGN.md §7).
type Coordinator struct {
	mu     sync.Mutex
	chunks map[string]*chunk // by token
	open   map[string]int    // subject → chunks between watermarks
	txn    []*chunk          // spliced in the transaction being read

	seq  uint64   // commits seen
	ring []uint32 // the xids of the last len(ring) of them, by seq % len(ring)
}

// commitMemory is how many of the last commits the coordinator remembers:
// far more than can come between a commit and its visibility.
const commitMemory = 1 << 16

// NewCoordinator returns an empty coordinator.
func NewCoordinator() *Coordinator {
	return &Coordinator{chunks: map[string]*chunk{}, open: map[string]int{}, ring: make([]uint32, commitMemory)}
}

// checkVisibility marks ch dirty when its read did not see a transaction
// the stream showed committed before its low watermark, or when the
// coordinator no longer remembers the commits before it.
func (c *Coordinator) checkVisibility(ch *chunk) {
	if !ch.low || ch.vis == nil || ch.dirty != "" || ch.lowSeq == 0 {
		return
	}
	oldest := uint64(1)
	if c.seq > uint64(len(c.ring)) {
		oldest = c.seq - uint64(len(c.ring)) + 1
	}
	if ch.lowSeq < oldest {
		ch.dirty = "more commits came after the low watermark than are remembered: the read's visibility cannot be checked"
		return
	}
	for seq := ch.lowSeq; seq >= oldest; seq-- {
		if xid := c.ring[seq%uint64(len(c.ring))]; ch.vis.invisible(xid) {
			ch.dirty = fmt.Sprintf("transaction %d committed before the low watermark but was not yet visible to the read", xid)
			return
		}
	}
}

func (c *Coordinator) register(ch *chunk) {
	ch.done = make(chan struct{})
	ch.changed = map[string]walheader.Key{}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chunks[ch.token] = ch
}

func (c *Coordinator) forget(ch *chunk) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.chunks[ch.token] != ch {
		return
	}
	delete(c.chunks, ch.token)
	if ch.low && !ch.high {
		c.open[ch.subject]--
		if c.open[ch.subject] <= 0 {
			delete(c.open, ch.subject)
		}
	}
}

// setRows hands the chunk's rows over before the high watermark is
// written, with the transactions its read saw in progress.
func (c *Coordinator) setRows(ch *chunk, rows []row, from, to walheader.Key, vis *visibility) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch.rows, ch.from, ch.to, ch.ready, ch.vis = rows, from, to, true, vis
	c.checkVisibility(ch)
}

// state reads what the stream did to ch.
func (c *Coordinator) state(ch *chunk) (dirty string, commit uint64, last walheader.Pos) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ch.dirty, ch.commitLSN, ch.lastPos
}

// Observe notes a change of subject read from the stream: between a
// chunk's watermarks, its key is one the chunk must not overwrite.
func (c *Coordinator) Observe(subject string, rec *testdecoding.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[subject] == 0 {
		return
	}
	for _, ch := range c.chunks {
		if ch.subject != subject || !ch.low || ch.high || ch.dirty != "" {
			continue
		}
		switch {
		case rec.Kind == testdecoding.KindTruncate:
			ch.dirty = "the table was truncated while the chunk was read"
		case ch.keyCols == nil:
			ch.dirty = "a table without a key changed while it was read"
		default:
			ch.note(rec.Columns)
			if rec.HasOldKey {
				ch.note(rec.OldKey)
			}
		}
	}
}

// note adds the key of a row image to the changed keys; an image without
// every key column makes the attempt dirty.
func (ch *chunk) note(cols []testdecoding.Column) {
	k := make(walheader.Key, len(ch.keyCols))
	for i, name := range ch.keyCols {
		j := -1
		for n := range cols {
			if cols[n].Name == name {
				j = n
				break
			}
		}
		switch {
		case j < 0:
			ch.dirty = "a change without the key column " + name + " came while the chunk was read"
			return
		case cols[j].Unchanged:
			ch.dirty = "a change with an unchanged TOAST key came while the chunk was read"
			return
		case cols[j].Null:
		default:
			v := cols[j].Value
			k[i] = &v
		}
	}
	ch.changed[encodeKey(k)] = k
}

// Watermark takes a logical decoding message read from the stream. At the
// high watermark of a chunk it returns the chunk's records (the watermark
// record first), each with its Redms-Snapshot header.
func (c *Coordinator) Watermark(rec *testdecoding.Record, raw []byte) (change.SnapshotChunk, bool) {
	if rec.Prefix != Prefix {
		return change.SnapshotChunk{}, false
	}
	var m mark
	if json.Unmarshal([]byte(rec.Content), &m) != nil {
		return change.SnapshotChunk{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := c.chunks[m.Token]
	if ch == nil { // an attempt of an earlier run, or one given up
		return change.SnapshotChunk{}, false
	}
	if !m.High {
		if !ch.low {
			ch.low, ch.lowSeq = true, c.seq
			c.open[ch.subject]++
			c.checkVisibility(ch) // when the rows came first
		}
		return change.SnapshotChunk{}, false
	}
	if !ch.low || !ch.ready {
		return change.SnapshotChunk{}, false // not ours to complete: the Runner gives it up
	}
	if !ch.high {
		ch.high = true
		c.open[ch.subject]--
		if c.open[ch.subject] <= 0 {
			delete(c.open, ch.subject)
		}
	}
	if ch.dirty != "" {
		select {
		case <-ch.done:
		default:
			close(ch.done)
		}
		return change.SnapshotChunk{}, false
	}
	out := ch.records(c, raw)
	c.txn = append(c.txn, ch)
	return out, true
}

// records are the chunk's parts: the watermark record, then the rows not
// changed between the watermarks, ch.parts records a part.
func (ch *chunk) records(c *Coordinator, raw []byte) change.SnapshotChunk {
	ch.keep = make([]walheader.Key, 0, len(ch.changed))
	for _, k := range ch.changed {
		ch.keep = append(ch.keep, k)
	}
	recs := [][]byte{raw}
	var keys []walheader.Key // of recs[1:]
	for _, r := range ch.rows {
		if _, ok := ch.changed[r.key]; ok {
			continue
		}
		recs = append(recs, r.text)
		keys = append(keys, r.vals)
	}
	ch.rowsSent = len(recs) - 1
	// Part 1 is the watermark record; the rows follow, a part closing at
	// ch.parts records or ch.partBytes bytes. Each part replaces a range
	// of its own: a row part from the previous part's last key to its own
	// last key, part 1 the rest of the chunk's range after the last row.
	partOf := make([]int, len(recs))
	part, count, bytes := 1, 0, 0
	for i := 1; i < len(recs); i++ {
		if i == 1 || count >= max(ch.parts, 1) || (ch.partBytes > 0 && bytes+len(recs[i])+1 > ch.partBytes) {
			part, count, bytes = part+1, 0, 0
		}
		partOf[i] = part
		count++
		bytes += len(recs[i]) + 1
	}
	partOf[0] = 1
	n := part
	out := change.SnapshotChunk{Table: ch.table, Records: recs, Headers: make([]*walheader.Snapshot, len(recs)), Placed: func(p walheader.Pos) {
		c.mu.Lock()
		defer c.mu.Unlock()
		ch.lastPos = p
	}}
	head := func(part int, from, to walheader.Key) *walheader.Snapshot {
		h := &walheader.Snapshot{ID: ch.id, Chunk: ch.number, Part: part, Parts: n, Filtered: ch.filter}
		if ch.keyCols == nil {
			h.Full = true
		} else {
			h.Columns, h.From, h.To, h.Keep = ch.keyCols, from, to, ch.keep
		}
		return h
	}
	from := ch.from
	for i := 1; i < len(recs); {
		j := i
		for j < len(recs) && partOf[j] == partOf[i] {
			j++
		}
		h := head(partOf[i], from, keys[j-2])
		for k := i; k < j; k++ {
			out.Headers[k] = h
		}
		from, i = keys[j-2], j
	}
	out.Headers[0] = head(1, from, ch.to)
	return out
}

// Committed notes the end of the transaction read last: the chunks spliced
// into it are in the stream once everything up to lsn is acknowledged.
func (c *Coordinator) Committed(xid uint32, lsn uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.ring[c.seq%uint64(len(c.ring))] = xid
	for _, ch := range c.txn {
		if ch.commitLSN == 0 || lsn < ch.commitLSN {
			ch.commitLSN = lsn
		}
		select {
		case <-ch.done:
		default:
			close(ch.done)
		}
	}
	c.txn = c.txn[:0]
}

// Reset forgets the transaction being read: a new replication session
// sends it again.
func (c *Coordinator) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.txn = c.txn[:0]
}

// encodeKey renders key values as a map key.
func encodeKey(k walheader.Key) string {
	var b strings.Builder
	for _, v := range k {
		if v == nil {
			b.WriteString("N")
			continue
		}
		b.WriteString("V")
		b.WriteString(strings.ReplaceAll(*v, "\x00", "\x00\x00"))
		b.WriteString("\x00,")
	}
	return b.String()
}
